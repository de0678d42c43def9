"""Audit trail repositories: rows belong to a klant, or to a contactmoment (each deleted with its owner)."""
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


def kolommen(klant_id: int, regel: dict, logrecord_id: str, eigenaar: str = "klant_id") -> dict:
    """Column values of an audit row (`eigenaar`: the owner's column, klant_id or contactmoment_id)."""
    return {eigenaar: klant_id, "logrecord_id": logrecord_id, **{kolom: regel[veld] for veld, kolom in VELDEN}}


def _regel(row) -> dict:
    m = row._mapping
    return {veld: m[kolom] for veld, kolom in VELDEN}


class AuditTrailRepository:
    """The rows of one audit table; `eigenaar` is the column of the object they belong to."""

    def __init__(self, conn: sa.Connection, tabel: sa.Table = audittrail, eigenaar: str = "klant_id"):
        self.conn = conn
        self.tabel = tabel
        self.eigenaar = eigenaar
        self._insert = _INSERT if tabel is audittrail else sa.insert(tabel)

    def toevoegen(self, klant_id: int, regel: dict, logrecord_id: str) -> None:
        self.conn.execute(self._insert, kolommen(klant_id, regel, logrecord_id, self.eigenaar))

    def van_klant(self, klant_id: int) -> list[dict]:
        t = self.tabel
        rows = self.conn.execute(sa.select(t).where(t.c[self.eigenaar] == klant_id).order_by(t.c.aanmaakdatum, t.c.id))
        return [_regel(r) for r in rows]

    def get(self, klant_id: int, uuid: uuid_mod.UUID) -> dict | None:
        t = self.tabel
        row = self.conn.execute(sa.select(t).where(t.c[self.eigenaar] == klant_id, t.c.uuid == uuid)).first()
        return _regel(row) if row else None

    def verwijder_van_klant(self, klant_id: int) -> None:
        self.conn.execute(sa.delete(self.tabel).where(self.tabel.c[self.eigenaar] == klant_id))

    # the same, named for any owner
    van = van_klant
    verwijder_van = verwijder_van_klant

    # ---------- bulk loading: `klanten-api import` (DECISIONS #28); the klanten audit table only ----------
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
