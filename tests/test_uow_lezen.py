"""A reading unit of work on PostgreSQL runs without BEGIN/ROLLBACK (storage.uow switches its psycopg connection
to autocommit), and gives the connection back to the pool with transactions on: the next unit of work on that
connection may write, and an unfinished write must still roll back. A pool of one connection makes every unit
of work below use the same connection (the same PostgreSQL session)."""
from __future__ import annotations

import os
import uuid

import psycopg.pq
import pytest
import sqlalchemy as sa

from storage.database import make_engine
from storage.uow import UnitOfWork

pytestmark = pytest.mark.skipif(
    not os.environ.get("KLANTEN_TEST_DATABASE_URL", "").strip().startswith("postgres"),
    reason="the autocommit read is PostgreSQL's (SQLite reads in a transaction)")

IDLE = psycopg.pq.TransactionStatus.IDLE
INTRANS = psycopg.pq.TransactionStatus.INTRANS


@pytest.fixture
def een_verbinding(database_url):
    eng = make_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=2)
    yield eng
    eng.dispose()


def status(uow: UnitOfWork):
    return uow.conn.connection.dbapi_connection.info.transaction_status


def tijdelijke_tabel_bestaat(eng) -> bool:
    with UnitOfWork(eng) as uow:
        return uow.conn.exec_driver_sql("SELECT to_regclass('pg_temp.proef_uow') IS NOT NULL").scalar()


def onvoltooide_schrijf(eng) -> None:
    """A write that creates a table in this session and does not commit: rolled back, the table is gone."""
    with UnitOfWork(eng, schrijven=True) as uow:
        uow.conn.exec_driver_sql("CREATE TEMP TABLE proef_uow (x int)")
        assert status(uow) == INTRANS


def test_een_lezing_opent_geen_transactie(een_verbinding):
    with UnitOfWork(een_verbinding) as uow:
        assert uow.klanten.get(uuid.uuid4()) is None
        assert status(uow) == IDLE          # no BEGIN went to the server


def test_na_een_lezing_rolt_een_onvoltooide_schrijf_terug(een_verbinding):
    with UnitOfWork(een_verbinding) as uow:
        uow.klanten.get(uuid.uuid4())
    onvoltooide_schrijf(een_verbinding)
    assert not tijdelijke_tabel_bestaat(een_verbinding)


def test_na_een_mislukte_lezing_rolt_een_onvoltooide_schrijf_terug(een_verbinding):
    with pytest.raises(sa.exc.DataError):
        with UnitOfWork(een_verbinding) as uow:
            uow.conn.exec_driver_sql("SELECT 1/0")
    onvoltooide_schrijf(een_verbinding)
    assert not tijdelijke_tabel_bestaat(een_verbinding)
