"""Notification outbox: messages written in the write's transaction, sent later by the relay."""
from __future__ import annotations

import datetime as dt
import uuid as uuid_mod

import sqlalchemy as sa

from .tables import notificatie

WACHTEND, VERZONDEN, MISLUKT, VERWORPEN = "pending", "sent", "failed", "discarded"
_INSERT = sa.insert(notificatie)


class NotificatieRepository:
    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def toevoegen(self, klant_uuid: uuid_mod.UUID, kanaal: str, bericht: str, nu: dt.datetime,
                  traceparent: str | None = None) -> None:
        self.conn.execute(_INSERT, kolommen(klant_uuid, kanaal, bericht, nu, traceparent))


def kolommen(klant_uuid: uuid_mod.UUID, kanaal: str, bericht: str, nu: dt.datetime,
             traceparent: str | None = None) -> dict:
    """Column values of a new outbox message: pending, due now."""
    return {"klant_uuid": klant_uuid, "kanaal": kanaal, "bericht": bericht, "status": WACHTEND,
            "pogingen": 0, "volgende_poging": nu, "laatste_fout": "", "aangemaakt": nu, "traceparent": traceparent}
