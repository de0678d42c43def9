"""Concurrency on PostgreSQL with several worker processes (README: "Drop-in KRC on PostgreSQL, several
workers"; Differences #1 and #2; audit trail and outbox "in the write's own transaction").

A real `klanten-api serve --workers 3` runs as a subprocess against the test database; real JWTs, real
HTTP, one requests session per thread and a threading.Barrier so the requests start together. Each test
uses a bronorganisatie of its own, so rows are counted per test without relying on empty tables.

PostgreSQL only: SQLite serialises writers (BEGIN IMMEDIATE), so these races cannot happen there.
"""
from __future__ import annotations

import json
import os
import threading
import uuid as uuid_mod
from collections import Counter
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from conftest import geldig_rsin, klant_body, token, zonder_nummer
from processen import ServeProces, levend, socket_inodes, tcp_verbindingen
from storage.tables import audittrail, klant, notificatie

pytestmark = pytest.mark.skipif(
    not os.environ.get("KLANTEN_TEST_DATABASE_URL", "").strip().startswith("postgres"),
    reason="several worker processes need PostgreSQL (set KLANTEN_TEST_DATABASE_URL=postgresql://...)")

WORKERS = 3
REQUEST_TIMEOUT = 20.0        # seconds per request (a hung lock is a failure, not a hang)
BARRIER_TIMEOUT = 20.0
UNIEK = {"name": "nonFieldErrors", "code": "unique"}


# ---------- the server: a real process with several workers ----------
def _db_verbindingen(pid: int, db_poort: int) -> int:
    """Established TCP connections of process `pid` to the database port (its pool's connections)."""
    inodes = socket_inodes(pid)
    return sum(1 for _, ver, gevestigd, inode in tcp_verbindingen()
               if gevestigd and ver == db_poort and inode in inodes)


class WorkerServer(ServeProces):
    """`klanten-api serve --workers 3`, remembering its very workers (uvicorn would silently replace a dead one)."""

    def __init__(self, env: dict, log: Path, db_poort: int):
        super().__init__(env, log, workers=WORKERS)
        self.db_poort = db_poort
        self.workers: dict[int, str] = {}

    def assert_gezond(self):
        """The server and the very same workers are still alive."""
        assert self.proc.poll() is None, f"server exited ({self.proc.returncode}):\n{self.log_tekst()}"
        dood = [pid for pid in self.workers if not levend(pid)]
        assert not dood, f"worker processes {dood} died during the test:\n{self.log_tekst()}"
        assert sorted(self.worker_pids()) == sorted(self.workers), (self.worker_pids(), self.workers)


@pytest.fixture(scope="module")
def worker_server(database_url, auth_config, tmp_path_factory):
    env = {
        "KLANTEN_DATABASE_URL": database_url,
        "KLANTEN_AUTH_CONFIG": str(auth_config),
        "KLANTEN_SUBJECT_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "KLANTEN_NOTIFICATIONS_API_URL": "http://127.0.0.1:9/api/v1/",    # nothing listens: the outbox keeps all
        "KLANTEN_NOTIFICATIONS_RELAY": "false",
        # the suite's JWT secret is a recognisable test value: like conftest's base_settings (development=True)
        # this lets the start-up secret check accept it; it changes nothing else
        "KLANTEN_DEVELOPMENT": "true",
    }
    srv = WorkerServer(env, tmp_path_factory.mktemp("worker_server") / "server.log",
                       sa.engine.make_url(database_url).port or 5432)
    try:
        srv.wacht_tot_klaar()       # several worker processes, really: the uvicorn supervisor's spawned children
        srv.workers = {pid: srv.kinderen()[pid] for pid in srv.worker_pids()}
        yield srv
    finally:
        srv.stop()


# ---------- racing requests ----------
def _sessie() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.headers["Authorization"] = f"Bearer {token()}"
    return s


def race(srv: WorkerServer, verzoeken: list[tuple[str, str, dict | None]]) -> list[tuple[int, object]]:
    """Send all requests at once, one thread and one session each; (status, parsed body) in input order.

    Every thread first opens its connection (a cheap GET without database work), then waits at the barrier,
    so the measured requests leave together on connections that are already open."""
    barriere = threading.Barrier(len(verzoeken), timeout=BARRIER_TIMEOUT)
    uitkomsten: list = [None] * len(verzoeken)

    def werk(i: int, methode: str, url: str, body: dict | None):
        sessie = _sessie()
        try:
            sessie.get(f"{srv.url}/ref/kanalen/", timeout=REQUEST_TIMEOUT).raise_for_status()
            barriere.wait()
            resp = sessie.request(methode, url, json=body, timeout=REQUEST_TIMEOUT)
            try:
                inhoud = resp.json()
            except ValueError:
                inhoud = resp.text
            uitkomsten[i] = (resp.status_code, inhoud)
        except BaseException as exc:        # a reset connection or a timeout is a failure of its own
            barriere.abort()
            uitkomsten[i] = (None, repr(exc))
        finally:
            sessie.close()

    draden = [threading.Thread(target=werk, args=(i, *v), daemon=True) for i, v in enumerate(verzoeken)]
    for d in draden:
        d.start()
    for d in draden:
        d.join(REQUEST_TIMEOUT + BARRIER_TIMEOUT + 5)
    assert not any(d.is_alive() for d in draden), "requests did not finish in time"
    fouten = [(i, u) for i, u in enumerate(uitkomsten) if u[0] is None]
    assert not fouten, f"requests failed without an HTTP answer: {fouten}\n{srv.log_tekst()}"
    vijfxx = [(i, u) for i, u in enumerate(uitkomsten) if u[0] >= 500]
    assert not vijfxx, f"5xx answers: {vijfxx}\n{srv.log_tekst()}"
    return uitkomsten


def is_uniek_fout(status: int, body) -> bool:
    return (status == 400 and isinstance(body, dict) and len(body.get("invalidParams") or []) == 1
            and {k: body["invalidParams"][0].get(k) for k in UNIEK} == UNIEK)



def klant_uuid(body: dict) -> uuid_mod.UUID:
    return uuid_mod.UUID(body["url"].rsplit("/", 1)[1])


# ---------- the database as it is ----------
def klant_rijen(engine, bronorganisatie: str) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(klant.c.id, klant.c.uuid, klant.c.klantnummer)
                            .where(klant.c.bronorganisatie == bronorganisatie).order_by(klant.c.id)).all()


def audit_per_klant(engine, klant_ids) -> Counter:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(audittrail.c.klant_id, audittrail.c.actie)
                            .where(audittrail.c.klant_id.in_(list(klant_ids)))).all()
    return Counter((r.klant_id, r.actie) for r in rows)


def outbox(engine, klant_uuids) -> list[tuple[uuid_mod.UUID, str]]:
    """(klant_uuid, actie) of the outbox messages of these klanten, in id order."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(notificatie.c.klant_uuid, notificatie.c.bericht)
                            .where(notificatie.c.klant_uuid.in_(list(klant_uuids))).order_by(notificatie.c.id)).all()
    return [(r.klant_uuid, json.loads(r.bericht)["actie"]) for r in rows]


def totalen(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                     for t in (audittrail, notificatie))


# ---------- tests ----------
def test_several_worker_processes_serve_requests(worker_server, engine):
    """The fixture found WORKERS spawned workers; here: more than one of them really does database work."""
    bron = geldig_rsin(7101)
    bezig = set()
    for _ in range(5):
        race(worker_server, [("POST", f"{worker_server.root}/klanten", zonder_nummer(bronorganisatie=bron))] * 12)
        bezig = {pid for pid in worker_server.workers if _db_verbindingen(pid, worker_server.db_poort) > 0}
        if len(bezig) >= 2:
            break
    assert len(bezig) >= 2, (f"only workers {bezig} of {sorted(worker_server.workers)} hold database "
                             "connections after 60 concurrent creates")
    worker_server.assert_gezond()


def test_same_klantnummer_twenty_at_once_one_wins(worker_server, engine):
    bron = geldig_rsin(7102)
    audit_voor, outbox_voor = totalen(engine)
    body = klant_body(bronorganisatie=bron, klantnummer="RACE01")
    uitkomsten = race(worker_server, [("POST", f"{worker_server.root}/klanten", body)] * 20)

    statussen = Counter(s for s, _ in uitkomsten)
    assert statussen == {201: 1, 400: 19}, uitkomsten
    verliezers = [b for s, b in uitkomsten if s == 400]
    assert all(is_uniek_fout(400, b) for b in verliezers), verliezers
    winnaar = next(b for s, b in uitkomsten if s == 201)
    assert (winnaar["bronorganisatie"], winnaar["klantnummer"]) == (bron, "RACE01")

    rijen = klant_rijen(engine, bron)
    assert [(r.uuid, r.klantnummer) for r in rijen] == [(klant_uuid(winnaar), "RACE01")]
    assert audit_per_klant(engine, [rijen[0].id]) == {(rijen[0].id, "create"): 1}
    assert outbox(engine, [rijen[0].uuid]) == [(rijen[0].uuid, "create")]
    # the 19 losers left nothing behind: no audit row, no message (their transactions rolled back)
    assert totalen(engine) == (audit_voor + 1, outbox_voor + 1)
    worker_server.assert_gezond()


def test_fifty_creates_without_klantnummer_get_distinct_numbers(worker_server, engine):
    bron = geldig_rsin(7103)
    audit_voor, outbox_voor = totalen(engine)
    uitkomsten = race(worker_server, [("POST", f"{worker_server.root}/klanten", zonder_nummer(bronorganisatie=bron))] * 50)

    assert Counter(s for s, _ in uitkomsten) == {201: 50}, [u for u in uitkomsten if u[0] != 201]
    nummers = [b["klantnummer"] for _, b in uitkomsten]
    assert len(set(nummers)) == 50, Counter(nummers).most_common(5)
    assert all(isinstance(n, str) and 1 <= len(n) <= 8 for n in nummers), nummers

    rijen = klant_rijen(engine, bron)
    assert len(rijen) == 50
    assert {(r.uuid, r.klantnummer) for r in rijen} == {(klant_uuid(b), b["klantnummer"]) for _, b in uitkomsten}
    ids = [r.id for r in rijen]
    assert audit_per_klant(engine, ids) == {(i, "create"): 1 for i in ids}
    berichten = outbox(engine, [r.uuid for r in rijen])
    assert Counter(berichten) == {(r.uuid, "create"): 1 for r in rijen}
    assert totalen(engine) == (audit_voor + 50, outbox_voor + 50)
    worker_server.assert_gezond()


@pytest.mark.parametrize("ronde", range(3))
def test_patches_racing_a_delete_leave_a_consistent_end_state(worker_server, engine, ronde):
    bron = geldig_rsin(7104 + ronde)
    sessie = _sessie()
    resp = sessie.post(f"{worker_server.root}/klanten", json=klant_body(bronorganisatie=bron, klantnummer="PD1"),
                       timeout=REQUEST_TIMEOUT)
    sessie.close()
    assert resp.status_code == 201, resp.text
    url = resp.json()["url"]
    [rij] = klant_rijen(engine, bron)

    verzoeken = [("PATCH", url, {"voornaam": f"Naam{i}", "functie": f"functie {i}"}) for i in range(10)]
    verzoeken.insert(5 + ronde, ("DELETE", url, None))      # the delete's thread starts among the patches
    uitkomsten = race(worker_server, verzoeken)

    delete_status = uitkomsten[5 + ronde][0]
    patch_statussen = [s for i, (s, _) in enumerate(uitkomsten) if i != 5 + ronde]
    assert delete_status == 204, uitkomsten
    assert set(patch_statussen) <= {200, 404}, uitkomsten
    assert Counter(s for s, _ in uitkomsten)[204] == 1
    for s, b in uitkomsten:
        if s == 200:
            assert b["url"] == url and b["voornaam"].startswith("Naam"), b
    geslaagd = patch_statussen.count(200)

    sessie = _sessie()
    assert sessie.get(url, timeout=REQUEST_TIMEOUT).status_code == 404
    sessie.close()
    assert klant_rijen(engine, bron) == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audittrail)
                            .where(audittrail.c.klant_id == rij.id)).scalar_one() == 0
    acties = [a for _, a in outbox(engine, [rij.uuid])]
    verwacht = Counter({"create": 1, "destroy": 1, "partial_update": geslaagd})
    assert Counter(acties) == +verwacht, (acties, patch_statussen)      # unary + drops a zero count
    assert acties[0] == "create" and acties[-1] == "destroy", acties
    worker_server.assert_gezond()


def test_chosen_numbers_racing_generated_numbers(worker_server, engine):
    bron = geldig_rsin(7110)
    audit_voor, outbox_voor = totalen(engine)
    gekozen = [("POST", f"{worker_server.root}/klanten", klant_body(bronorganisatie=bron, klantnummer=str(i)))
               for i in range(1, 21)]
    gegenereerd = [("POST", f"{worker_server.root}/klanten", zonder_nummer(bronorganisatie=bron))] * 20
    verzoeken = [v for paar in zip(gekozen, gegenereerd) for v in paar]    # interleaved
    uitkomsten = race(worker_server, verzoeken)
    gekozen_uit = uitkomsten[0::2]
    gegenereerd_uit = uitkomsten[1::2]

    # a create without klantnummer always succeeds (README Differences #1: safe with concurrent creates)
    assert [s for s, _ in gegenereerd_uit] == [201] * 20, [u for u in gegenereerd_uit if u[0] != 201]
    gegenereerde_nummers = {b["klantnummer"] for _, b in gegenereerd_uit}
    assert len(gegenereerde_nummers) == 20
    assert all(1 <= len(n) <= 8 for n in gegenereerde_nummers)

    for i, (s, b) in enumerate(gekozen_uit, start=1):
        if s == 201:
            assert b["klantnummer"] == str(i), b
        else:
            # a chosen number loses only to a generated one that took it first
            assert is_uniek_fout(s, b), (i, s, b)
            assert str(i) in gegenereerde_nummers, (f"chosen klantnummer {i} was refused, but no generated "
                                                    f"number took it: {sorted(gegenereerde_nummers)}")
    gekozen_ok = {str(i) for i, (s, _) in enumerate(gekozen_uit, start=1) if s == 201}
    assert not gekozen_ok & gegenereerde_nummers

    geslaagd = [b for s, b in uitkomsten if s == 201]
    rijen = klant_rijen(engine, bron)
    assert len({r.klantnummer for r in rijen}) == len(rijen) == len(geslaagd)
    assert {(r.uuid, r.klantnummer) for r in rijen} == {(klant_uuid(b), b["klantnummer"]) for b in geslaagd}
    ids = [r.id for r in rijen]
    assert audit_per_klant(engine, ids) == {(i, "create"): 1 for i in ids}
    assert Counter(outbox(engine, [r.uuid for r in rijen])) == {(r.uuid, "create"): 1 for r in rijen}
    assert totalen(engine) == (audit_voor + len(geslaagd), outbox_voor + len(geslaagd))
    worker_server.assert_gezond()
