"""Database faults on the real PostgreSQL of this machine kind (skipped on SQLite).

PostgreSQL goes away mid-load for a database of the test's own (ALLOW_CONNECTIONS false and every backend of
that database terminated: to the server exactly like a stopped PostgreSQL, a refused connection and dropped
connections, without stopping the PostgreSQL that the rest of the suite shares). While it is away, every
request answers 503 (or 500) application/problem+json within the pool timeout plus a margin, never hangs and
never shows a traceback, and readiness is 503; when it is back, the next requests succeed without restarting
the server and readiness is 200 again. Statement and lock timeouts are set on every connection the server
makes, and they fire.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import requests
import sqlalchemy as sa

from conftest import LEAKS, Api, eigen_postgres_database, klant_body, wait_for
from storage.database import make_engine
from storage.migrate import upgrade

pytestmark = pytest.mark.skipif(
    not os.environ.get("KLANTEN_TEST_DATABASE_URL", "").startswith("postgres"),
    reason="needs PostgreSQL: KLANTEN_TEST_DATABASE_URL=postgresql://...")

POOL_TIMEOUT = 2.0
MARGE = 3.0                 # seconds on top of the pool timeout that a failing request may take at most
PROBLEM = "application/problem+json"


# ---------------------------------------------------------------- a database of our own
@dataclass
class EigenDatabase:
    naam: str
    url: str
    admin: sa.Engine

    def sql(self, statement: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(statement)

    def weg(self) -> None:
        """PostgreSQL gone, for this database only: no new connections, every existing one cut."""
        self.sql(f'ALTER DATABASE "{self.naam}" ALLOW_CONNECTIONS false')
        self.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.naam}' "
                 "AND pid <> pg_backend_pid()")

    def terug(self) -> None:
        self.sql(f'ALTER DATABASE "{self.naam}" ALLOW_CONNECTIONS true')


@pytest.fixture
def eigen_database():
    with eigen_postgres_database("klanten_fault") as (url, admin):
        db = EigenDatabase(url.rsplit("/", 1)[1], url, admin)
        try:
            upgrade(db.url)
            yield db
        finally:
            db.terug()


@pytest.fixture
def fault_server(eigen_database, server_factory):
    """A server on that database (server_factory gives it an engine of its own), pool timeout 2 s. Listed after
    eigen_database, server_factory stops its servers before the database is dropped."""

    def maak(**overrides):
        return server_factory(database_url=eigen_database.url, db_pool_timeout=POOL_TIMEOUT, db_pool_size=5,
                              db_max_overflow=5, **overrides)

    return maak


# ---------------------------------------------------------------- background load
@dataclass
class Uitkomst:
    soort: str
    begin: float
    eind: float
    status: int | None
    content_type: str
    tekst: str
    fout: str | None = None

    @property
    def duur(self) -> float:
        return self.eind - self.begin


def nieuwe_klant() -> dict:
    body = klant_body()
    del body["klantnummer"]          # kla-001: generated, so concurrent creates never collide
    return body


class Belasting:
    """A few threads doing GET list, GET read and POST create, each remembering what it got and how fast."""

    def __init__(self, base: str, klant_pad: str, threads: int = 4):
        self.base, self.klant_pad = base, klant_pad
        self.uitkomsten: list[Uitkomst] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(threads)]

    def _loop(self, i: int) -> None:
        api = Api(self.base)
        soorten = ("list", "read", "create")
        n = i
        while not self._stop.is_set():
            soort = soorten[n % len(soorten)]
            n += 1
            begin = time.monotonic()
            try:
                if soort == "list":
                    r = api.session.get(f"{api.root}/klanten", headers=api.headers(), timeout=30)
                elif soort == "read":
                    r = api.session.get(f"{api.root}{self.klant_pad}", headers=api.headers(), timeout=30)
                else:
                    r = api.session.post(f"{api.root}/klanten", json=nieuwe_klant(), headers=api.headers(), timeout=30)
                uitkomst = Uitkomst(soort, begin, time.monotonic(), r.status_code, r.headers.get("Content-Type", ""),
                                    r.text[:2000])
            except requests.RequestException as exc:
                uitkomst = Uitkomst(soort, begin, time.monotonic(), None, "", "", type(exc).__name__)
            with self._lock:
                self.uitkomsten.append(uitkomst)
            time.sleep(0.02)

    def start(self) -> "Belasting":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(40)


class Vanger(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@contextmanager
def vang_logs():
    vanger, root = Vanger(), logging.getLogger()
    oud = root.level
    root.addHandler(vanger)
    root.setLevel(logging.DEBUG)
    try:
        yield vanger
    finally:
        root.removeHandler(vanger)
        root.setLevel(oud)


def assert_storingsantwoord(uitkomst: Uitkomst) -> None:
    wat = f"{uitkomst.soort} during the outage"
    assert uitkomst.fout is None, f"{wat}: {uitkomst.fout} (hung or connection dropped)"
    assert uitkomst.status in (500, 503), f"{wat}: {uitkomst.status} {uitkomst.tekst[:300]}"
    assert uitkomst.content_type == PROBLEM, f"{wat}: Content-Type {uitkomst.content_type!r}"
    gevonden = LEAKS.search(uitkomst.tekst)
    assert gevonden is None, f"{wat}: the answer reveals internals: {gevonden.group(0)!r}"
    assert uitkomst.duur <= POOL_TIMEOUT + MARGE, f"{wat} took {uitkomst.duur:.2f}s"


def meet(soort: str, doe) -> Uitkomst:
    begin = time.monotonic()
    r = doe()
    return Uitkomst(soort, begin, time.monotonic(), r.status_code, r.headers.get("Content-Type", ""), r.text[:2000])


# ================================================================= PostgreSQL away mid-load, and back
def test_postgresql_weg_onder_belasting_en_weer_terug_zonder_herstart(fault_server, eigen_database):
    srv = fault_server()
    api = Api(srv.url)
    klant = api.post("/klanten", json=nieuwe_klant())
    assert klant.status_code == 201, klant.text
    klant_pad = klant.json()["url"].split("/api/v1", 1)[1]
    assert requests.get(f"{srv.url}/_health/ready", timeout=10).status_code == 200

    with vang_logs() as vanger:
        belasting = Belasting(srv.url, klant_pad).start()
        try:
            time.sleep(1.0)
            weg_begin = time.monotonic()
            eigen_database.weg()
            weg = time.monotonic()
            time.sleep(0.3)
            # from the main thread, on top of the load: every operation and readiness
            tijdens = [
                meet("create", lambda: api.post("/klanten", json=nieuwe_klant())),
                meet("list", lambda: api.get("/klanten", params={"achternaam": "Testpersoon"})),
                meet("read", lambda: api.get(klant_pad)),
                meet("update", lambda: api.put(klant_pad, json=klant_body(klantnummer=klant.json()["klantnummer"]))),
                meet("partial_update", lambda: api.patch(klant_pad, json={"functie": "x"})),
                meet("delete", lambda: api.delete(klant_pad)),
                meet("audittrail", lambda: api.get(f"{klant_pad}/audittrail")),
            ]
            ready_weg = meet("ready", lambda: requests.get(f"{srv.url}/_health/ready", timeout=30))
            time.sleep(2.0)
            terug_begin = time.monotonic()
            eigen_database.terug()
            terug = time.monotonic()
            time.sleep(1.5)
        finally:
            belasting.stop()
        # after the restore: the very next requests of every kind succeed, without a restart
        na = [meet("list", lambda: api.get("/klanten")), meet("read", lambda: api.get(klant_pad)),
              meet("create", lambda: api.post("/klanten", json=nieuwe_klant())),
              meet("partial_update", lambda: api.patch(klant_pad, json={"functie": "terug"}))]
        ready_terug = requests.get(f"{srv.url}/_health/ready", timeout=10)

    uitkomsten = belasting.uitkomsten
    voor = [u for u in uitkomsten if u.eind < weg_begin]
    tijdens_belasting = [u for u in uitkomsten if u.begin > weg + 0.3 and u.eind < terug_begin]
    daarna = [u for u in uitkomsten if u.begin > terug]
    samenvatting = {s: sum(1 for u in uitkomsten if u.status == s) for s in {u.status for u in uitkomsten}}
    print(f"\nload: {len(uitkomsten)} requests {samenvatting}; before {len(voor)}, during {len(tijdens_belasting)}, "
          f"after {len(daarna)}; slowest {max(u.duur for u in uitkomsten):.2f}s")

    # nothing hung, nothing was dropped, nothing took longer than the pool timeout plus a margin
    assert not [u for u in uitkomsten if u.fout], [(u.soort, u.fout) for u in uitkomsten if u.fout]
    traag = [(u.soort, u.status, round(u.duur, 2)) for u in uitkomsten if u.duur > POOL_TIMEOUT + MARGE]
    assert not traag, f"requests slower than {POOL_TIMEOUT + MARGE}s: {traag}"
    # before: all well
    assert voor and all(u.status in (200, 201) for u in voor), [(u.soort, u.status) for u in voor]
    # during: 503 (or 500) problem+json, quickly, no internals
    assert len(tijdens_belasting) >= 10, f"only {len(tijdens_belasting)} load requests during the outage"
    for u in tijdens_belasting + tijdens:
        assert_storingsantwoord(u)
    assert ready_weg.status == 503 and ready_weg.duur <= POOL_TIMEOUT + MARGE, (ready_weg.status, ready_weg.tekst)
    # after: every request that started after the restore succeeded, no restart
    fout_na = [(u.soort, u.status, u.tekst[:200]) for u in daarna + na if u.status not in (200, 201)]
    assert not fout_na, f"requests after PostgreSQL came back failed: {fout_na}"
    assert daarna, "no load requests after the restore"
    assert ready_terug.status_code == 200, ready_terug.text

    # the log: database_unavailable events (class only), never a traceback, no unhandled exception for a 503
    events = [getattr(r, "event", None) for r in vanger.records]
    assert "database_unavailable" in events, sorted(set(map(str, events)))
    tracebacks = [f"{r.name} {r.levelname} {r.getMessage()[:120]}" for r in vanger.records if r.exc_info]
    assert not tracebacks, "log records with a traceback during the outage:\n" + "\n".join(tracebacks[:20])
    aantal_500 = sum(1 for u in tijdens_belasting + tijdens if u.status == 500)
    print(f"outage answers: {sum(1 for u in tijdens_belasting + tijdens if u.status == 503)}x 503, {aantal_500}x 500; "
          f"unhandled_exception events: {events.count('unhandled_exception')}, "
          f"database_unavailable events: {events.count('database_unavailable')}")


def test_postgresql_weg_terwijl_de_server_stil_staat(fault_server, eigen_database):
    """Gone while the pool holds idle connections (nothing in flight): the first request after the cut is already
    a quick 503, and the first request after the restore already succeeds (pool_pre_ping)."""
    srv = fault_server()
    api = Api(srv.url)
    for _ in range(3):
        assert api.post("/klanten", json=nieuwe_klant()).status_code == 201
    eigen_database.weg()
    eerste = meet("list", lambda: api.get("/klanten"))
    assert_storingsantwoord(eerste)
    eigen_database.terug()
    assert api.get("/klanten").status_code == 200
    assert api.post("/klanten", json=nieuwe_klant()).status_code == 201
    assert requests.get(f"{srv.url}/_health/ready", timeout=10).status_code == 200


# ================================================================= statement and lock timeouts
def show(conn, naam: str) -> str:
    return conn.exec_driver_sql(f"SHOW {naam}").scalar_one()


def test_statement_en_lock_timeout_op_elke_verbinding(eigen_database, fault_server):
    standaard = make_engine(eigen_database.url)
    eigen = make_engine(eigen_database.url, statement_timeout_ms=1234, lock_timeout_ms=567)
    try:
        with standaard.connect() as conn:
            assert (show(conn, "statement_timeout"), show(conn, "lock_timeout")) == ("30s", "10s")
        with eigen.connect() as conn:
            assert (show(conn, "statement_timeout"), show(conn, "lock_timeout")) == ("1234ms", "567ms")
    finally:
        standaard.dispose()
        eigen.dispose()

    # the server passes its settings on to every connection of its pool
    srv = fault_server(db_statement_timeout_ms=1500, db_lock_timeout_ms=800)
    verbindingen = [srv.app.engine.connect() for _ in range(3)]
    try:
        for conn in verbindingen:
            assert (show(conn, "statement_timeout"), show(conn, "lock_timeout")) == ("1500ms", "800ms")
        # and the statement timeout fires
        begin = time.monotonic()
        with pytest.raises(sa.exc.DBAPIError) as exc:
            verbindingen[0].exec_driver_sql("SELECT pg_sleep(10)")
        assert time.monotonic() - begin < 1.5 + 2, "statement_timeout did not stop a long statement"
        assert "statement timeout" in str(exc.value.orig).lower() or exc.value.orig.sqlstate == "57014"
    finally:
        for conn in verbindingen:
            conn.close()


def test_een_vergrendelde_klant_geeft_snel_antwoord_door_de_lock_timeout(eigen_database, fault_server):
    """A klant row locked by someone else (a stuck transaction, an operator's session): a PATCH waits at most
    the lock timeout and then answers, never hangs; afterwards the same PATCH succeeds."""
    srv = fault_server(db_lock_timeout_ms=800)
    api = Api(srv.url)
    klant = api.post("/klanten", json=nieuwe_klant())
    assert klant.status_code == 201
    klant_pad = klant.json()["url"].split("/api/v1", 1)[1]
    uuid_ = klant_pad.rsplit("/", 1)[1]
    houder = sa.create_engine(eigen_database.url, poolclass=sa.pool.NullPool)
    try:
        with houder.connect() as conn:
            tx = conn.begin()
            conn.exec_driver_sql(f"SELECT id FROM klant WHERE uuid = '{uuid_}' FOR UPDATE")
            antwoord = meet("partial_update", lambda: api.patch(klant_pad, json={"functie": "vergrendeld"}))
            tx.rollback()
        print(f"\nPATCH of a locked klant: {antwoord.status} after {antwoord.duur:.2f}s")
        assert antwoord.duur < 0.8 + MARGE, f"PATCH waited {antwoord.duur:.2f}s for a locked row"
        assert antwoord.status in (500, 503) and antwoord.content_type == PROBLEM, (antwoord.status, antwoord.tekst)
        assert LEAKS.search(antwoord.tekst) is None, antwoord.tekst
        na = api.patch(klant_pad, json={"functie": "vrij"})
        assert na.status_code == 200, na.text
    finally:
        houder.dispose()


# ================================================================= a network partition between server and PostgreSQL
NETWERK_TIMEOUT = 3.0
# a statement in flight fails after about the network timeout (plus one keepalive interval); a request on a rested
# pooled connection may need it twice (the ping, then one new connection attempt); plus a generous margin
PARTITIE_GRENS = 2 * NETWERK_TIMEOUT + 4.0


@pytest.fixture
def partitie(eigen_database):
    from netwerk import Partitie
    pg = sa.engine.make_url(eigen_database.url)
    pad = Partitie((pg.host or "127.0.0.1", pg.port or 5432))
    try:
        yield pad
    finally:
        pad.opruimen()


def test_een_netwerkpartitie_naar_postgresql_geeft_503_binnen_de_netwerktimeout(eigen_database, partitie,
                                                                                 server_factory):
    """The network to PostgreSQL silently drops everything (no reset, no refusal): a request whose statement
    is in flight and a request issued during the partition both answer 503 within the configured
    KLANTEN_DB_NETWORK_TIMEOUT (times two, plus a margin), not after the kernel's ~15 minutes of retransmissions;
    once the network is back, requests succeed again without a restart. The server's statement and lock
    timeouts are set far higher, so only the network settings can end the wait."""
    host, poort = partitie.adres
    url = sa.engine.make_url(eigen_database.url).set(host=host, port=poort).render_as_string(hide_password=False)
    srv = server_factory(database_url=url, db_network_timeout=NETWERK_TIMEOUT, db_pool_timeout=POOL_TIMEOUT,
                         db_statement_timeout_ms=120_000, db_lock_timeout_ms=120_000)
    api = Api(srv.url)
    klant = api.post("/klanten", json=nieuwe_klant())
    assert klant.status_code == 201, klant.text
    klant_pad = klant.json()["url"].split("/api/v1", 1)[1]
    assert api.get("/klanten").status_code == 200

    # a PATCH in flight: it waits in PostgreSQL for a row lock held directly (not through the cut path)
    houder = sa.create_engine(eigen_database.url, poolclass=sa.pool.NullPool)
    in_vlucht: list[Uitkomst] = []
    try:
        with houder.connect() as conn:
            tx = conn.begin()
            conn.exec_driver_sql(f"SELECT id FROM klant WHERE uuid = '{klant_pad.rsplit('/', 1)[1]}' FOR UPDATE")

            def patch():
                begin = time.monotonic()
                try:
                    r = api.session.patch(f"{api.root}{klant_pad}", json={"functie": "x"}, headers=api.headers(),
                                          timeout=PARTITIE_GRENS + 20)
                    in_vlucht.append(Uitkomst("patch", begin, time.monotonic(), r.status_code,
                                              r.headers.get("Content-Type", ""), r.text[:2000]))
                except requests.RequestException as exc:
                    in_vlucht.append(Uitkomst("patch", begin, time.monotonic(), None, "", "", type(exc).__name__))

            t = threading.Thread(target=patch, daemon=True)
            t.start()
            wacht = eigen_database.admin.connect()
            try:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not wacht.exec_driver_sql(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = "
                        f"'{eigen_database.naam}'").scalar_one():
                    time.sleep(0.05)
            finally:
                wacht.close()
            partitie.knip()
            geknipt = time.monotonic()
            time.sleep(1.5)          # the pool's other connections rest: the next checkout pings through the cut
            tijdens = meet("list", lambda: api.session.get(f"{api.root}/klanten", headers=api.headers(),
                                                           timeout=PARTITIE_GRENS + 20))
            ready = meet("ready", lambda: requests.get(f"{srv.url}/_health/ready", timeout=PARTITIE_GRENS + 20))
            t.join(PARTITIE_GRENS + 25)
            tx.rollback()
    finally:
        houder.dispose()
    patch_uitkomst = in_vlucht[0]
    print(f"\npartition: PATCH in flight {patch_uitkomst.status} after {patch_uitkomst.eind - geknipt:.2f}s from the "
          f"cut; list {tijdens.status} in {tijdens.duur:.2f}s; ready {ready.status} in {ready.duur:.2f}s")
    assert patch_uitkomst.fout is None, f"PATCH in flight: {patch_uitkomst.fout} (hung through the partition)"
    assert patch_uitkomst.eind - geknipt <= PARTITIE_GRENS, f"PATCH in flight took {patch_uitkomst.eind - geknipt:.2f}s"
    for u in (patch_uitkomst, tijdens):
        assert u.status == 503 and u.content_type == PROBLEM, (u.soort, u.status, u.tekst[:300])
        assert LEAKS.search(u.tekst) is None, u.tekst
        assert u.duur <= PARTITIE_GRENS + 1.5, f"{u.soort} took {u.duur:.2f}s"
    assert ready.status == 503 and ready.duur <= PARTITIE_GRENS, (ready.status, ready.duur)

    partitie.herstel()
    # healed: the next requests succeed (give the link a moment to carry traffic again), without a restart
    wait_for(lambda: api.get("/klanten").status_code == 200, timeout=PARTITIE_GRENS + 10, wat="list after healing")
    assert api.patch(klant_pad, json={"functie": "terug"}).status_code == 200
    assert api.post("/klanten", json=nieuwe_klant()).status_code == 201
    assert requests.get(f"{srv.url}/_health/ready", timeout=10).status_code == 200
