"""Repositories of the Contactmomenten API: contactmoment, klantcontactmoment and objectcontactmoment.

They work with the objects as the API names them (camelCase keys, no `url`): the service builds URLs.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import uuid as uuid_mod

import sqlalchemy as sa

from .paginering import aantal, ongefilterde_ids
from .tables import contactmoment, contactmoment_pagina, klantcontactmoment, objectcontactmoment

# API field -> column, in the API's output order
VELDEN = (
    ("bronorganisatie", "bronorganisatie"), ("registratiedatum", "registratiedatum"), ("kanaal", "kanaal"),
    ("voorkeurskanaal", "voorkeurskanaal"), ("voorkeurstaal", "voorkeurstaal"), ("tekst", "tekst"),
    ("onderwerpLinks", "onderwerp_links"), ("initiatiefnemer", "initiatiefnemer"), ("medewerker", "medewerker"),
)
MW_VELDEN = (("identificatie", "mw_identificatie"), ("achternaam", "mw_achternaam"),
             ("voorletters", "mw_voorletters"), ("voorvoegselAchternaam", "mw_voorvoegsel_achternaam"))

# ordering name (the spec's enum, without "-") -> what it sorts on; `klant` (no such field since 1.0.0) sorts
# on nothing but the default order, `url` on the uuid (the URLs differ only there) (DECISIONS #20)
_SORTERING = {
    "url": contactmoment.c.uuid, "bronorganisatie": contactmoment.c.bronorganisatie,
    "registratiedatum": contactmoment.c.registratiedatum, "kanaal": contactmoment.c.kanaal,
    "voorkeurskanaal": contactmoment.c.voorkeurskanaal, "tekst": contactmoment.c.tekst,
    "onderwerp_links": sa.cast(contactmoment.c.onderwerp_links, sa.Text), "initiatiefnemer": contactmoment.c.initiatiefnemer,
    "medewerker": contactmoment.c.medewerker, "medewerker_identificatie": contactmoment.c.mw_identificatie,
    "klant": None,
}
SORTERINGEN = tuple(_SORTERING)


def sleutel(url: str) -> str:
    """The digest that indexes and unique keys hold instead of a URL of up to 1000 characters."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


class Contactmoment:
    """A stored contactmoment: identity, links (as uuids) and the API-shaped data."""

    __slots__ = ("id", "uuid", "gegevens", "vorig_id", "vorig_uuid", "volgend_uuid")

    def __init__(self, id, uuid, gegevens, vorig_id, vorig_uuid, volgend_uuid):
        self.id, self.uuid, self.gegevens = id, uuid, gegevens
        self.vorig_id, self.vorig_uuid, self.volgend_uuid = vorig_id, vorig_uuid, volgend_uuid


def naar_kolommen(gegevens: dict, vorig_id: int | None) -> dict:
    waarden = {kolom: gegevens[veld] for veld, kolom in VELDEN}
    waarden["medewerker_sleutel"] = sleutel(gegevens["medewerker"])
    waarden["vorig_contactmoment_id"] = vorig_id
    mw = gegevens["medewerkerIdentificatie"]
    waarden["mw_aanwezig"] = mw is not None
    for veld, kolom in MW_VELDEN:
        waarden[kolom] = mw[veld] if mw is not None else None
    return waarden


_VORIG = contactmoment.alias("vorig")
_VOLGEND = contactmoment.alias("volgend")
_VAN = (contactmoment.outerjoin(_VORIG, _VORIG.c.id == contactmoment.c.vorig_contactmoment_id)
        .outerjoin(_VOLGEND, _VOLGEND.c.vorig_contactmoment_id == contactmoment.c.id))
_SELECT = sa.select(contactmoment, _VORIG.c.uuid.label("vorig_uuid"), _VOLGEND.c.uuid.label("volgend_uuid")) \
    .select_from(_VAN)
# the detail read built once (building it per call cost SQLAlchemy a cache-key walk over both joins per request)
_GET = _SELECT.where(contactmoment.c.uuid == sa.bindparam("uuid", type_=contactmoment.c.uuid.type))
_GET_VOOR_WIJZIGING = _GET.with_for_update(of=contactmoment)
# the unfiltered list (issue #14, point 2): the count is the sum over contactmoment_pagina (migration 0008, exact,
# kept by triggers), the page's ids come from where contactmoment_pagina says it starts and the primary key index,
# and only the page's rows are read and joined to their vorig and volgend
_AANTAL = aantal(contactmoment_pagina)
_ONGEFILTERDE_PAGINA = (_SELECT.where(contactmoment.c.id.in_(ongefilterde_ids(contactmoment, contactmoment_pagina)))
                        .order_by(contactmoment.c.id))


def _contactmoment(row) -> Contactmoment:
    m = row._mapping
    gegevens = {veld: m[kolom] for veld, kolom in VELDEN}
    gegevens["medewerkerIdentificatie"] = ({veld: m[kolom] for veld, kolom in MW_VELDEN}
                                           if m["mw_aanwezig"] else None)
    return Contactmoment(m["id"], m["uuid"], gegevens, m["vorig_contactmoment_id"], m["vorig_uuid"],
                         m["volgend_uuid"])


class ContactmomentenRepository:
    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def get(self, uuid: uuid_mod.UUID, *, for_update: bool = False) -> Contactmoment | None:
        row = self.conn.execute(_GET_VOOR_WIJZIGING if for_update else _GET, {"uuid": uuid}).first()
        return _contactmoment(row) if row else None

    def id_van(self, uuid: uuid_mod.UUID) -> int | None:
        return self.conn.execute(sa.select(contactmoment.c.id).where(contactmoment.c.uuid == uuid)).scalar()

    def toevoegen(self, uuid: uuid_mod.UUID, gegevens: dict, vorig_id: int | None, nu: dt.datetime) -> int:
        return self.conn.execute(sa.insert(contactmoment).returning(contactmoment.c.id),
                                 {"uuid": uuid, "aangemaakt": nu, **naar_kolommen(gegevens, vorig_id)}).scalar_one()

    def bijwerken(self, id: int, gegevens: dict, vorig_id: int | None) -> None:
        self.conn.execute(sa.update(contactmoment).where(contactmoment.c.id == id)
                          .values(**naar_kolommen(gegevens, vorig_id)))

    def verwijderen(self, id: int) -> None:
        self.conn.execute(sa.delete(contactmoment).where(contactmoment.c.id == id))

    def vorig_van_ander(self, vorig_id: int, *, behalve_id: int | None = None) -> bool:
        """Whether another contactmoment already names `vorig_id` as its vorigContactmoment (cm-001: one-to-one)."""
        q = sa.select(contactmoment.c.id).where(contactmoment.c.vorig_contactmoment_id == vorig_id)
        if behalve_id is not None:
            q = q.where(contactmoment.c.id != behalve_id)
        return self.conn.execute(q.limit(1)).first() is not None

    def zoeken(self, filters: dict | None, sortering: list[tuple[str, bool]], offset: int,
               limit: int) -> tuple[int, list[Contactmoment]]:
        """filters: name -> value (None: nothing can match); sortering: [(ordering name, descending)].
        Without a sortering, and after it, creation order (id)."""
        if filters is None:
            return 0, []
        where = []
        for naam, waarde in filters.items():
            if naam == "vorigContactmoment":
                where.append(_VORIG.c.uuid == waarde)
            elif naam == "volgendContactmoment":
                where.append(_VOLGEND.c.uuid == waarde)
            elif naam == "medewerker":
                where += [contactmoment.c.medewerker_sleutel == sleutel(waarde), contactmoment.c.medewerker == waarde]
            elif naam.startswith("registratiedatum"):
                kolom = contactmoment.c.registratiedatum
                op = naam.partition("__")[2]
                where.append({"": kolom == waarde, "gt": kolom > waarde, "gte": kolom >= waarde,
                              "lt": kolom < waarde, "lte": kolom <= waarde}[op])
            else:
                where.append(contactmoment.c[naam] == waarde)
        if not filters and all(_SORTERING[naam] is None for naam, _ in sortering):
            # creation order over all contactmomenten: count and page from contactmoment_pagina
            count = int(self.conn.execute(_AANTAL).scalar_one())
            if offset >= count or limit <= 0:
                return count, []
            rows = self.conn.execute(_ONGEFILTERDE_PAGINA, {"offset": offset, "limit": limit})
            return count, [_contactmoment(r) for r in rows]
        # both joins add at most one row each (vorig is one row, and vorig_contactmoment_id is unique), so the count
        # needs them only when a filter is on them
        bron = _VAN if {"vorigContactmoment", "volgendContactmoment"} & set(filters) else contactmoment
        count = self.conn.execute(sa.select(sa.func.count()).select_from(bron).where(*where)).scalar_one()
        if offset >= count:
            return count, []
        order = []
        for naam, aflopend in sortering:
            kolom = _SORTERING[naam]
            if kolom is None:
                continue
            if naam == "medewerker_identificatie":
                # as the reference's database sorts it: without an identificatie counts as the highest value
                order.append(kolom.desc().nulls_first() if aflopend else kolom.asc().nulls_last())
            else:
                order.append(kolom.desc() if aflopend else kolom.asc())
        rows = self.conn.execute(_SELECT.where(*where).order_by(*order, contactmoment.c.id).offset(offset).limit(limit))
        return count, [_contactmoment(r) for r in rows]


class Relatie:
    """A stored klantcontactmoment or objectcontactmoment."""

    __slots__ = ("id", "uuid", "contactmoment_uuid", "gegevens")

    def __init__(self, id, uuid, contactmoment_uuid, gegevens):
        self.id, self.uuid, self.contactmoment_uuid, self.gegevens = id, uuid, contactmoment_uuid, gegevens


class _RelatieRepository:
    """klantcontactmoment / objectcontactmoment: a contactmoment and a URL with its digest, plus one choice."""
    tabel: sa.Table
    url_veld: str          # klant / object
    keuze: tuple[str, str]  # (API field, column): rol / objectType

    def __init_subclass__(cls, **kwargs):
        # the join and the select built once per relation table, not per unit of work
        super().__init_subclass__(**kwargs)
        t = cls.tabel
        cls._van = t.join(contactmoment, contactmoment.c.id == t.c.contactmoment_id)
        cls._select = sa.select(t.c.id, t.c.uuid, contactmoment.c.uuid.label("cm_uuid"), t.c[cls.url_veld],
                                t.c[cls.keuze[1]]).select_from(cls._van)

    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def _relatie(self, row) -> Relatie:
        return Relatie(row[0], row[1], row[2], {self.url_veld: row[3], self.keuze[0]: row[4]})

    def get(self, uuid: uuid_mod.UUID) -> Relatie | None:
        row = self.conn.execute(self._select.where(self.tabel.c.uuid == uuid)).first()
        return self._relatie(row) if row else None

    def toevoegen(self, uuid: uuid_mod.UUID, contactmoment_id: int, url: str, keuze: str) -> None:
        self.conn.execute(sa.insert(self.tabel), {
            "uuid": uuid, "contactmoment_id": contactmoment_id, self.url_veld: url,
            f"{self.url_veld}_sleutel": sleutel(url), self.keuze[1]: keuze})

    def verwijderen(self, id: int) -> None:
        self.conn.execute(sa.delete(self.tabel).where(self.tabel.c.id == id))

    def _where(self, filters: dict) -> list:
        t, where = self.tabel, []
        for naam, waarde in filters.items():
            if naam == "contactmoment":
                where.append(contactmoment.c.uuid == waarde)
            elif naam == self.url_veld:
                where += [t.c[f"{naam}_sleutel"] == sleutel(waarde), t.c[naam] == waarde]
            else:
                where.append(t.c[self.keuze[1]] == waarde)
        return where

    def bestaat(self, contactmoment_id: int, url: str, keuze: str | None = None) -> bool:
        t = self.tabel
        q = sa.select(t.c.id).where(t.c.contactmoment_id == contactmoment_id,
                                    t.c[f"{self.url_veld}_sleutel"] == sleutel(url), t.c[self.url_veld] == url)
        if keuze is not None:
            q = q.where(t.c[self.keuze[1]] == keuze)
        return self.conn.execute(q.limit(1)).first() is not None

    def zoeken(self, filters: dict | None, offset: int, limit: int) -> tuple[int, list[Relatie]]:
        if filters is None:
            return 0, []
        where = self._where(filters)
        count = self.conn.execute(sa.select(sa.func.count()).select_from(self._van).where(*where)).scalar_one()
        if offset >= count:
            return count, []
        rows = self.conn.execute(self._select.where(*where).order_by(self.tabel.c.id).offset(offset).limit(limit))
        return count, [self._relatie(r) for r in rows]


class KlantContactmomentenRepository(_RelatieRepository):
    tabel = klantcontactmoment
    url_veld = "klant"
    keuze = ("rol", "rol")


class ObjectContactmomentenRepository(_RelatieRepository):
    tabel = objectcontactmoment
    url_veld = "object"
    keuze = ("objectType", "object_type")
