"""`klanten-api serve` runs one relay process beside its workers, woken by the workers through a loopback
socket (notificaties/proces.py, README "Notifications").

Real processes: `klanten-api serve --workers 2` on a database of the module's own (PostgreSQL when the suite
runs on it, else an SQLite file), a loopback Notificaties API (pytest-httpserver), real JWTs. The relay's poll
interval is set to 60 s, so a delivery within seconds can only come from a worker waking it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import requests
import sqlalchemy as sa

from conftest import eigen_postgres_database, token, wait_for, zonder_nummer
from processen import KLANTEN_API, ROOT, ServeProces, levend, proces_env
from storage.database import normaliseer_url

POLL = 60          # seconds: far longer than any wait below


def ontvangen(nrc) -> list[str]:
    """resourceUrls of the notifications the Notificaties API accepted, in arrival order."""
    return [json.loads(req.get_data())["resourceUrl"] for req, resp in nrc.log
            if req.path == "/api/v1/notificaties" and resp.status_code == 201]


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    if os.environ.get("KLANTEN_TEST_DATABASE_URL", "").strip().startswith("postgres"):
        with eigen_postgres_database("relayproces") as (url, _admin):
            yield url
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('relayproces') / 'klanten.db'}"


@pytest.fixture
def nrc(httpserver):
    httpserver.expect_request("/api/v1/notificaties", method="POST").respond_with_json({}, status=201)
    return httpserver


def srv_env(database, nrc, auth_config, **extra) -> dict:
    return {"KLANTEN_DATABASE_URL": database, "KLANTEN_AUTH_CONFIG": str(auth_config),
            "KLANTEN_DEVELOPMENT": "true",      # accepts the suite's recognisable JWT secret, changes nothing else
            "KLANTEN_NOTIFICATIONS_API_URL": nrc.url_for("/api/v1/"), "KLANTEN_NOTIFICATIONS_POLL": str(POLL),
            "KLANTEN_NOTIFICATIONS_TIMEOUT": "2", **extra}


def start(database, nrc, auth_config, tmp_path, **extra) -> ServeProces:
    return ServeProces(srv_env(database, nrc, auth_config, **extra), tmp_path / "serve.log",
                       workers=2).wacht_tot_klaar()


@pytest.fixture
def serve(database, nrc, auth_config, tmp_path):
    srv = start(database, nrc, auth_config, tmp_path)
    yield srv
    srv.stop()


def maak_klant(srv: ServeProces) -> str:
    resp = requests.post(f"{srv.root}/klanten", json=zonder_nummer(), timeout=10,
                         headers={"Authorization": f"Bearer {token()}"})
    assert resp.status_code == 201, resp.text
    return resp.json()["url"]


def de_relay(srv: ServeProces) -> int:
    pids = wait_for(srv.relay_pids, wat="a relay process under serve")
    assert len(pids) == 1, srv.kinderen()
    return pids[0]


def wachtend(database) -> int:
    engine = sa.create_engine(normaliseer_url(database), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM notificatie WHERE status = 'pending'")).scalar_one()
    finally:
        engine.dispose()


def test_one_relay_process_beside_the_workers_delivers_at_once_when_woken(serve, nrc):
    de_relay(serve)
    assert len(serve.worker_pids()) == 2
    urls = [maak_klant(serve) for _ in range(3)]
    # the poll interval is 60 s: only the NOTIFY of the committed outbox rows can have woken the relay
    wait_for(lambda: len(ontvangen(nrc)) >= 3, timeout=10, wat="three notifications delivered")
    assert ontvangen(nrc) == urls
    assert len(serve.relay_pids()) == 1


def test_the_workers_deliver_nothing_themselves(serve, nrc, database):
    relay = de_relay(serve)
    os.kill(relay, signal.SIGSTOP)          # the relay process cannot act; the workers could, if they relayed
    try:
        url = maak_klant(serve)
        time.sleep(3)                       # an in-worker relay delivers within ~0.1 s (tests/test_notificaties.py)
        assert ontvangen(nrc) == []
        assert wachtend(database) == 1
    finally:
        os.kill(relay, signal.SIGCONT)
    wait_for(lambda: ontvangen(nrc) == [url], timeout=10, wat="delivered once the relay runs again")
    assert wait_for(lambda: wachtend(database) == 0, wat="marked as sent")


def test_a_killed_relay_is_replaced_and_its_successor_delivers(serve, nrc):
    oud = de_relay(serve)
    os.kill(oud, signal.SIGKILL)
    nieuw = wait_for(lambda: [p for p in serve.relay_pids() if p != oud and levend(p)], timeout=10,
                     wat="a new relay process")
    assert len(nieuw) == 1
    assert serve.proc.poll() is None and len(serve.worker_pids()) == 2
    url = maak_klant(serve)
    wait_for(lambda: url in ontvangen(nrc), timeout=10, wat="delivered by the new relay")
    assert "relay_process_exited" in serve.log_tekst()


def test_stopping_serve_stops_its_relay(database, nrc, auth_config, tmp_path):
    srv = start(database, nrc, auth_config, tmp_path)
    try:
        relay = de_relay(srv)
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(20) == 0
        assert not levend(relay)
    finally:
        srv.stop()


def test_a_killed_serve_leaves_no_relay_and_no_workers_behind_and_can_be_restarted(database, nrc, auth_config,
                                                                                    tmp_path):
    """kill -9 of `serve`: its relay and its uvicorn workers notice their parent is gone and end (a worker
    would otherwise go on serving writes without a relay and hold the port); a new `serve` binds the same port
    and serves, and its relay delivers."""
    srv = start(database, nrc, auth_config, tmp_path)
    nieuw = None
    try:
        relay = de_relay(srv)
        workers = srv.worker_pids()
        assert len(workers) == 2
        srv.proc.kill()                     # no chance to stop anything
        srv.proc.wait(5)
        wait_for(lambda: not levend(relay), timeout=10, wat="the orphaned relay ended by itself")
        # a worker ends by uvicorn's graceful shutdown (at most timeout_graceful_shutdown = 10 s, here nothing
        # is in flight)
        wait_for(lambda: not [p for p in workers if levend(p)], timeout=20, wat="the orphaned workers ended")
        nieuw = ServeProces(srv_env(database, nrc, auth_config), tmp_path / "serve2.log", workers=2,
                            poort=srv.poort).wacht_tot_klaar()
        url = maak_klant(nieuw)
        wait_for(lambda: url in ontvangen(nrc), timeout=10, wat="delivered by the new serve's relay")
    finally:
        srv.stop()
        if nieuw is not None:
            nieuw.stop()


def test_a_relay_run_apart_polls(database, nrc, auth_config, tmp_path):
    """KLANTEN_NOTIFICATIONS_RELAY=false: `serve` starts no relay and the workers run none; a `klanten-api
    relay` started apart (as on another machine) has no wake-up socket and finds the message by polling."""
    srv = start(database, nrc, auth_config, tmp_path, KLANTEN_NOTIFICATIONS_RELAY="false")
    apart = None
    try:
        assert srv.relay_pids() == []
        url = maak_klant(srv)
        time.sleep(2)
        assert ontvangen(nrc) == []            # nobody delivers: the workers do not relay
        apart = subprocess.Popen(
            [*KLANTEN_API, "relay"], cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=proces_env({"KLANTEN_DATABASE_URL": database,
                            "KLANTEN_NOTIFICATIONS_API_URL": nrc.url_for("/api/v1/"), "KLANTEN_NOTIFICATIONS_POLL": "1"}))
        wait_for(lambda: ontvangen(nrc) == [url], timeout=15, wat="delivered by the relay run apart")
    finally:
        if apart is not None:
            apart.terminate()
            assert apart.wait(10) == 0          # SIGTERM: it stops in order
        srv.stop()
