"""Engine construction: explicit pool settings, SQLite made safe for several threads and processes."""
from __future__ import annotations

import sqlalchemy as sa


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
    return sa.create_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout, pool_pre_ping=True,
        connect_args={"options": f"-c statement_timeout={statement_timeout_ms} -c lock_timeout={lock_timeout_ms}",
                      "connect_timeout": 10},
    )
