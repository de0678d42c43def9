"""Engine construction: explicit pool settings, SQLite made safe for several threads and processes."""
from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from types import SimpleNamespace

import psycopg
import sqlalchemy as sa
from psycopg import Column

log = logging.getLogger("klanten_api.database")

# A pooled PostgreSQL connection that rested longer than this is pinged before use (see make_engine).
PING_NA_RUST_SECONDEN = 1.0


def normaliseer_url(url: str) -> str:
    """postgres:// and postgresql:// mean psycopg 3 here (the only PostgreSQL driver we install)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def netwerk_args(network_timeout: float) -> dict:
    """libpq parameters that bound how long a connection waits for a database it can no longer reach.

    statement_timeout and lock_timeout are enforced by the server: when the network between us and PostgreSQL
    is gone (a partition, a host that vanished without closing its sockets) nothing would end a statement in
    flight or a ping of a pooled connection for the kernel's ~15 minutes of retransmissions. So: a connect
    timeout; tcp_user_timeout (Linux), the longest that sent data may stay unacknowledged; and TCP keepalives,
    which make a connection that is waiting for an answer send something, so that tcp_user_timeout also ends
    a wait for a reply that never comes. A long statement of a reachable server is not affected: its kernel
    acknowledges the probes."""
    seconden = max(1, round(network_timeout / 3))
    return {"connect_timeout": max(2, math.ceil(network_timeout)),    # libpq: whole seconds, at least 2
            "keepalives": 1, "keepalives_idle": seconden, "keepalives_interval": seconden, "keepalives_count": 3,
            "tcp_user_timeout": int(network_timeout * 1000)}


class _Beschrijving(Sequence):
    """A result's `cursor.description`, its Column objects made when first read. SQLAlchemy asks for the
    description after every statement but, for a statement it has run before, only to see that there is one:
    psycopg would build a Column (name decoded, type looked up) for each of the 23 columns of a klant every time."""

    __slots__ = ("_bron", "_n", "_kolommen")

    def __init__(self, bron: SimpleNamespace, n: int):
        self._bron, self._n, self._kolommen = bron, n, None

    def _lijst(self) -> list:
        if self._kolommen is None:
            self._kolommen = [Column(self._bron, i) for i in range(self._n)]
        return self._kolommen

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index):
        return self._lijst()[index]

    def __iter__(self):
        return iter(self._lijst())

    def __eq__(self, other) -> bool:
        return self._lijst() == (other._lijst() if isinstance(other, _Beschrijving) else other)

    __hash__ = None

    def __repr__(self) -> str:
        return repr(self._lijst())


class BeschrijvendeCursor(psycopg.Cursor):
    """psycopg's cursor with a description made on demand (`_Beschrijving`); everything else as psycopg's."""

    @property
    def description(self):
        res = self.pgresult
        if res is not None and res.nfields:
            # the result, not the cursor: the description stays that of this result when the cursor moves on
            return _Beschrijving(SimpleNamespace(pgresult=res, _encoding=self._encoding, adapters=self.adapters),
                                 res.nfields)
        return super().description


_JSON = json.JSONDecoder()


def json_uit_postgresql(data: bytes):
    """A json/jsonb value from psycopg (bytes): what json.loads(bytes) returns, without its per-call encoding
    detection (a page decodes a hundred of these). PostgreSQL's JSON text starts with an ASCII character, so
    json.loads would read it as UTF-8 as well; anything else still goes through json.loads."""
    if data[:1] < b"\x80" and data[1:2] != b"\x00":
        return _JSON.decode(data.decode("utf-8", "surrogatepass"))
    return json.loads(data)


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10, pool_timeout: float = 10.0,
                statement_timeout_ms: int = 30_000, lock_timeout_ms: int = 10_000,
                network_timeout: float = 10.0, poolclass: type | None = None) -> sa.Engine:
    """`poolclass`: a QueuePool subclass (the metrics' counting pool) instead of QueuePool itself."""
    url = normaliseer_url(url)
    extra = {"poolclass": poolclass} if poolclass is not None else {}
    if url.startswith("sqlite"):
        memory = ":memory:" in url or url in ("sqlite://", "sqlite:///")
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                                  pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout,
                                  **({} if memory else extra))

        @sa.event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            # we issue BEGIN ourselves (below); pysqlite's implicit transactions would defeat BEGIN IMMEDIATE
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # A writing unit of work takes the write lock up front: two writers that both start with a
            # read would otherwise deadlock on the lock upgrade and one would fail with "database is locked".
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("schrijven") else "BEGIN")

        return engine
    engine = sa.create_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout, **extra,
        json_deserializer=json_uit_postgresql,
        connect_args={"options": f"-c statement_timeout={statement_timeout_ms} -c lock_timeout={lock_timeout_ms}",
                      "cursor_factory": BeschrijvendeCursor, **netwerk_args(network_timeout)},
    )

    # Pessimistic disconnect handling, but only for connections that rested: one that came back to the pool a
    # moment ago was working then, so under load no request pays a round trip for a ping (pool_pre_ping would
    # ping on every checkout). A connection that died since (PostgreSQL restarted while the server was idle) is
    # found here and replaced; one that dies under load fails its statement, and SQLAlchemy then invalidates the
    # whole pool, so the next requests get fresh connections.
    @sa.event.listens_for(engine, "checkin")
    def _terug_in_pool(_dbapi_conn, record):
        record.info["terug"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _uit_pool(dbapi_conn, record, _proxy):
        terug = record.info.get("terug")
        if terug is None or time.monotonic() - terug <= PING_NA_RUST_SECONDEN:
            return          # new, or just used
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DisconnectionError() from exc   # the pool discards it and tries another connection

    return engine


class DatabaseOnbereikbaar(Exception):
    """The database could not be reached at start-up within the configured wait."""

    def __init__(self, reden: str, pogingen: int, gewacht: float):
        super().__init__(reden)
        self.reden, self.pogingen, self.gewacht = reden, pogingen, gewacht


def beschrijving(url: str) -> dict:
    """Where the database is, for log lines: host, port and name, never the user's password."""
    u = sa.engine.make_url(normaliseer_url(url))
    return {"database_host": u.host or "", "database_port": u.port, "database_name": u.database or ""}


def _reden(exc: BaseException, url: str) -> str:
    """The driver's first line (e.g. 'Connection refused'), which says what is wrong; a password is masked."""
    orig = getattr(exc, "orig", None) or exc
    tekst = (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]
    wachtwoord = sa.engine.make_url(normaliseer_url(url)).password
    return tekst.replace(wachtwoord, "***") if wachtwoord else tekst


def wacht_op_database(url: str, *, wacht_seconden: float, network_timeout: float = 10.0) -> None:
    """Connect once, retrying with a growing pause for up to `wacht_seconden` (0: one attempt).

    An orchestrator may start the server before its database: then `serve` waits instead of failing at once,
    one log line per attempt (event db_waiting). SQLite is a file: waiting would not make it appear."""
    url = normaliseer_url(url)
    if url.startswith("sqlite"):
        wacht_seconden = 0
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    else:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=netwerk_args(network_timeout))
    begin = time.monotonic()
    deadline = begin + wacht_seconden
    pauze, poging = 0.5, 0
    try:
        while True:
            poging += 1
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
                if poging > 1:
                    log.info("database reachable", extra={"event": "db_reachable", "attempt": poging,
                                                          **beschrijving(url)})
                return
            except sa.exc.DBAPIError as exc:
                reden = _reden(exc, url)
                rest = deadline - time.monotonic()
                if rest <= 0:
                    raise DatabaseOnbereikbaar(reden, poging, time.monotonic() - begin) from None
                pauze_nu = min(pauze, rest)
                log.warning("waiting for the database", extra={
                    "event": "db_waiting", "attempt": poging, "retry_in_seconds": round(pauze_nu, 1),
                    "reason": reden, **beschrijving(url)})
                time.sleep(pauze_nu)
                pauze = min(pauze * 2, 5.0)
    finally:
        engine.dispose()
