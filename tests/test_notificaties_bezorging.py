"""Notification delivery under faults (issue #13): never lost, never doubled, in order per klant.

A Notificaties API of our own on loopback (a raw HTTP/1.1 socket server: it can answer slowly, answer 503,
refuse connections, close a connection without answering, and counts every message it receives), real
relays (threads of this process, or `klanten-api relay` processes) on the suite's database (SQLite or
PostgreSQL), real JWTs, the operator commands as processes.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter

import pytest
import sqlalchemy as sa

from conftest import Api, klant_body, wait_for
from klanten_api.settings import Settings
from notificaties.relay import Relay
from storage.uow import UnitOfWork
from test_notificaties import NRC_CLIENT, NRC_SECRET, ROOT, outbox

KLANTEN_API = str(ROOT / ".venv" / "bin" / "klanten-api")


class NepNrc:
    """A Notificaties API on loopback. `gedrag(bericht, keer)` decides per request: an HTTP status to answer
    (after `vertraging` seconds), or "sluit" to close the connection without answering; `keer` is how often
    this message arrived before. `neer()` stops listening (connections are refused), `op()` listens again
    on the same port. `ontvangen` lists every message that arrived, `beantwoord` those answered with 2xx."""

    def __init__(self, gedrag=None, vertraging: float = 0.0):
        self.gedrag = gedrag or (lambda bericht, keer: 201)
        self.vertraging = vertraging
        self.lock = threading.Lock()
        self.ontvangen: list[dict] = []
        self.beantwoord: list[dict] = []
        self.luister: socket.socket | None = None
        self.poort = 0
        self.op()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.poort}/api/v1/"

    def op(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.poort))
        sock.listen(64)
        self.poort = sock.getsockname()[1]
        self.luister = sock
        threading.Thread(target=self._accepteer, args=(sock,), daemon=True).start()

    def neer(self) -> None:
        sock, self.luister = self.luister, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accepteer(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self._bedien, args=(conn,), daemon=True).start()

    def _bedien(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                kop, buffer = buffer.split(b"\r\n\r\n", 1)
                regels = kop.decode("latin-1").split("\r\n")
                velden = {k.strip().lower(): v.strip() for k, v in (r.split(":", 1) for r in regels[1:])}
                lengte = int(velden.get("content-length", "0"))
                while len(buffer) < lengte:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                body, buffer = buffer[:lengte], buffer[lengte:]
                bericht = json.loads(body)
                with self.lock:
                    keer = sum(1 for b in self.ontvangen if b == bericht)
                    self.ontvangen.append(bericht)
                antwoord = self.gedrag(bericht, keer)
                if antwoord == "sluit":
                    return
                if self.vertraging:
                    time.sleep(self.vertraging)
                if 200 <= antwoord < 300:
                    with self.lock:
                        self.beantwoord.append(bericht)
                conn.sendall(f"HTTP/1.1 {antwoord} X\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
                             .encode())

    def per_bericht(self, lijst: list[dict]) -> Counter:
        with self.lock:
            return Counter(b["id"] for b in lijst)

    def stop(self) -> None:
        self.neer()


@pytest.fixture
def nep_nrc():
    gemaakt = []

    def maak(**kw) -> NepNrc:
        gemaakt.append(NepNrc(**kw))
        return gemaakt[-1]

    yield maak
    for nrc in gemaakt:
        nrc.stop()


def berichten(engine, klanten: int, per_klant: int) -> list[dict]:
    """Queue `per_klant` messages for each of `klanten` klanten, interleaved as writes would arrive."""
    nu = dt.datetime.now(dt.timezone.utc)
    uuids = [uuid.uuid4() for _ in range(klanten)]
    alle = []
    with UnitOfWork(engine, schrijven=True) as uow:
        for volgnummer in range(per_klant):
            for k in uuids:
                bericht = {"id": f"{k}/{volgnummer}", "hoofdObject": str(k), "volgnummer": volgnummer}
                uow.notificaties.toevoegen(k, "klanten", json.dumps(bericht), nu)
                alle.append(bericht)
        uow.commit()
    return alle


def instellingen(database_url: str, nrc: NepNrc, **extra) -> Settings:
    return Settings(**{"database_url": database_url, "notifications_api_url": nrc.url,
                       "notifications_client_id": NRC_CLIENT, "notifications_secret": NRC_SECRET,
                       "notifications_timeout": 0.5, "notifications_backoff": 0.05, **extra})


def in_volgorde_per_klant(lijst: list[dict]) -> bool:
    per_klant: dict[str, list[int]] = {}
    for b in lijst:
        per_klant.setdefault(b["hoofdObject"], []).append(b["volgnummer"])
    return all(n == sorted(n) for n in per_klant.values())


# ------------------------------------------------------------------ retry horizon
def test_an_outage_longer_than_the_old_attempts_is_bridged_and_everything_arrives_once(engine, database_url,
                                                                                      nep_nrc):
    """Connections refused for 4 s, then 503 for 4 s: longer than the former 8 attempts from a 0.05 s backoff
    (6.35 s at most). Transient failures keep being retried within the horizon (capped backoff 0.3 s): all
    delivered once, in order per klant, none failed."""
    storing = {"503": True}
    nrc = nep_nrc(gedrag=lambda bericht, keer: 503 if storing["503"] else 201)
    nrc.neer()
    alle = berichten(engine, klanten=10, per_klant=3)
    relay = Relay(engine, instellingen(database_url, nrc, notifications_max_backoff=0.3,
                                       notifications_retry_horizon=120)).start()
    try:
        time.sleep(4)
        nrc.op()                                  # listening again, but answering 503
        time.sleep(4)
        storing["503"] = False
        rijen = wait_for(lambda: (o := outbox(engine)) and all(r.status == "sent" for r in o) and o, timeout=30,
                         wat="every message delivered")
    finally:
        relay.stop()
    assert nrc.per_bericht(nrc.beantwoord) == Counter(b["id"] for b in alle)          # each exactly once
    assert in_volgorde_per_klant(nrc.beantwoord)
    assert max(r.pogingen for r in rijen) > 8
    assert sum(r.eerste_fout is not None for r in rijen) >= 10          # at least every klant's first message


def test_after_the_horizon_a_message_is_failed_and_kept(engine, database_url, nep_nrc):
    nrc = nep_nrc(gedrag=lambda bericht, keer: 503)
    berichten(engine, klanten=1, per_klant=1)
    relay = Relay(engine, instellingen(database_url, nrc, notifications_max_backoff=0.2,
                                       notifications_retry_horizon=1.5)).start()
    try:
        rij = wait_for(lambda: (o := outbox(engine)) and o[0].status == "failed" and o[0], timeout=15,
                       wat="failed after the horizon")
    finally:
        relay.stop()
    assert rij.laatste_fout == "HTTP 503" and rij.pogingen >= 3
    eerste_fout = rij.eerste_fout.replace(tzinfo=rij.eerste_fout.tzinfo or dt.timezone.utc)
    assert dt.datetime.now(dt.timezone.utc) - eerste_fout >= dt.timedelta(seconds=1.5)
    assert len(nrc.ontvangen) == rij.pogingen


# ------------------------------------------------------------------ no duplicates
def test_two_relays_and_a_slow_notificaties_api_deliver_each_message_once(engine, database_url, nep_nrc):
    """Answers take 0.8 s: a batch of 20 takes 16 s, longer than the lease (2 x 1.5 s timeout + 10 s). The old
    relay marked a batch at its end, so the other relay re-claimed what it had sent meanwhile."""
    nrc = nep_nrc(vertraging=0.8)
    alle = berichten(engine, klanten=40, per_klant=1)
    settings = instellingen(database_url, nrc, notifications_timeout=1.5)
    relays = [Relay(engine, settings).start(), Relay(engine, settings).start()]
    try:
        wait_for(lambda: all(r.status == "sent" for r in outbox(engine)), timeout=90, wat="all delivered")
    finally:
        for relay in relays:
            relay.stop()
    assert nrc.per_bericht(nrc.ontvangen) == Counter(b["id"] for b in alle)           # each exactly once


def test_a_relay_killed_mid_batch_repeats_only_the_message_in_flight(engine, database_url, nep_nrc):
    """A `klanten-api relay` process is killed (SIGKILL) while the Notificaties API holds its 5th message; a
    second relay takes over after the lease. Only that 5th message may arrive twice."""
    relay_proces: list[subprocess.Popen] = []

    def gedrag(bericht, keer):
        if len(nrc.ontvangen) == 5 and len(relay_proces) == 1:
            relay_proces[0].send_signal(signal.SIGKILL)
            relay_proces[0].wait(10)
            return "sluit"
        return 201

    nrc = nep_nrc(gedrag=gedrag)
    alle = berichten(engine, klanten=20, per_klant=1)
    env = {"PATH": os.environ.get("PATH", ""), "KLANTEN_DATABASE_URL": database_url,
           "KLANTEN_NOTIFICATIONS_API_URL": nrc.url, "KLANTEN_NOTIFICATIONS_POLL": "0.2",
           "KLANTEN_NOTIFICATIONS_TIMEOUT": "1"}

    def start_relay() -> subprocess.Popen:
        relay_proces.append(subprocess.Popen([KLANTEN_API, "relay"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return relay_proces[-1]

    try:
        start_relay()
        wait_for(lambda: relay_proces[0].poll() is not None, timeout=30, wat="the first relay killed mid-batch")
        start_relay()
        wait_for(lambda: all(r.status == "sent" for r in outbox(engine)), timeout=60, wat="all delivered")
    finally:
        for proc in relay_proces:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
    in_vlucht = nrc.ontvangen[4]["id"]
    verwacht = Counter(b["id"] for b in alle)
    geteld = nrc.per_bericht(nrc.ontvangen)
    assert geteld[in_vlucht] in (1, 2)
    del geteld[in_vlucht], verwacht[in_vlucht]
    assert geteld == verwacht                                                          # the others exactly once


def test_a_connection_closed_without_an_answer_repeats_only_that_message(engine, database_url, nep_nrc):
    nrc = nep_nrc(gedrag=lambda bericht, keer: "sluit" if bericht["id"] == weiger and keer == 0 else 201)
    alle = berichten(engine, klanten=20, per_klant=1)
    weiger = alle[6]["id"]
    relay = Relay(engine, instellingen(database_url, nrc)).start()
    try:
        wait_for(lambda: all(r.status == "sent" for r in outbox(engine)), timeout=30, wat="all delivered")
    finally:
        relay.stop()
    verwacht = Counter(b["id"] for b in alle)
    verwacht[weiger] = 2
    assert nrc.per_bericht(nrc.ontvangen) == verwacht


# ------------------------------------------------------------------ order per klant
def cli(database_url: str, *args: str) -> str:
    uit = subprocess.run([KLANTEN_API, "notificaties", *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"PATH": os.environ.get("PATH", ""), "KLANTEN_DATABASE_URL": database_url})
    assert uit.returncode == 0, uit.stderr
    return uit.stdout


def test_order_per_klant_after_a_permanent_failure(server_factory, nep_nrc, subject_url, engine, database_url):
    """The Notificaties API refuses the first create it sees (400, permanent): that klant's later messages are
    not sent (no partial_update before its create), another klant's are; `notificaties list` shows what the
    failed message holds back; after `notificaties retry` the klant's messages arrive in order."""
    toestand = {"weiger_eerste_create": True, "geweigerd": None}

    def gedrag(bericht, keer):
        if bericht["actie"] == "create" and toestand["weiger_eerste_create"] and toestand["geweigerd"] in (
                None, bericht["hoofdObject"]):
            toestand["geweigerd"] = bericht["hoofdObject"]
            return 400
        return 201

    nrc = nep_nrc(gedrag=gedrag)
    srv = server_factory(notifications_api_url=nrc.url, notifications_client_id=NRC_CLIENT,
                         notifications_secret=NRC_SECRET, notifications_timeout=0.5, notifications_backoff=0.05)
    api = Api(srv.url)
    a = api.post("/klanten", klant_body(subject_url, klantnummer="a1")).json()["url"]
    wait_for(lambda: any(r.status == "failed" for r in outbox(engine)), wat="A's create failed")
    assert api.patch(a, {"functie": "een"}).status_code == 200
    b = api.post("/klanten", klant_body(subject_url, klantnummer="b1")).json()["url"]
    assert api.patch(b, {"functie": "twee"}).status_code == 200
    assert api.delete(a).status_code == 204
    wait_for(lambda: [(m["hoofdObject"], m["actie"]) for m in nrc.beantwoord] == [(b, "create"),
                                                                                  (b, "partial_update")],
             wat="B's messages delivered")
    time.sleep(1.0)                                   # the relay had every chance to send A's later messages
    assert [(m["hoofdObject"], m["actie"]) for m in nrc.ontvangen] == [(a, "create"), (b, "create"),
                                                                       (b, "partial_update")]
    mislukt = [r for r in outbox(engine) if r.status == "failed"]
    assert len(mislukt) == 1
    lijst = cli(database_url, "list")
    regel = next(r for r in lijst.splitlines() if r.startswith(f"{mislukt[0].id}\t"))
    assert regel.split("\t")[2:5] == ["failed", "1", "HTTP 400"] and regel.endswith("\t2")   # holds back 2

    toestand["weiger_eerste_create"] = False
    assert "1 notification(s) queued again" in cli(database_url, "retry", "--id", str(mislukt[0].id))
    srv.app.relay.wake.set()
    wait_for(lambda: len(nrc.beantwoord) == 5, wat="A's messages delivered after the retry")
    assert [(m["hoofdObject"], m["actie"]) for m in nrc.beantwoord if m["hoofdObject"] == a] == [
        (a, "create"), (a, "partial_update"), (a, "destroy")]
    assert all(r.status == "sent" for r in outbox(engine))


def test_a_discarded_message_releases_its_klant(server_factory, nep_nrc, subject_url, engine, database_url):
    nrc = nep_nrc(gedrag=lambda bericht, keer: 400 if bericht["actie"] == "create" else 201)
    srv = server_factory(notifications_api_url=nrc.url, notifications_client_id=NRC_CLIENT,
                         notifications_secret=NRC_SECRET, notifications_timeout=0.5, notifications_backoff=0.05)
    api = Api(srv.url)
    a = api.post("/klanten", klant_body(subject_url, klantnummer="c1")).json()["url"]
    assert api.patch(a, {"functie": "een"}).status_code == 200
    mislukt = wait_for(lambda: [r for r in outbox(engine) if r.status == "failed"], wat="the create failed")
    time.sleep(0.5)
    assert nrc.beantwoord == []
    assert "1 notification(s) discarded" in cli(database_url, "discard", "--id", str(mislukt[0].id))
    srv.app.relay.wake.set()
    wait_for(lambda: [m["actie"] for m in nrc.beantwoord] == ["partial_update"], wat="the update after the discard")
    assert [r.status for r in outbox(engine)] == ["discarded", "sent"]
    assert f"{mislukt[0].id}\t" in cli(database_url, "list", "--status", "discarded")


@pytest.mark.skipif(not os.environ.get("KLANTEN_TEST_DATABASE_URL", "").startswith("postgres"),
                    reason="kills the relay's PostgreSQL connections (pg_terminate_backend)")
def test_a_killed_database_connection_of_the_relay_repeats_nothing(engine, database_url, nep_nrc):
    """While the Notificaties API holds the 5th message, the relay's database connections are terminated. The
    old relay could not mark its batch on the dead connection and sent the whole batch again after the lease;
    now the delivery is marked over a new connection: every message exactly once."""
    from storage.database import make_engine
    relay_engine = make_engine(database_url, pool_size=2, max_overflow=2)
    pids: list[int] = []

    @sa.event.listens_for(relay_engine, "connect")
    def onthoud(dbapi_conn, _record):
        with dbapi_conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pids.append(cur.fetchone()[0])

    def gedrag(bericht, keer):
        if len(nrc.ontvangen) == 5:
            with engine.connect() as conn:
                for pid in pids:
                    conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return 201

    nrc = nep_nrc(gedrag=gedrag)
    alle = berichten(engine, klanten=20, per_klant=1)
    relay = Relay(relay_engine, instellingen(database_url, nrc)).start()
    try:
        wait_for(lambda: all(r.status == "sent" for r in outbox(engine)), timeout=30, wat="all delivered")
        time.sleep(1.0)
    finally:
        relay.stop()
        relay_engine.dispose()
    assert len(pids) >= 2                                                             # it did lose a connection
    assert nrc.per_bericht(nrc.ontvangen) == Counter(b["id"] for b in alle)           # each exactly once


def test_the_retry_horizon_is_read_in_seconds_or_with_a_unit():
    from klanten_api.settings import ConfigError
    lees = lambda waarde: Settings.from_env({"KLANTEN_NOTIFICATIONS_RETRY_HORIZON": waarde})  # noqa: E731
    assert Settings.from_env({}).notifications_retry_horizon == 24 * 3600
    assert [lees(w).notifications_retry_horizon for w in ("90", "90s", "30m", "24h", "2d", "1.5h")] == [
        90, 90, 1800, 86400, 172800, 5400]
    for fout in ("morgen", "-1h", "0", "h"):
        with pytest.raises(ConfigError, match="KLANTEN_NOTIFICATIONS_RETRY_HORIZON"):
            lees(fout)
    assert Settings.from_env({"KLANTEN_NOTIFICATIONS_MAX_BACKOFF": "60"}).notifications_max_backoff == 60
