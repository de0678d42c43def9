"""/_metrics of a real `klanten-api serve --workers 2` (issue #15): one scrape is the sum over every process.

Real processes, a database of the module's own (PostgreSQL when the suite runs on it, else an SQLite file), a
loopback Notificaties API (pytest-httpserver) for the relay process, real JWTs. The exposition is parsed with
prometheus_client's own parser. Requests are counted exactly: totals per (operationId, status class) must equal
what this test sent, whichever worker answered, scraped repeatedly while the load runs; a worker killed with
SIGKILL and replaced by serve (klanten_api/verdeler.py) does not take its counts with it.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import eigen_postgres_database, token, wait_for, zonder_nummer
from processen import ServeProces

REQUESTS = "klanten_http_requests"


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    if os.environ.get("KLANTEN_TEST_DATABASE_URL", "").strip().startswith("postgres"):
        with eigen_postgres_database("metricsproces") as (url, _admin):
            yield url
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('metricsproces') / 'klanten.db'}"


@pytest.fixture
def nrc(httpserver):
    httpserver.expect_request("/api/v1/notificaties", method="POST").respond_with_json({}, status=201)
    return httpserver


@pytest.fixture
def serve(database, nrc, auth_config, tmp_path):
    env = {"KLANTEN_DATABASE_URL": database, "KLANTEN_AUTH_CONFIG": str(auth_config),
           "KLANTEN_DEVELOPMENT": "true", "KLANTEN_NOTIFICATIONS_API_URL": nrc.url_for("/api/v1/"),
           "KLANTEN_NOTIFICATIONS_TIMEOUT": "2", "KLANTEN_METRICS_DIR": str(tmp_path / "metrics")}
    srv = ServeProces(env, tmp_path / "serve.log", workers=2).wacht_tot_klaar()
    yield srv
    srv.stop()


def sessie() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def scrape(url: str) -> dict:
    """{metric family name: {(sample name, frozenset(labels)): value}} of one scrape, parsed by prometheus_client."""
    r = sessie().get(f"{url}/_metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {}
    for family in text_string_to_metric_families(r.text):
        families[family.name] = {(s.name, frozenset(s.labels.items())): s.value for s in family.samples}
    return families


def requests_per_klasse(families: dict) -> Counter:
    out = Counter()
    for (naam, labels), waarde in families.get(REQUESTS, {}).items():
        if naam == f"{REQUESTS}_total":
            l = dict(labels)
            out[(l["operation"], l["status_class"])] += waarde
    return out


def waarde(families: dict, familie: str, sample: str, **labels) -> float:
    return families.get(familie, {}).get((sample, frozenset(labels.items())), 0.0)


def test_one_scrape_sums_every_worker_and_the_relay_and_survives_a_killed_worker(serve, nrc):
    basis = requests_per_klasse(scrape(serve.url))
    verstuurd = Counter()
    gescraped: list[Counter] = []
    stop = threading.Event()
    auth = {"Authorization": f"Bearer {token()}"}

    def scraper():
        while not stop.is_set():
            gescraped.append(requests_per_klasse(scrape(serve.url)))
            time.sleep(0.05)

    def last(n: int, aanmaken: int):
        s = sessie()
        for i in range(n):
            assert s.get(f"{serve.root}/klanten", headers=auth, timeout=10).status_code == 200
            assert s.get(f"{serve.root}/klanten", timeout=10).status_code == 403   # no token
            assert s.get(f"{serve.root}/klanten/niet-een-uuid", headers=auth, timeout=10).status_code == 404
            if i < aanmaken:
                r = s.post(f"{serve.root}/klanten", json=zonder_nummer(), headers=auth, timeout=10)
                assert r.status_code == 201, r.text
        s.close()

    kijker = threading.Thread(target=scraper)
    kijker.start()
    ladders = [threading.Thread(target=last, args=(40, 5)) for _ in range(3)]
    try:
        for t in ladders:
            t.start()
        for t in ladders:
            t.join()
    finally:
        stop.set()
        kijker.join()
    verstuurd[("klant_list", "2xx")] += 120
    verstuurd[("klant_list", "4xx")] += 120
    verstuurd[("klant_read", "4xx")] += 120
    verstuurd[("klant_create", "2xx")] += 15

    # every scrape during the load: no counter went backwards, whichever worker answered it
    assert len(gescraped) >= 3, len(gescraped)
    for eerder, later in zip(gescraped, gescraped[1:]):
        for sleutel, n in eerder.items():
            assert later[sleutel] >= n, (sleutel, n, later[sleutel])

    def precies():
        nu = requests_per_klasse(scrape(serve.url))
        return nu if all(nu[k] - basis[k] == n for k, n in verstuurd.items()) else None
    na_last = wait_for(precies, timeout=5, wat="totals equal to the requests sent")

    # the relay process's deliveries are in the same scrape
    def bezorgd():
        f = scrape(serve.url)
        return f if waarde(f, "klanten_notificaties_deliveries", "klanten_notificaties_deliveries_total",
                           result="delivered") == 15 else None
    f = wait_for(bezorgd, timeout=15, wat="15 deliveries counted")
    assert waarde(f, "klanten_notificaties_delivery_duration_seconds",
                  "klanten_notificaties_delivery_duration_seconds_count") == 15
    assert waarde(f, "klanten_outbox_pending", "klanten_outbox_pending") == 0
    assert waarde(f, "klanten_outbox_failed", "klanten_outbox_failed") == 0
    assert sum(1 for r, _ in nrc.log if r.path == "/api/v1/notificaties") == 15
    build = [dict(labels) for (naam, labels), v in f["klanten_build_info"].items() if v == 1]
    assert build and build[0]["klanten_api"] == "1.0.0" and build[0]["contactmomenten_api"] == "1.0.0", build

    # a worker killed without a chance to clean up: serve starts another; the totals stay
    oud = set(serve.worker_pids())
    slachtoffer = sorted(oud)[0]
    os.kill(slachtoffer, signal.SIGKILL)

    def herstart():
        pids = set(serve.worker_pids())
        return pids if len(pids) == 2 and slachtoffer not in pids else None
    nieuw = wait_for(herstart, timeout=30, wat="uvicorn restarts the killed worker")
    assert len(nieuw - oud) == 1
    na_kill = requests_per_klasse(scrape(serve.url))
    for sleutel in verstuurd:
        assert na_kill[sleutel] == na_last[sleutel], (sleutel, na_kill[sleutel], na_last[sleutel])
    # and counting goes on from there, in the new worker too
    wait_for(lambda: sessie().get(f"{serve.root}/klanten", headers=auth, timeout=10).status_code == 200,
             wat="the server answers after the restart")
    s = sessie()
    for _ in range(19):
        assert s.get(f"{serve.root}/klanten", headers=auth, timeout=10).status_code == 200

    def geteld():
        n = requests_per_klasse(scrape(serve.url))
        return n if n[("klant_list", "2xx")] == na_last[("klant_list", "2xx")] + 20 else None
    eind = wait_for(geteld, timeout=5, wat="20 more klant_list requests counted")
    assert eind[("klant_list", "4xx")] == na_last[("klant_list", "4xx")]


def test_labels_never_carry_a_path_or_client_chosen_text(serve):
    s = sessie()
    auth = {"Authorization": f"Bearer {token()}"}
    for pad in ("/api/v1/999999999", "/api/v1/klanten/Jansen", "/geheim/999999999?bsn=999999999", "/"):
        s.get(f"{serve.url}{pad}", headers=auth, timeout=10)
    time.sleep(0.2)
    tekst = s.get(f"{serve.url}/_metrics", timeout=10).text
    for woord in ("999999999", "Jansen", "geheim", "bsn"):
        assert woord not in tekst
    operaties = {dict(labels)["operation"] for (naam, labels) in scrape(serve.url)[REQUESTS] if labels}
    assert "other" in operaties
    assert operaties <= {"other", "klant_list", "klant_read", "klant_create", "klant_update", "klant_partial_update",
                         "klant_delete", "audittrail_list", "audittrail_read"} | {
        o for o in operaties if o.startswith(("contactmoment", "klantcontactmoment", "objectcontactmoment"))}
