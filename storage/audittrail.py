"""Audit trail repository: rows belong to a klant (deleted with it)."""
from __future__ import annotations

import uuid as uuid_mod

import sqlalchemy as sa

from .tables import audittrail

# API field -> column, in the API's output order (logrecord_id is stored, never shown)
VELDEN = (
    ("uuid", "uuid"), ("bron", "bron"), ("applicatieId", "applicatie_id"),
    ("applicatieWeergave", "applicatie_weergave"), ("gebruikersId", "gebruikers_id"),
    ("gebruikersWeergave", "gebruikers_weergave"), ("actie", "actie"), ("actieWeergave", "actie_weergave"),
    ("resultaat", "resultaat"), ("hoofdObject", "hoofd_object"), ("resource", "resource"),
    ("resourceUrl", "resource_url"), ("toelichting", "toelichting"), ("resourceWeergave", "resource_weergave"),
    ("aanmaakdatum", "aanmaakdatum"), ("wijzigingen", "wijzigingen"),
)


_INSERT = sa.insert(audittrail)     # one statement, compiled once (values are parameters)


def kolommen(klant_id: int, regel: dict, logrecord_id: str) -> dict:
    """Column values of an audit row."""
    return {"klant_id": klant_id, "logrecord_id": logrecord_id, **{kolom: regel[veld] for veld, kolom in VELDEN}}


def _regel(row) -> dict:
    m = row._mapping
    return {veld: m[kolom] for veld, kolom in VELDEN}


class AuditTrailRepository:
    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def toevoegen(self, klant_id: int, regel: dict, logrecord_id: str) -> None:
        self.conn.execute(_INSERT, kolommen(klant_id, regel, logrecord_id))

    def van_klant(self, klant_id: int) -> list[dict]:
        rows = self.conn.execute(sa.select(audittrail).where(audittrail.c.klant_id == klant_id)
                                 .order_by(audittrail.c.aanmaakdatum, audittrail.c.id))
        return [_regel(r) for r in rows]

    def get(self, klant_id: int, uuid: uuid_mod.UUID) -> dict | None:
        row = self.conn.execute(sa.select(audittrail).where(audittrail.c.klant_id == klant_id,
                                                            audittrail.c.uuid == uuid)).first()
        return _regel(row) if row else None

    def verwijder_van_klant(self, klant_id: int) -> None:
        self.conn.execute(sa.delete(audittrail).where(audittrail.c.klant_id == klant_id))

    # ---------- bulk loading: `klanten-api import` (DECISIONS #28) ----------
    def toevoegen_veel(self, rijen: list[tuple[int, dict, str]]) -> None:
        """Insert audit rows as they come (klant_id, row with API names, logrecord_id), in one batched statement."""
        if rijen:
            self.conn.execute(_INSERT, [kolommen(*r) for r in rijen])

    def van_klanten(self, klant_ids) -> dict[int, list[dict]]:
        """klant id -> its rows (as van_klant orders them) for several klanten at once."""
        uit: dict[int, list[dict]] = {i: [] for i in klant_ids}
        ids = list(uit)
        for i in range(0, len(ids), 500):
            rows = self.conn.execute(sa.select(audittrail).where(audittrail.c.klant_id.in_(ids[i:i + 500]))
                                     .order_by(audittrail.c.klant_id, audittrail.c.aanmaakdatum, audittrail.c.id))
            for r in rows:
                uit[r.klant_id].append(_regel(r))
        return uit

    def bestaande_uuids(self, uuids) -> dict[uuid_mod.UUID, int]:
        """uuid -> klant id of the audit rows among `uuids` that exist."""
        uit = {}
        uuids = list(uuids)
        for i in range(0, len(uuids), 500):
            rows = self.conn.execute(sa.select(audittrail.c.uuid, audittrail.c.klant_id)
                                     .where(audittrail.c.uuid.in_(uuids[i:i + 500])))
            uit.update({r[0]: r[1] for r in rows})
        return uit
