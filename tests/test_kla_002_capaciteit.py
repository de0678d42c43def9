"""kla-002 under attack (issue #13): a subject server that drips one byte at a time cannot stretch the check
beyond KLANTEN_SUBJECT_TIMEOUT, and slow subject checks never take the capacity that reads, writes without a
subject and health checks need: only a few run at once per process (503 when all places are taken), one
client gets only its share (429), and none of them holds a database connection."""
from __future__ import annotations

import threading
import time

import pytest
import yaml

from conftest import SECRET, Api, klant_body, wait_for
from klanten_api.settings import ConfigError, Settings
from ruwe_servers import RuweServer, druppel, lees_kop

TIMEOUT = 2.0          # KLANTEN_SUBJECT_TIMEOUT of these tests: the whole check's budget
DRUPPEL = 0.25         # one byte per 0.25 s: every single read is far quicker than TIMEOUT
MARGE = 3.0            # generous: 2 cores shared with other work
SNEL = 3.0             # a read, a write without subject, a health check: well under this
TIME_OUT_REDEN = "Foutmelding: time-out"
CLIENTS = [f"schrijver{i}" for i in range(12)]


@pytest.fixture(scope="module")
def veel_clients(tmp_path_factory):
    """Twelve applications with every right: many writers, so the per-process limit is reached too."""
    path = tmp_path_factory.mktemp("auth-capaciteit") / "applicaties.yaml"
    apps = [{"clientIds": [cid], "secret": SECRET, "label": cid, "heeftAlleAutorisaties": True}
            for cid in ["alles", *CLIENTS]]
    path.write_text(yaml.safe_dump({"applicaties": apps}))
    return path


@pytest.fixture
def druppelaar():
    srv = RuweServer(druppel(DRUPPEL))
    yield srv
    srv.stop()


@pytest.fixture
def srv(server_factory, veel_clients):
    # the places are the defaults (KLANTEN_SUBJECT_MAX_CONCURRENT 4, _PER_CLIENT 2): no override here
    return server_factory(subject_timeout=TIMEOUT, auth_config=veel_clients)


def klant_zonder_subject(api: Api, nummer: str) -> dict:
    resp = api.post("/klanten", klant_body(klantnummer=nummer))
    assert resp.status_code == 201, resp.text
    return resp.json()


def snel(wat: str, verzoek) -> None:
    started = time.monotonic()
    resp = verzoek()
    duur = time.monotonic() - started
    assert resp.status_code in (200, 201), (wat, resp.status_code, resp.text)
    assert duur < SNEL, (wat, duur)


class Schrijvers:
    """Writes with a subject, each in its own thread: (status, body, headers, seconds) per write."""

    def __init__(self):
        self.uitkomsten: list[tuple[int, dict, dict, float]] = []
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self, verzoek) -> None:
        def run():
            started = time.monotonic()
            resp = verzoek()
            with self._lock:
                self.uitkomsten.append((resp.status_code, resp.json(), resp.headers,
                                        time.monotonic() - started))
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def wacht(self, limiet: float) -> list[tuple[int, dict, dict, float]]:
        deadline = time.monotonic() + limiet
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), f"writes still running after {limiet} s"
        return self.uitkomsten


def is_time_out(status: int, body: dict) -> bool:
    return (status == 400 and len(body["invalidParams"]) == 1 and body["invalidParams"][0]["name"] == "subject"
            and body["invalidParams"][0]["code"] == "bad-url"
            and body["invalidParams"][0]["reason"].endswith(TIME_OUT_REDEN))


def test_druppelende_subjects_houden_lezen_en_schrijven_niet_op(srv, druppelaar, engine):
    alles = Api(srv.url)
    bestaand = [klant_zonder_subject(alles, str(100 + i)) for i in range(len(CLIENTS))]
    schrijvers = Schrijvers()
    for i in range(24):                 # 12 creates and 12 PATCHes, two per client
        api = Api(srv.url, CLIENTS[i % len(CLIENTS)])
        url = druppelaar.url(f"/personen/{i}")
        if i % 2 == 0:
            body = klant_body(url, klantnummer=str(500 + i))
            schrijvers.start(lambda api=api, body=body: api.post("/klanten", body))
        else:
            doel = bestaand[i % len(CLIENTS)]["url"]
            schrijvers.start(lambda api=api, url=url, doel=doel: api.patch(doel, {"subject": url}))
    wait_for(lambda: druppelaar.open > 0, 10, "dripping subject checks running")

    # while they drip: reads, a write without subject and the health checks stay fast
    for ronde in range(3):
        snel("list", lambda: alles.get("/klanten"))
        snel("read", lambda: alles.get(bestaand[0]["url"]))
        snel("create zonder subject", lambda: alles.post("/klanten", klant_body(klantnummer=str(900 + ronde))))
        snel("patch zonder subject", lambda: alles.patch(bestaand[1]["url"], {"voornaam": f"R{ronde}"}))
        snel("live", lambda: alles.session.get(f"{srv.url}/_health/live", timeout=30))
    assert druppelaar.open > 0, "the dripping checks ended before the reads were measured"

    uitkomsten = schrijvers.wacht(TIMEOUT + MARGE + 10)
    assert len(uitkomsten) == 24
    for status, body, headers, duur in uitkomsten:
        assert duur < TIMEOUT + MARGE, (status, duur)
        if status == 503:
            assert headers["Retry-After"] == "1"
            assert body["code"] == "service_unavailable", body
        else:
            assert is_time_out(status, body), (status, body)
    statussen = [u[0] for u in uitkomsten]
    assert statussen.count(400) >= 1 and statussen.count(503) >= 1, statussen
    assert druppelaar.max_open <= 4               # KLANTEN_SUBJECT_MAX_CONCURRENT
    # every dripping connection is closed by the server; it is healthy afterwards; nothing was written
    wait_for(lambda: druppelaar.open == 0, 10, "dripping connections closed")
    assert alles.session.get(f"{srv.url}/_health/ready", timeout=30).status_code == 200
    assert alles.get("/klanten").json()["count"] == len(bestaand) + 3
    for klant in bestaand:
        assert alles.get(klant["url"]).json()["subject"] == ""


def test_een_client_krijgt_niet_alle_plaatsen(srv, druppelaar, httpserver):
    """Five dripping creates of one client: two are checked (and time out), three are refused at once (429);
    meanwhile another client's create with a good subject goes through."""
    httpserver.expect_request("/personen/goed").respond_with_data("ok")
    een = Api(srv.url, CLIENTS[0])
    schrijvers = Schrijvers()
    for i in range(5):
        url = druppelaar.url(f"/personen/{i}")
        schrijvers.start(lambda url=url, i=i: een.post("/klanten", klant_body(url, klantnummer=str(600 + i))))
    wait_for(lambda: druppelaar.open >= 2, 10, "two dripping checks of one client running")
    ander = Api(srv.url, CLIENTS[1])
    goed = httpserver.url_for("/personen/goed")
    snel("create van een andere client", lambda: ander.post("/klanten", klant_body(goed)))

    uitkomsten = schrijvers.wacht(TIMEOUT + MARGE + 10)
    geweigerd = [u for u in uitkomsten if u[0] == 429]
    assert len(geweigerd) == 3, [u[:2] for u in uitkomsten]
    for status, body, headers, duur in geweigerd:
        assert headers["Retry-After"] == "1"
        assert body["code"] == "throttled"
        assert "subject" in body["detail"]
        assert duur < SNEL
    for status, body, headers, duur in uitkomsten:
        if status != 429:
            assert is_time_out(status, body), (status, body)
            assert duur < TIMEOUT + MARGE
    assert druppelaar.max_open <= 2               # KLANTEN_SUBJECT_MAX_CONCURRENT_PER_CLIENT
    # the places are free again afterwards
    snel("create na afloop", lambda: een.post("/klanten", klant_body(goed, klantnummer="700")))


def test_de_termijn_geldt_voor_alle_doorverwijzingen_samen(srv):
    """Six hops of 0.6 s each: every single answer is quick enough, together they are not."""
    def traag_doorsturen(conn, server):
        kop = lees_kop(conn)
        server.koppen.append(kop)
        if server.gestopt.wait(0.6):
            return
        hop = int(kop.split(b" ")[1].rsplit(b"/", 1)[1])
        if hop >= 5:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        else:
            conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /hop/%d\r\nContent-Length: 0\r\n\r\n" % (hop + 1))

    subject = RuweServer(traag_doorsturen)
    try:
        url = subject.url("/hop/0")
        started = time.monotonic()
        resp = Api(srv.url).post("/klanten", klant_body(url))
        duur = time.monotonic() - started
        assert is_time_out(resp.status_code, resp.json()), resp.text
        assert duur < TIMEOUT + MARGE, duur
        assert len(subject.koppen) <= 4
    finally:
        subject.stop()


def test_een_subjectcontrole_houdt_geen_databaseverbinding_vast(srv, druppelaar, engine):
    """While a PATCH waits for its subject, the server holds no pooled database connection (the test server
    shares `engine`) and no lock on the klant: a PATCH without subject of the same klant goes through."""
    alles = Api(srv.url)
    klant = klant_zonder_subject(alles, "800")
    schrijvers = Schrijvers()
    schrijvers.start(lambda: alles.patch(klant["url"], {"subject": druppelaar.url("/personen/1"), "voornaam": "X"}))
    wait_for(lambda: druppelaar.open > 0, 10, "the dripping check running")
    assert engine.pool.checkedout() == 0
    snel("patch van dezelfde klant", lambda: alles.patch(klant["url"], {"voornaam": "Y"}))
    [(status, body, _headers, _duur)] = schrijvers.wacht(TIMEOUT + MARGE + 10)
    assert is_time_out(status, body), (status, body)
    assert alles.get(klant["url"]).json()["voornaam"] == "Y"


def test_de_plaatsen_zijn_instellingen():
    s = Settings.from_env({"KLANTEN_SUBJECT_MAX_CONCURRENT": "6", "KLANTEN_SUBJECT_MAX_CONCURRENT_PER_CLIENT": "3"})
    assert (s.subject_max_concurrent, s.subject_max_concurrent_per_client) == (6, 3)
    assert (Settings.from_env({}).subject_max_concurrent, Settings.from_env({}).subject_max_concurrent_per_client) \
        == (4, 2)
    for naam in ("KLANTEN_SUBJECT_MAX_CONCURRENT", "KLANTEN_SUBJECT_MAX_CONCURRENT_PER_CLIENT"):
        with pytest.raises(ConfigError, match=naam):
            Settings.from_env({naam: "0"})
