"""What a write sends to PostgreSQL: the klant, then its audit row and its outbox message in one statement
(a data-modifying CTE, storage.uow.UnitOfWork.vastleggen), inside the write's one transaction.

Counted with SQLAlchemy's cursor events on the server's own engine while real HTTP requests run; the rows
themselves are read back afterwards, so the single statement is shown to write both.
"""
from __future__ import annotations

import json
import os
import uuid

import pytest
import sqlalchemy as sa

from conftest import Api, zonder_nummer
from storage.tables import audittrail, klant, notificatie

pytestmark = pytest.mark.skipif(
    not os.environ.get("KLANTEN_TEST_DATABASE_URL", "").strip().startswith("postgres"),
    reason="the combined statement is PostgreSQL's (SQLite writes the two rows one by one)")


@pytest.fixture
def schrijver(server_factory, httpserver, engine):
    httpserver.expect_request("/api/v1/notificaties", method="POST").respond_with_json({}, status=201)
    srv = server_factory(notifications_api_url=httpserver.url_for("/api/v1/"), notifications_relay=False)
    gezien: list[str] = []

    def noteer(conn, cursor, statement, parameters, context, executemany):
        gezien.append(" ".join(statement.split()))

    sa.event.listen(engine, "before_cursor_execute", noteer)
    try:
        yield Api(srv.url), gezien
    finally:
        sa.event.remove(engine, "before_cursor_execute", noteer)


def tabellen_van(statement: str) -> list[str]:
    return [w for w in ("klant ", "audittrail ", "notificatie ") if f"INTO {w}" in statement + " "]


def test_create_patch_and_delete_write_audit_and_outbox_in_one_statement(schrijver, engine):
    api, gezien = schrijver

    resp = api.post("/klanten", json=zonder_nummer())
    assert resp.status_code == 201, resp.text
    url = resp.json()["url"]
    create = list(gezien)
    assert len(create) == 2, create                       # the klant; its audit row and outbox message
    assert tabellen_van(create[0]) == ["klant "]
    assert create[1].startswith("WITH audit AS (INSERT INTO audittrail ")
    assert tabellen_van(create[1]) == ["audittrail ", "notificatie "]

    gezien.clear()
    resp = api.patch(url.split("/api/v1", 1)[1], json={"functie": "Beheerder"})
    assert resp.status_code == 200, resp.text
    patch = list(gezien)
    assert len(patch) == 3, patch                          # the row locked, updated; audit + outbox together
    assert "FOR UPDATE" in patch[0] and patch[1].startswith("UPDATE klant ")
    assert tabellen_van(patch[2]) == ["audittrail ", "notificatie "]

    klant_uuid = uuid.UUID(url.rsplit("/", 1)[1])
    with engine.connect() as conn:
        klant_id = conn.execute(sa.select(klant.c.id).where(klant.c.uuid == klant_uuid)).scalar_one()
        acties = conn.execute(sa.select(audittrail.c.actie, audittrail.c.resource_url)
                              .where(audittrail.c.klant_id == klant_id).order_by(audittrail.c.id)).all()
        berichten = conn.execute(sa.select(notificatie.c.bericht, notificatie.c.status)
                                 .where(notificatie.c.klant_uuid == klant_uuid).order_by(notificatie.c.id)).all()
    assert acties == [("create", url), ("partial_update", url)]
    assert [(json.loads(b)["actie"], json.loads(b)["resourceUrl"], s) for b, s in berichten] == [
        ("create", url, "pending"), ("partial_update", url, "pending")]

    gezien.clear()
    assert api.delete(url.split("/api/v1", 1)[1]).status_code == 204
    # a deleted klant takes its audit trail with it: only the outbox message is written
    assert tabellen_van(gezien[-1]) == ["notificatie "] and not gezien[-1].startswith("WITH")
