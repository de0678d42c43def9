"""Engine construction: explicit pool settings, SQLite made safe for several threads and processes."""
from __future__ import annotations

import time

import sqlalchemy as sa

# A pooled PostgreSQL connection that rested longer than this is pinged before use (see make_engine).
PING_NA_RUST_SECONDEN = 1.0


def normaliseer_url(url: str) -> str:
    """postgres:// and postgresql:// mean psycopg 3 here (the only PostgreSQL driver we install)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10, pool_timeout: float = 10.0,
                statement_timeout_ms: int = 30_000, lock_timeout_ms: int = 10_000) -> sa.Engine:
    url = normaliseer_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                                  pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout)
        memory = ":memory:" in url or url in ("sqlite://", "sqlite:///")

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
        url, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout,
        connect_args={"options": f"-c statement_timeout={statement_timeout_ms} -c lock_timeout={lock_timeout_ms}",
                      "connect_timeout": 10},
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
