"""Rate limiting, the body-size limit, CORS, trusted proxies and security headers, over real HTTP.

Settings: KLANTEN_RATE_LIMIT, KLANTEN_REDIS_URL, KLANTEN_MAX_BODY_BYTES, KLANTEN_CORS_ALLOWED_ORIGINS,
KLANTEN_TRUSTED_PROXIES (README, Settings). The Redis tests use a client id of their own (a fresh
application in a fresh auth config), so they share no counter with other runs, and delete only the
`klanten-api:rl:<that client id>:*` keys afterwards.
"""
from __future__ import annotations

import json
import re
import socket
import time
import uuid
from dataclasses import replace

import pytest
import yaml

from conftest import SECRET, Api, Server, klant_body, start_server

PROBLEM = "application/problem+json"
API_VERSION = "1.0.0"
REDIS_URL = "redis://127.0.0.1:6379/0"
PORTAAL = "https://portaal.gemeente.example"
ANDER = "https://kwaadwillend.example.org"
PROXY_HOST = "klanten.gemeente.example"


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fresh_window(seconds: float, clock, margin: float = 2.0) -> None:
    """The limiter counts in fixed windows aligned to `clock`; do not start a burst just before a boundary."""
    left = seconds - (clock() % seconds)
    if left < margin:
        time.sleep(left + 0.05)


def eigen_client(tmp_path) -> tuple[str, object]:
    """A client id used by no other test or run, with all scopes, and the auth config that holds it."""
    client_id = f"rl-{uuid.uuid4().hex[:12]}"
    path = tmp_path / "ratelimit-applicaties.yaml"
    path.write_text(yaml.safe_dump({"applicaties": [
        {"label": "Ratelimit", "clientIds": [client_id], "secret": SECRET, "heeftAlleAutorisaties": True},
        {"label": "Ander", "clientIds": [client_id + "-ander"], "secret": SECRET, "scopes": ["klanten.lezen"]}]}))
    return client_id, path


@pytest.fixture
def redis_client():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis on {REDIS_URL}")
    yield client
    client.close()


def assert_throttled(r) -> int:
    assert r.status_code == 429, r.text
    assert r.headers["Content-Type"] == PROBLEM
    assert r.headers.get("API-version") == API_VERSION
    body = r.json()
    assert body["code"] == "throttled"
    assert body["status"] == 429
    assert body["type"].endswith("/ref/fouten/Throttled/")
    assert body["detail"]
    retry_after = r.headers.get("Retry-After")
    assert retry_after is not None and re.fullmatch(r"[0-9]+", retry_after), retry_after
    return int(retry_after)


def padded(body: dict, size: int) -> bytes:
    """The JSON of `body`, padded with trailing whitespace (still valid JSON) to exactly `size` bytes."""
    raw = json.dumps(body).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


# ================================================================= rate limiting
def test_rate_limiting_is_off_by_default(api):
    statuses = [api.get("/klanten").status_code for _ in range(25)]
    assert statuses == [200] * 25


def test_sixth_request_in_the_window_is_429_with_retry_after(server_factory):
    srv = server_factory(rate_limit="5/60")
    api = Api(srv.url)
    fresh_window(60, time.monotonic)
    statuses = [api.get("/klanten").status_code for _ in range(5)]
    assert statuses == [200] * 5
    r = api.get("/klanten")
    retry_after = assert_throttled(r)
    assert 1 <= retry_after <= 60
    # a write counts the same way and is refused too
    r = api.post("/klanten", json=klant_body(klantnummer="4291"))
    assert_throttled(r)


def test_rate_limit_is_per_client_id(server_factory):
    srv = server_factory(rate_limit="5/60")
    alles, lezer = Api(srv.url), Api(srv.url, "lezer")
    fresh_window(60, time.monotonic)
    assert [alles.get("/klanten").status_code for _ in range(6)] == [200] * 5 + [429]
    assert lezer.get("/klanten").status_code == 200
    assert alles.get("/klanten").status_code == 429


def test_redis_shares_the_count_between_servers(server_factory, redis_client, tmp_path):
    client_id, auth = eigen_client(tmp_path)
    try:
        eerste = server_factory(rate_limit="5/60", redis_url=REDIS_URL, auth_config=auth)
        tweede = server_factory(rate_limit="5/60", redis_url=REDIS_URL, auth_config=auth)
        a, b = Api(eerste.url, client_id), Api(tweede.url, client_id)
        fresh_window(60, time.time)
        statuses = [a.get("/klanten").status_code for _ in range(3)]
        statuses += [b.get("/klanten").status_code for _ in range(2)]
        assert statuses == [200] * 5
        r = b.get("/klanten")
        retry_after = assert_throttled(r)
        assert 1 <= retry_after <= 60
        assert a.get("/klanten").status_code == 429
        assert list(redis_client.scan_iter(f"klanten-api:rl:{client_id}:*")), "no counter in Redis"
        # still per client: another client id of the same servers is not limited
        assert Api(eerste.url, client_id + "-ander").get("/klanten").status_code == 200
    finally:
        for key in redis_client.scan_iter(f"klanten-api:rl:{client_id}*"):
            redis_client.delete(key)


def test_unreachable_redis_lets_requests_through(server_factory, tmp_path):
    client_id, auth = eigen_client(tmp_path)
    srv = server_factory(rate_limit="5/60", redis_url=f"redis://127.0.0.1:{closed_port()}/0", auth_config=auth)
    api = Api(srv.url, client_id)
    started = time.time()
    statuses = [api.get("/klanten").status_code for _ in range(8)]
    assert statuses == [200] * 8
    assert time.time() - started < 10
    r = api.post("/klanten", json=klant_body(klantnummer="4292"))
    assert r.status_code == 201, r.text


# ================================================================= body limit
# Servers shared by the tests of this module (each test still asks for `engine`, so the conftest empties
# the tables after it).
@pytest.fixture(scope="module")
def klein_server(base_settings, engine):
    srv = start_server(replace(base_settings, max_body_bytes=1000), engine)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def portaal_server(base_settings, engine):
    srv = start_server(replace(base_settings, cors_allowed_origins=(PORTAAL,)), engine)
    yield srv
    srv.stop()


def test_body_limit(klein_server, engine):
    srv = klein_server
    api = Api(srv.url)
    headers = {"Content-Type": "application/json"}

    r = api.post("/klanten", data=padded(klant_body(klantnummer="1001"), 1001), headers=headers)
    assert r.status_code == 413, r.text
    assert r.headers["Content-Type"] == PROBLEM
    assert r.headers.get("API-version") == API_VERSION
    assert r.json()["code"] == "request_too_large"

    r = api.post("/klanten", data=padded(klant_body(klantnummer="900"), 900), headers=headers)
    assert r.status_code == 201, r.text
    r = api.post("/klanten", data=padded(klant_body(klantnummer="1000"), 1000), headers=headers)
    assert r.status_code == 201, r.text        # the limit is the largest accepted body


def test_body_limit_without_content_length(klein_server, engine):
    srv = klein_server
    api = Api(srv.url)
    groot = padded(klant_body(klantnummer="1002"), 1001)
    r = api.post("/klanten", data=(groot[i:i + 100] for i in range(0, len(groot), 100)),
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    klein = padded(klant_body(klantnummer="1003"), 900)
    r = api.post("/klanten", data=(klein[i:i + 100] for i in range(0, len(klein), 100)),
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text


def test_chunked_patch_under_the_limit_is_applied(api):
    """A body sent without Content-Length (Transfer-Encoding: chunked) is read, not taken as `{}`."""
    klant = api.post("/klanten", json=klant_body(klantnummer="1005"))
    assert klant.status_code == 201, klant.text
    wijziging = json.dumps({"voornaam": "Chunked"}).encode()
    r = api.patch(klant.json()["url"], data=iter([wijziging]), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["voornaam"] == "Chunked", "the chunked PATCH body was ignored"
    assert api.get(klant.json()["url"]).json()["voornaam"] == "Chunked"


def test_body_limit_on_put_and_patch(klein_server, engine):
    srv = klein_server
    api = Api(srv.url)
    klant = api.post("/klanten", json=klant_body(klantnummer="1004"))
    assert klant.status_code == 201, klant.text
    url = klant.json()["url"]
    for method in ("PUT", "PATCH"):
        r = api.request(method, url, data=padded(klant_body(klantnummer="1004"), 1001),
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 413, (method, r.text)


# ================================================================= CORS
def test_cors_default_allows_any_origin(api):
    r = api.get("/klanten", headers={"Origin": ANDER})
    assert r.status_code == 200
    assert r.headers.get("Access-Control-Allow-Origin") == "*"


def test_cors_allow_list_echoes_the_allowed_origin(portaal_server, engine):
    srv = portaal_server
    api = Api(srv.url)
    r = api.get("/klanten", headers={"Origin": PORTAAL})
    assert r.status_code == 200
    assert r.headers.get("Access-Control-Allow-Origin") == PORTAAL
    assert "origin" in {v.strip().lower() for v in r.headers.get("Vary", "").split(",")}, r.headers

    pre = api.session.options(f"{api.root}/klanten", timeout=10, headers={
        "Origin": PORTAAL, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert pre.status_code == 200, pre.text
    assert pre.headers.get("Access-Control-Allow-Origin") == PORTAAL
    assert "POST" in pre.headers.get("Access-Control-Allow-Methods", "")


def test_cors_allow_list_refuses_another_origin(portaal_server, engine):
    srv = portaal_server
    api = Api(srv.url)
    r = api.get("/klanten", headers={"Origin": ANDER})
    assert r.status_code == 200
    assert not any(k.lower().startswith("access-control-") for k in r.headers), dict(r.headers)

    pre = api.session.options(f"{api.root}/klanten", timeout=10, headers={
        "Origin": ANDER, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert not any(k.lower().startswith("access-control-") for k in pre.headers), (pre.status_code, dict(pre.headers))
    assert pre.status_code != 200 or pre.content != b"", "the preflight of a foreign origin was answered as CORS"


def test_cors_empty_list_sends_no_cors_headers(server_factory):
    srv = server_factory(cors_allowed_origins=())
    api = Api(srv.url)
    for origin in (PORTAAL, ANDER):
        r = api.get("/klanten", headers={"Origin": origin})
        assert r.status_code == 200
        assert not any(k.lower().startswith("access-control-") for k in r.headers), dict(r.headers)
        pre = api.session.options(f"{api.root}/klanten", timeout=10, headers={
            "Origin": origin, "Access-Control-Request-Method": "GET"})
        assert not any(k.lower().startswith("access-control-") for k in pre.headers), dict(pre.headers)


# ================================================================= trusted proxies
# uvicorn's own proxy-header middleware would believe X-Forwarded-Proto/-For from 127.0.0.1 before our layer
# sees the request. `klanten-api serve` turns that off (klanten_api.transport.uvicorn_opties: proxy_headers=False)
# so that KLANTEN_TRUSTED_PROXIES alone decides; conftest.start_server serves the app with the same options.
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": PROXY_HOST}


@pytest.fixture
def serve_like_cli(base_settings, engine):
    """server_factory: uvicorn configured as cmd_serve configures it (start_server uses serve's options)."""
    started = []

    def make(**overrides) -> Server:
        srv = start_server(replace(base_settings, **overrides), engine)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


def test_forwarded_headers_are_ignored_by_default(serve_like_cli):
    srv = serve_like_cli()
    api = Api(srv.url)
    r = api.post("/klanten", json=klant_body(klantnummer="5001"), headers=FORWARDED)
    assert r.status_code == 201, r.text
    assert r.json()["url"].startswith(f"{srv.url}/api/v1/klanten/"), r.json()["url"]
    assert r.headers["Location"].startswith(f"{srv.url}/api/v1/klanten/")
    fout = api.get(f"/klanten/{uuid.uuid4()}", headers=FORWARDED)
    assert fout.status_code == 404
    assert fout.json()["type"].startswith(f"{srv.url}/ref/fouten/")
    assert PROXY_HOST not in r.text + fout.text


def test_forwarded_headers_of_a_trusted_proxy_are_used(serve_like_cli):
    srv = serve_like_cli(trusted_proxies=("127.0.0.1",))
    api = Api(srv.url)
    publiek = f"https://{PROXY_HOST}"
    r = api.post("/klanten", json=klant_body(klantnummer="5002"), headers=FORWARDED)
    assert r.status_code == 201, r.text
    assert r.json()["url"].startswith(f"{publiek}/api/v1/klanten/"), r.json()["url"]
    assert r.headers["Location"] == r.json()["url"]
    uuid_ = r.json()["url"].rsplit("/", 1)[1]

    lees = api.get(f"/klanten/{uuid_}", headers=FORWARDED)
    assert lees.status_code == 200
    assert lees.json()["url"] == f"{publiek}/api/v1/klanten/{uuid_}"

    fout = api.get(f"/klanten/{uuid.uuid4()}", headers=FORWARDED)
    assert fout.status_code == 404
    assert fout.json()["type"] == f"{publiek}/ref/fouten/NotFound/"
    ongeldig = api.post("/klanten", json={"bronorganisatie": "x"}, headers=FORWARDED)
    assert ongeldig.status_code == 400
    assert ongeldig.json()["type"].startswith(f"{publiek}/ref/fouten/")

    # without the headers the same proxy-trusting server still uses the real Host
    direct = api.get(f"/klanten/{uuid_}")
    assert direct.json()["url"] == f"{srv.url}/api/v1/klanten/{uuid_}"


def test_forwarded_headers_from_an_untrusted_address_are_ignored(serve_like_cli):
    srv = serve_like_cli(trusted_proxies=("10.0.0.0/8",))      # loopback is not in it
    api = Api(srv.url)
    r = api.post("/klanten", json=klant_body(klantnummer="5003"), headers=FORWARDED)
    assert r.status_code == 201, r.text
    assert r.json()["url"].startswith(f"{srv.url}/api/v1/klanten/"), r.json()["url"]
    assert r.headers["Location"].startswith(f"{srv.url}/api/v1/klanten/")
    fout = api.get(f"/klanten/{uuid.uuid4()}", headers=FORWARDED)
    assert fout.json()["type"].startswith(f"{srv.url}/ref/fouten/")


def test_x_forwarded_for_does_not_make_a_client_a_trusted_proxy(serve_like_cli):
    srv = serve_like_cli(trusted_proxies=("10.0.0.0/8",))
    api = Api(srv.url)
    r = api.post("/klanten", json=klant_body(klantnummer="5004"),
                 headers={**FORWARDED, "X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3",
                          "Forwarded": f"for=10.1.2.3;proto=https;host={PROXY_HOST}"})
    assert r.status_code == 201, r.text
    assert r.json()["url"].startswith(f"{srv.url}/api/v1/klanten/"), r.json()["url"]


# ================================================================= security headers
def test_nosniff_on_api_responses(api):
    created = api.post("/klanten", json=klant_body(klantnummer="6001"))
    responses = [created, api.get("/klanten"), api.get(created.json()["url"]),
                 api.get(f"/klanten/{uuid.uuid4()}"), api.get("/klanten", auth=False),
                 api.post("/klanten", json={})]
    assert [r.status_code for r in responses] == [201, 200, 200, 404, 403, 400]
    for r in responses:
        assert r.headers.get("X-Content-Type-Options") == "nosniff", (r.request.method, r.url, r.status_code)


def _directives(r) -> dict:
    out = {}
    for part in r.headers.get("Cache-Control", "").split(","):
        part = part.strip().lower()
        if part:
            name, _, value = part.partition("=")
            out[name] = value
    return out


def test_klant_data_is_only_cached_conditionally(api):
    created = api.post("/klanten", json=klant_body(klantnummer="6002"))
    assert created.status_code == 201
    for r in (api.get("/klanten"), api.get(created.json()["url"]), api.get("/klanten?subjectType=natuurlijk_persoon")):
        assert r.status_code == 200
        d = _directives(r)
        assert "private" in d and "no-cache" in d, (r.url, r.headers.get("Cache-Control"))
        assert "public" not in d
        assert d.get("max-age", "0") == "0" and "s-maxage" not in d and "immutable" not in d
    head = api.request("HEAD", created.json()["url"])
    assert head.status_code == 200
    d = _directives(head)
    assert "private" in d and "no-cache" in d, head.headers.get("Cache-Control")
