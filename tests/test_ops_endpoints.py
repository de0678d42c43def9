"""Operations endpoints at the root (not under /api/v1): /_health/live, /_health/ready and /_metrics.

Over real HTTP against real servers. Servers that need a database of their own (an empty, unmigrated
SQLite file; an unreachable database) are started with conftest.start_server and *no* shared engine:
server_factory always hands the session's (migrated) engine to create_app, so a database_url override
given to server_factory would not change the database the server talks to.
"""
from __future__ import annotations

import re
import socket
import time
from dataclasses import replace

import pytest
import requests

from conftest import Api, assert_no_leak, klant_body, start_server
from storage.migrate import upgrade

# name{labels} value  (Prometheus text exposition format 0.0.4)
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
NRC_ONBEREIKBAAR = "http://127.0.0.1:9/api/v1/"   # discard port: nothing listens, relay is off anyway
INTERNALS = re.compile(r"Traceback|sqlalchemy|psycopg|sqlite3\.|site-packages|File \"|/tmp/|/work/|"
                       r"unable to open|connection refused|127\.0\.0\.1|password|postgres(ql)?://",
                       re.IGNORECASE)


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def get(url: str, **kw) -> requests.Response:
    r = session().get(url, timeout=20, **kw)
    assert_no_leak(r)
    return r


def parse_metrics(text: str) -> list[tuple[str, dict, float]]:
    """Every sample of a Prometheus text document; fails on a line that is neither a comment nor a sample."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = dict(LABEL.findall(m.group(3) or ""))
        samples.append((m.group(1), labels, float(m.group(4))))
    return samples


def metric(samples, name: str, **labels) -> float | None:
    found = [v for n, l, v in samples if n == name and all(l.get(k) == str(w) for k, w in labels.items())]
    assert len(found) <= 1, f"{name} {labels} appears {len(found)} times"
    return found[0] if found else None


def scrape(base: str) -> list[tuple[str, dict, float]]:
    r = get(f"{base}/_metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    return parse_metrics(r.text)


def wait_for_metric(base: str, name: str, expected: float, **labels) -> list:
    """Request metrics are recorded just after the response is sent: allow a moment for the last one."""
    deadline = time.time() + 3
    while True:
        samples = scrape(base)
        if (metric(samples, name, **labels) or 0) >= expected or time.time() > deadline:
            return samples
        time.sleep(0.02)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def own_db_server(base_settings):
    """Start a server on a database of its own (its own engine, made by create_app from database_url)."""
    started = []

    def make(database_url: str, **overrides):
        srv = start_server(replace(base_settings, database_url=database_url, **overrides))
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()
        srv.app.engine.dispose()


# ---------------------------------------------------------------- /_health/live
def test_live_is_200_ok_without_a_token(server):
    r = get(f"{server.url}/_health/live")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"status": "ok"}


def test_live_needs_no_api_headers_and_accepts_any_accept(server):
    # no Authorization, no Accept-Crs, an Accept the API itself would answer with 406
    r = get(f"{server.url}/_health/live", headers={"Accept": "text/plain"})
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


# ---------------------------------------------------------------- /_health/ready
def test_ready_is_200_on_the_migrated_database(server):
    r = get(f"{server.url}/_health/ready")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok"


def test_ready_is_503_when_the_schema_is_not_at_head_and_200_after_migrating(own_db_server, tmp_path):
    url = f"sqlite:///{tmp_path / 'leeg.sqlite3'}"          # a fresh file, never migrated
    srv = own_db_server(url)
    live = get(f"{srv.url}/_health/live")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    r = get(f"{srv.url}/_health/ready")
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["status"] != "ok"
    assert "migrat" in body["reason"].lower(), body
    assert not INTERNALS.search(r.text), r.text
    assert str(tmp_path) not in r.text

    upgrade(url)                                              # the operator runs `klanten-api migrate`
    r = get(f"{srv.url}/_health/ready")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok"


@pytest.mark.parametrize("soort", ["sqlite-missing-directory", "postgresql-closed-port"])
def test_ready_is_503_without_leaking_internals_when_the_database_is_unreachable(own_db_server, tmp_path, soort):
    if soort == "sqlite-missing-directory":
        geheim_pad = tmp_path / "bestaat-niet" / "dieper" / "klanten.sqlite3"
        url = f"sqlite:///{geheim_pad}"
        verboden = [str(geheim_pad), "bestaat-niet"]
    else:
        port = closed_port()
        url = f"postgresql://klantenuser:topgeheim-wachtwoord@127.0.0.1:{port}/klanten_geheim"
        verboden = [str(port), "klantenuser", "topgeheim-wachtwoord", "klanten_geheim"]
    srv = own_db_server(url)
    started = time.time()
    r = get(f"{srv.url}/_health/ready")
    assert time.time() - started < 15
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["status"] != "ok"
    assert isinstance(body.get("reason"), str) and body["reason"]
    assert "unreachable" in body["reason"].lower() or "bereikbaar" in body["reason"].lower(), body
    for woord in verboden:
        assert woord not in r.text, f"readiness answer reveals {woord!r}: {r.text}"
    assert not INTERNALS.search(r.text), r.text

    # liveness does not depend on the database; metrics still answer (without outbox figures)
    assert get(f"{srv.url}/_health/live").status_code == 200
    m = get(f"{srv.url}/_metrics")
    assert m.status_code == 200
    for woord in verboden:
        assert woord not in m.text
    assert not INTERNALS.search(m.text), m.text


# ---------------------------------------------------------------- /_metrics
def test_metrics_count_klant_list_requests(api, server):
    before = metric(scrape(server.url), "klanten_http_requests_total", operation="klant_list", status_class="2xx") or 0
    for _ in range(3):
        assert api.get("/klanten").status_code == 200
    samples = wait_for_metric(server.url, "klanten_http_requests_total", before + 3, operation="klant_list", status_class="2xx")
    assert metric(samples, "klanten_http_requests_total", operation="klant_list", status_class="2xx") == before + 3


def test_metrics_count_by_status(api, server):
    before = metric(scrape(server.url), "klanten_http_requests_total", operation="klant_list", status_class="4xx") or 0
    assert api.get("/klanten", auth=False).status_code == 403
    samples = wait_for_metric(server.url, "klanten_http_requests_total", before + 1, operation="klant_list", status_class="4xx")
    assert metric(samples, "klanten_http_requests_total", operation="klant_list", status_class="4xx") == before + 1


def test_metrics_text_format_and_latency_histogram(api, server):
    assert api.get("/klanten").status_code == 200
    r = get(f"{server.url}/_metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert "version=0.0.4" in r.headers["Content-Type"]
    assert "# TYPE klanten_http_requests_total counter" in r.text
    assert "# TYPE klanten_http_request_duration_seconds histogram" in r.text
    samples = wait_for_metric(server.url, "klanten_http_request_duration_seconds_count", 1, operation="klant_list")
    buckets = [(l["le"], v) for n, l, v in samples
               if n == "klanten_http_request_duration_seconds_bucket" and l.get("operation") == "klant_list"]
    assert buckets, "no histogram buckets for klant_list"
    assert buckets[-1][0] == "+Inf"
    values = [v for _, v in buckets]
    assert values == sorted(values), f"histogram buckets are not cumulative: {buckets}"
    count = metric(samples, "klanten_http_request_duration_seconds_count", operation="klant_list")
    total = metric(samples, "klanten_http_request_duration_seconds_sum", operation="klant_list")
    assert count >= 1 and values[-1] == count
    assert total is not None and total > 0


def test_metrics_pool_and_outbox_gauges_are_present(server):
    samples = scrape(server.url)
    names = {n for n, _, _ in samples}
    for name in ("klanten_outbox_pending", "klanten_outbox_oldest_pending_age_seconds",
                 "klanten_outbox_failed", "klanten_db_pool_connections_in_use"):
        assert name in names, f"{name} missing from /_metrics"
    checked_out = [v for n, _, v in samples if n == "klanten_db_pool_connections_in_use"]
    assert all(v >= 0 for v in checked_out)


def test_outbox_pending_rises_after_a_create(server_factory):
    srv = server_factory(notifications_api_url=NRC_ONBEREIKBAAR, notifications_relay=False)
    before = scrape(srv.url)
    pending = metric(before, "klanten_outbox_pending")
    failed = metric(before, "klanten_outbox_failed")
    assert pending is not None and failed is not None
    api = Api(srv.url)
    r = api.post("/klanten", json=klant_body(klantnummer="7001"))
    assert r.status_code == 201, r.text
    time.sleep(0.05)
    after = scrape(srv.url)
    assert metric(after, "klanten_outbox_pending") == pending + 1
    assert metric(after, "klanten_outbox_oldest_pending_age_seconds") >= 0
    assert metric(after, "klanten_outbox_failed") == failed
    r = api.post("/klanten", json=klant_body(klantnummer="7002"))
    assert r.status_code == 201, r.text
    time.sleep(1.1)
    later = scrape(srv.url)
    assert metric(later, "klanten_outbox_pending") == pending + 2
    assert metric(later, "klanten_outbox_oldest_pending_age_seconds") >= 1.0


# ---------------------------------------------------------------- placement
@pytest.mark.parametrize("pad", ["/_health/live", "/_health/ready", "/_metrics"])
def test_ops_endpoints_need_no_token_and_no_api_version_headers(server, pad):
    r = get(f"{server.url}{pad}", headers={"Accept": "*/*"})
    assert r.status_code == 200, r.text
    assert r.headers.get("Cache-Control") == "no-store"


@pytest.mark.parametrize("pad", ["/_health/live", "/_health/ready", "/_metrics"])
def test_ops_endpoints_are_not_under_the_api_base_path(api, server, pad):
    r = api.get(f"{server.url}/api/v1{pad}")
    assert r.status_code == 404, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
