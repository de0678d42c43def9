"""/_metrics counts the requests that found every database connection of the pool in use (and waited), and those
that waited too long (issue #15), against a real server whose pool holds one connection. The one connection is
held by a write that waits for a lock a test transaction holds: PostgreSQL's row lock, SQLite's write lock."""
from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager

import sqlalchemy as sa

from conftest import Api, klant_body
from test_metrics_ac_ratelimit import verschil
from test_ops_endpoints import scrape

POSTGRES = os.environ.get("KLANTEN_TEST_DATABASE_URL", "").startswith("postgres")


@contextmanager
def vergrendeld(database_url: str, engine, klant_uuid: str):
    """While inside, a write to that klant waits (and holds its pool connection while it waits)."""
    if POSTGRES:
        with engine.connect() as conn, conn.begin():
            conn.execute(sa.text("SELECT id FROM klant WHERE uuid = :u FOR UPDATE"), {"u": uuid.UUID(klant_uuid)})
            yield
    else:
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("ROLLBACK")
        finally:
            conn.close()


def test_pool_waits_and_timeouts_are_counted(server_factory, database_url, engine):
    srv = server_factory(database_url=database_url, db_pool_size=1, db_max_overflow=0, db_pool_timeout=1.0)
    api = Api(srv.url)
    resp = api.post("/klanten", klant_body(klantnummer="77001"))
    assert resp.status_code == 201, resp.text
    klant = resp.json()["url"].rsplit("/", 1)[1]
    voor = scrape(srv.url)
    antwoorden: dict[str, int] = {}

    def verzoek(naam: str, doe) -> threading.Thread:
        t = threading.Thread(target=lambda: antwoorden.__setitem__(naam, doe().status_code))
        t.start()
        return t

    with vergrendeld(database_url, engine, klant):
        # the PATCH takes the pool's one connection and waits for the lock
        patch = verzoek("patch", lambda: Api(srv.url).patch(f"/klanten/{klant}", {"telefoonnummer": "0612345678"}))
        time.sleep(0.5)
        # finds the pool empty, waits 1 s (KLANTEN_DB_POOL_TIMEOUT) and gives up
        eerste = verzoek("te_laat", lambda: Api(srv.url).get(f"/klanten/{klant}"))
        eerste.join(10)
        # finds the pool empty, and gets the connection when the PATCH is done
        tweede = verzoek("op_tijd", lambda: Api(srv.url).get(f"/klanten/{klant}"))
        time.sleep(0.3)
    for t in (patch, tweede):
        t.join(30)
    assert antwoorden["patch"] == 200 and antwoorden["op_tijd"] == 200, antwoorden
    assert antwoorden["te_laat"] == 503, antwoorden
    na = scrape(srv.url)
    assert verschil(voor, na, "klanten_db_pool_waits_total") == 2
    assert verschil(voor, na, "klanten_db_pool_timeouts_total") == 1
    # all back in the pool: the process's connections in use are its scrape's, none left over
    assert verschil(voor, na, "klanten_db_pool_connections_in_use") == 0
