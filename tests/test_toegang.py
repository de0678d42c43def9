"""Only a few requests run in a worker's thread pool at once (KLANTEN_REQUEST_CONCURRENCY, klanten_api/wsgi.py),
and a request that waits longer than KLANTEN_REQUEST_OVERFLOW_AFTER for a place runs anyway (issue #14).

A create whose kla-002 subject check hangs on a loopback server holds a place in the pool for as long as that
server keeps it waiting. With one place:
- and an overflow wait longer than the test, a read sent meanwhile waits for the create: the places are real;
- with an overflow wait of 50 ms, the read is answered while the create still waits: a slow request cannot hold
  up the others for longer than that.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from conftest import Api, klant_body, start_server
from ruwe_servers import RuweServer, lees_kop
from klanten_api.settings import ConfigError, Settings


@pytest.fixture
def hangende_subject():
    """A subject server that answers 200 only when the test lets it (or at its stop)."""
    los = threading.Event()

    def handler(conn, server):
        server.koppen.append(lees_kop(conn))
        los.wait(20)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    server = RuweServer(handler)
    yield server, los
    los.set()
    server.stop()


def _create_op_achtergrond(api: Api, subject: str) -> tuple[threading.Thread, dict]:
    uitkomst = {}

    def create():
        uitkomst["status"] = api.post("/klanten", json=klant_body(subject=subject, klantnummer="9001")).status_code
        uitkomst["klaar"] = time.monotonic()
    draad = threading.Thread(target=create, daemon=True)
    draad.start()
    return draad, uitkomst


def _wacht_tot(voorwaarde, seconden=10.0):
    einde = time.monotonic() + seconden
    while not voorwaarde():
        assert time.monotonic() < einde, "the create never reached the subject server"
        time.sleep(0.01)


@pytest.mark.parametrize("overflow_after, leest_terwijl_create_wacht", [(30.0, False), (0.05, True)])
def test_one_place_and_what_a_waiting_request_does(base_settings, engine, hangende_subject, overflow_after,
                                                   leest_terwijl_create_wacht):
    subject_server, los = hangende_subject
    srv = start_server(replace(base_settings, request_concurrency=1, request_overflow_after=overflow_after), engine)
    try:
        api = Api(srv.url)
        bestaand = api.post("/klanten", json=klant_body(klantnummer="9000"))
        assert bestaand.status_code == 201, bestaand.text
        draad, uitkomst = _create_op_achtergrond(api, subject_server.url("/personen/1"))
        _wacht_tot(lambda: subject_server.koppen)          # the create holds the one place, waiting for its subject

        gelezen = {}

        def lees():
            gelezen["status"] = api.get(bestaand.json()["url"]).status_code
            gelezen["klaar"] = time.monotonic()
        lezer = threading.Thread(target=lees, daemon=True)
        begin = time.monotonic()
        lezer.start()
        lezer.join(2.0)
        if leest_terwijl_create_wacht:
            assert gelezen.get("status") == 200, "the read waited for the create that held the only place"
            assert gelezen["klaar"] - begin < 1.5
            assert "status" not in uitkomst                 # the create is still waiting for its subject
        else:
            assert "status" not in gelezen, "the read ran although the only place was taken"
        los.set()
        draad.join(10)
        lezer.join(10)
        assert uitkomst["status"] == 201 and gelezen["status"] == 200
        if not leest_terwijl_create_wacht:
            assert gelezen["klaar"] >= uitkomst["klaar"] - 0.05   # it ran only when the create left its place
    finally:
        srv.stop()


def test_the_settings_are_read_and_checked():
    s = Settings.from_env({"KLANTEN_REQUEST_CONCURRENCY": "5", "KLANTEN_REQUEST_OVERFLOW_AFTER": "0.2"})
    assert (s.request_concurrency, s.request_overflow_after) == (5, 0.2)
    assert (Settings.from_env({}).request_concurrency, Settings.from_env({}).request_overflow_after) == (3, 0.01)
    for naam, waarde in [("KLANTEN_REQUEST_CONCURRENCY", "0"), ("KLANTEN_REQUEST_CONCURRENCY", "veel"),
                         ("KLANTEN_REQUEST_OVERFLOW_AFTER", "0"), ("KLANTEN_REQUEST_OVERFLOW_AFTER", "x")]:
        with pytest.raises(ConfigError, match=naam):
            Settings.from_env({naam: waarde})
