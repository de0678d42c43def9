"""Klant repository. Works with the klant as the API names it (camelCase keys, no `url`)."""
from __future__ import annotations

import datetime as dt
import uuid as uuid_mod

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from .paginering import ongefilterde_ids
from .tables import FILTER_KOLOMMEN, ZOEKSLEUTELS, klant, klant_pagina, klant_telling, klantnummer_reeks

# API field -> column, in the API's output order
VELDEN = (
    ("bronorganisatie", "bronorganisatie"), ("klantnummer", "klantnummer"), ("bedrijfsnaam", "bedrijfsnaam"),
    ("functie", "functie"), ("websiteUrl", "website_url"), ("voornaam", "voornaam"),
    ("voorvoegselAchternaam", "voorvoegsel_achternaam"), ("achternaam", "achternaam"),
    ("telefoonnummer", "telefoonnummer"), ("emailadres", "emailadres"),
)
ADRES_VELDEN = ("straatnaam", "huisnummer", "huisletter", "huisnummertoevoeging", "postcode", "woonplaatsnaam",
                "landcode")
# zoeksleutel column suffix -> key inside subjectIdentificatie
ZOEK_BRON = dict(zip(ZOEKSLEUTELS, ("inpBsn", "anpIdentificatie", "inpANummer", "innNnpId", "annIdentificatie",
                                    "vestigingsNummer")))
MAX_KLANTNUMMER = 99_999_999   # klantnummer is at most 8 characters
_CHUNK = 500                   # keys per IN (...) of the bulk reads


class KlantnummersUitgeput(Exception):
    """No free generated klantnummer is left for a bronorganisatie."""


def zoeksleutels(subject_identificatie: dict | None) -> dict:
    """The indexed copies of the filterable identifiers; the only place that derives them."""
    sid = subject_identificatie or {}
    return {f"zoek_{k}": (sid.get(bron) or None) for k, bron in ZOEK_BRON.items()}


def naar_kolommen(gegevens: dict) -> dict:
    values = {kolom: gegevens[veld] for veld, kolom in VELDEN}
    values["subject"] = gegevens["subject"]
    values["subject_type"] = gegevens["subjectType"]
    adres = gegevens["adres"]
    values["adres_aanwezig"] = adres is not None
    for veld in ADRES_VELDEN:
        values[f"adres_{veld}"] = adres[veld] if adres is not None else None
    values["subject_identificatie"] = gegevens.get("subjectIdentificatie")
    values.update(zoeksleutels(values["subject_identificatie"]))
    return values


# What a read selects, in this order (not the zoek_* copies nor aangemaakt: no representation needs them).
_LEES_KOLOMMEN = (klant.c.id, klant.c.uuid, *(klant.c[kolom] for _, kolom in VELDEN), klant.c.adres_aanwezig,
                  *(klant.c[f"adres_{veld}"] for veld in ADRES_VELDEN), klant.c.subject, klant.c.subject_type,
                  klant.c.subject_identificatie)
_N_VELDEN, _N_ADRES = len(VELDEN), len(ADRES_VELDEN)
_VELD_NAMEN = tuple(veld for veld, _ in VELDEN)


def uit_rij(row) -> dict:
    """A row of _LEES_KOLOMMEN (by position: cheaper than by name, and rows are read a hundred at a time)."""
    gegevens = dict(zip(_VELD_NAMEN, row[2:2 + _N_VELDEN]))
    i = 2 + _N_VELDEN
    gegevens["adres"] = dict(zip(ADRES_VELDEN, row[i + 1:i + 1 + _N_ADRES])) if row[i] else None
    i += 1 + _N_ADRES
    gegevens["subject"], gegevens["subjectType"], gegevens["subjectIdentificatie"] = row[i:i + 3]
    return gegevens


_INSERT = sa.insert(klant).returning(klant.c.id)
_AANTAL = sa.select(sa.func.coalesce(sa.func.sum(klant_telling.c.aantal), 0))
_KLANTNUMMER_VOLGENDE = sa.func.klantnummer_volgende(sa.bindparam("bron", type_=sa.Text))
# PostgreSQL, kla-001: the generated klantnummer drawn inside the INSERT itself (one statement, not two)
_INSERT_GEGENEREERD = (sa.insert(klant).values(klantnummer=sa.cast(_KLANTNUMMER_VOLGENDE, sa.String))
                       .returning(klant.c.id, klant.c.klantnummer))
SEQUENCE_LIMIT_EXCEEDED = "2200H"      # PostgreSQL: nextval past MAXVALUE
_UPDATE = sa.update(klant).where(klant.c.id == sa.bindparam("klant_id"))
_SELECT = sa.select(*_LEES_KOLOMMEN)
_GET = _SELECT.where(klant.c.uuid == sa.bindparam("uuid"))
_GET_VOOR_WIJZIGING = _GET.with_for_update()
# A page of the list: the ids read from an index first (index only), then the page's rows fetched by id (the
# deferred join), so the rows before the page are never read from the table.
_IDS = klant.alias("pagina_ids")


def _pagina(ids: sa.Select) -> sa.Select:
    return _SELECT.where(klant.c.id.in_(ids)).order_by(klant.c.id)


# the unfiltered page: where it starts from klant_pagina (migration 0006), its ids from the primary key index, then
# its rows by id
_ONGEFILTERDE_PAGINA = _pagina(ongefilterde_ids(klant, klant_pagina))
_NUMMER_BESTAAT = sa.select(klant.c.id).where(
    klant.c.bronorganisatie == sa.bindparam("bron"), klant.c.klantnummer == sa.bindparam("nummer"),
    klant.c.id != sa.bindparam("behalve")).limit(1)       # behalve -1: no klant excepted (ids start at 1)


class Klant:
    """A stored klant: its identity plus the API-shaped data."""

    __slots__ = ("id", "uuid", "gegevens")

    def __init__(self, id: int, uuid: uuid_mod.UUID, gegevens: dict):
        self.id, self.uuid, self.gegevens = id, uuid, gegevens


def _klant(row) -> Klant:
    return Klant(row[0], row[1], uit_rij(row))


_GEFILTERD: dict[tuple[str, ...], tuple[sa.Select, sa.Select]] = {}
_GEFILTERD_MAX = 256           # combinations remembered (a client choosing ever new ones cannot grow it further)


def _gefilterd(kolommen: tuple[str, ...]) -> tuple[sa.Select, sa.Select]:
    """The count and the page of a filtered list, one pair per combination of filter columns, built once with
    the values as parameters (w_<column>, offset, limit): a statement built anew per request costs SQLAlchemy
    its construction and cache key every time."""
    paar = _GEFILTERD.get(kolommen)
    if paar is None:
        where = [klant.c[kolom] == sa.bindparam(f"w_{kolom}") for kolom in kolommen]
        telling = sa.select(sa.func.count()).select_from(klant).where(*where)
        offset, limit = sa.bindparam("offset", type_=sa.Integer), sa.bindparam("limit", type_=sa.Integer)
        if len(kolommen) == 1 and kolommen[0] in FILTER_KOLOMMEN:
            # the ids from the filter's own index (value, id) alone, then the page's rows by id; with other
            # filters (bronorganisatie's index is (bronorganisatie, klantnummer), several filters) the ids cannot
            # come from one index alone and this reads more than the plain page (EXPLAIN: tests/test_paginering.py)
            kolom = kolommen[0]
            ids = (sa.select(_IDS.c.id).where(_IDS.c[kolom] == sa.bindparam(f"w_{kolom}"))
                   .order_by(_IDS.c.id).offset(offset).limit(limit))
            pagina = _pagina(ids)
        else:
            pagina = _SELECT.where(*where).order_by(klant.c.id).offset(offset).limit(limit)
        if len(_GEFILTERD) >= _GEFILTERD_MAX:
            _GEFILTERD.clear()
        paar = _GEFILTERD[kolommen] = (telling, pagina)
    return paar


class KlantenRepository:
    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def get(self, uuid: uuid_mod.UUID, *, for_update: bool = False) -> Klant | None:
        row = self.conn.execute(_GET_VOOR_WIJZIGING if for_update else _GET, {"uuid": uuid}).first()
        return _klant(row) if row else None

    def id_van(self, uuid: uuid_mod.UUID) -> int | None:
        return self.conn.execute(sa.select(klant.c.id).where(klant.c.uuid == uuid)).scalar()

    def klantnummer_bestaat(self, bronorganisatie: str, klantnummer: str, *, behalve_id: int | None = None) -> bool:
        return self.conn.execute(_NUMMER_BESTAAT, {"bron": bronorganisatie, "nummer": klantnummer,
                                                   "behalve": -1 if behalve_id is None else behalve_id}
                                 ).first() is not None

    def toevoegen(self, uuid: uuid_mod.UUID, gegevens: dict, nu: dt.datetime, *,
                  klantnummer_genereren: bool = False) -> tuple[int, str]:
        """Insert a klant; (id, klantnummer). With klantnummer_genereren (kla-001) the next free number of its
        bronorganisatie: on PostgreSQL from a sequence per bronorganisatie inside the INSERT (SQL function
        klantnummer_volgende, migration 0002; no lock, so concurrent creates neither wait for each other nor
        draw the same number), on SQLite from its counter row. Numbers a client chose itself are skipped; a
        client inserting the same number concurrently still loses to the unique constraint (the caller
        retries). Numbers are unique, not gapless: a create that fails after drawing leaves its number unused."""
        waarden = {"uuid": uuid, "aangemaakt": nu, **naar_kolommen(gegevens)}
        # values as parameters of fixed statements: SQLAlchemy compiles each once, not per request
        if not klantnummer_genereren:
            return self.conn.execute(_INSERT, waarden).scalar_one(), gegevens["klantnummer"]
        if self.conn.dialect.name != "postgresql":
            waarden["klantnummer"] = self._volgend_klantnummer_sqlite(gegevens["bronorganisatie"])
            return self.conn.execute(_INSERT, waarden).scalar_one(), waarden["klantnummer"]
        del waarden["klantnummer"]
        try:
            row = self.conn.execute(_INSERT_GEGENEREERD, {**waarden, "bron": gegevens["bronorganisatie"]}).one()
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == SEQUENCE_LIMIT_EXCEEDED:
                raise KlantnummersUitgeput(gegevens["bronorganisatie"]) from None
            raise
        return row.id, row.klantnummer

    def bijwerken(self, id: int, gegevens: dict) -> None:
        self.conn.execute(_UPDATE, {"klant_id": id, **naar_kolommen(gegevens)})

    def verwijderen(self, id: int) -> None:
        self.conn.execute(sa.delete(klant).where(klant.c.id == id))

    def zoeken(self, filters: dict[str, str] | None, offset: int, limit: int) -> tuple[int, list[Klant]]:
        """filters: column name -> exact value (None: nothing can match). Ordered by creation (id)."""
        if filters is None:
            return 0, []
        if not filters:
            # exact, and not a scan of the whole table: the triggers keep the count (migration 0002)
            count = int(self.conn.execute(_AANTAL).scalar_one())
            if offset >= count:
                return count, []
            rows = self.conn.execute(_ONGEFILTERDE_PAGINA, {"offset": offset, "limit": limit})
            return count, [_klant(r) for r in rows.all()]
        telling, pagina = _gefilterd(tuple(filters))
        waarden = {f"w_{kolom}": waarde for kolom, waarde in filters.items()}
        count = self.conn.execute(telling, waarden).scalar_one()
        if offset >= count:
            return count, []
        rows = self.conn.execute(pagina, {**waarden, "offset": offset, "limit": limit})
        return count, [_klant(r) for r in rows.all()]      # one fetch for the page, not one per row

    def _volgend_klantnummer_sqlite(self, bronorganisatie: str) -> str:
        """kla-001 on SQLite: the next free generated klantnummer of a bronorganisatie from its counter row in
        klantnummer_reeks, inside the caller's transaction. A writing transaction already holds the database's
        write lock (BEGIN IMMEDIATE), so the read-increment-write cannot interleave with another one. Numbers a
        client chose itself are skipped. (PostgreSQL draws from a sequence inside the INSERT: toevoegen.)
        """
        self.conn.execute(sqlite.insert(klantnummer_reeks).values(bronorganisatie=bronorganisatie, laatste=0)
                          .on_conflict_do_nothing())
        laatste = self.conn.execute(sa.select(klantnummer_reeks.c.laatste)
                                    .where(klantnummer_reeks.c.bronorganisatie == bronorganisatie)).scalar_one()
        nummer = laatste
        while True:
            nummer += 1
            if nummer > MAX_KLANTNUMMER:
                raise KlantnummersUitgeput(bronorganisatie)
            if not self.klantnummer_bestaat(bronorganisatie, str(nummer)):
                break
        self.conn.execute(sa.update(klantnummer_reeks).where(klantnummer_reeks.c.bronorganisatie == bronorganisatie)
                          .values(laatste=nummer))
        return str(nummer)

    def zet_laatste_klantnummer(self, bronorganisatie: str, laatste: int) -> None:
        """Make the next generated klantnummer of a bronorganisatie laatste + 1 (bulk loads, such as the
        benchmark's seeding, that wrote generated numbers themselves)."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(sa.text("SELECT setval(klantnummer_reeks_maken(:b), greatest(:n, 1), :n > 0)"),
                              {"b": bronorganisatie, "n": laatste})
            return
        self.conn.execute(sqlite.insert(klantnummer_reeks).values(bronorganisatie=bronorganisatie, laatste=laatste)
                          .on_conflict_do_update(index_elements=["bronorganisatie"], set_={"laatste": laatste}))

    # ---------- bulk loading: `klanten-api import` (DECISIONS #28) ----------
    def per_uuid(self, uuids) -> dict[uuid_mod.UUID, Klant]:
        """The stored klanten among `uuids` (any number; asked in chunks)."""
        uit: dict[uuid_mod.UUID, Klant] = {}
        uuids = list(uuids)
        for i in range(0, len(uuids), _CHUNK):
            for row in self.conn.execute(_SELECT.where(klant.c.uuid.in_(uuids[i:i + _CHUNK]))):
                uit[row[1]] = _klant(row)
        return uit

    def houders(self, paren) -> dict[tuple[str, str], uuid_mod.UUID]:
        """(bronorganisatie, klantnummer) -> uuid of the klant holding it, for the pairs among `paren` taken."""
        uit = {}
        paren = list(paren)
        for i in range(0, len(paren), _CHUNK):
            rows = self.conn.execute(sa.select(klant.c.bronorganisatie, klant.c.klantnummer, klant.c.uuid).where(
                sa.tuple_(klant.c.bronorganisatie, klant.c.klantnummer).in_(paren[i:i + _CHUNK])))
            uit.update({(r[0], r[1]): r[2] for r in rows})
        return uit

    def toevoegen_veel(self, klanten: list[tuple[uuid_mod.UUID, dict, dt.datetime]]) -> list[int]:
        """Insert klanten with the uuid and klantnummer they bring (no kla-001), in one batched statement;
        their ids in the order given. The klant_telling triggers count them as any insert."""
        if not klanten:
            return []
        rijen = [{"uuid": u, "aangemaakt": moment, **naar_kolommen(g)} for u, g, moment in klanten]
        result = self.conn.execute(sa.insert(klant).returning(klant.c.id, sort_by_parameter_order=True), rijen)
        return [row[0] for row in result]

    def klantnummer_minstens(self, bronorganisatie: str, laatste: int) -> None:
        """kla-001 after a bulk load of numbers chosen elsewhere: generation of this bronorganisatie continues
        after `laatste` unless it is past it already (never moved back). Generation skips taken numbers anyway;
        this spares the first generated create a walk over a long run of imported ones."""
        if not 0 < laatste <= MAX_KLANTNUMMER:
            return
        if self.conn.dialect.name == "postgresql":
            # setval is not transactional: a rolled back import leaves the sequence moved on (a gap, no collision)
            self.conn.execute(sa.text(
                "SELECT setval(r, greatest(:n, coalesce((SELECT s.last_value FROM pg_sequences s "
                "WHERE s.schemaname = current_schema() AND s.sequencename = 'klantnummer_' || :b), 0))) "
                "FROM klantnummer_reeks_maken(:b) AS r"), {"b": bronorganisatie, "n": laatste})
            return
        self.conn.execute(sqlite.insert(klantnummer_reeks).values(bronorganisatie=bronorganisatie, laatste=laatste)
                          .on_conflict_do_update(index_elements=["bronorganisatie"],
                                                 set_={"laatste": sa.func.max(klantnummer_reeks.c.laatste,
                                                                              laatste)}))

    def na_id(self, na: int, aantal: int) -> list[Klant]:
        """Up to `aantal` klanten with id > na, by id (streaming the whole register in pages: export)."""
        rows = self.conn.execute(_SELECT.where(klant.c.id > na).order_by(klant.c.id).limit(aantal))
        return [_klant(r) for r in rows]
