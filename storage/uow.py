"""Unit of work: one connection, one transaction; rolled back unless commit() was called."""
from __future__ import annotations

import datetime as dt
import uuid as uuid_mod
from functools import cached_property
from typing import NamedTuple

import sqlalchemy as sa

from . import audittrail as audit_opslag, notificaties as outbox_opslag
from .audittrail import AuditTrailRepository
from .contactmomenten import (ContactmomentenRepository, KlantContactmomentenRepository,
                              ObjectContactmomentenRepository)
from .klanten import KlantenRepository
from .notificaties import NotificatieRepository
from .tables import audittrail, contactmoment_audittrail, notificatie


class AuditRegel(NamedTuple):
    klant_id: int
    regel: dict            # API field -> value (storage.audittrail.VELDEN)
    logrecord_id: str


class ContactmomentAuditRegel(NamedTuple):
    """An audit row of a contactmoment (its own table, storage.tables.contactmoment_audittrail)."""
    contactmoment_id: int
    regel: dict
    logrecord_id: str


class Bericht(NamedTuple):
    """A notification for the outbox."""
    klant_uuid: uuid_mod.UUID     # the object the message is about (the relay keeps its messages in order)
    kanaal: str
    bericht: str           # the JSON text as it will be sent
    moment: dt.datetime
    traceparent: str | None = None   # the write's trace (tracing on): the delivery's span continues it


def _met_voorvoegsel(tabel: sa.Table, voorvoegsel: str, zonder: tuple[str, ...] = ("id",)) -> dict:
    return {c.name: sa.bindparam(voorvoegsel + c.name, type_=c.type) for c in tabel.columns if c.name not in zonder}


# PostgreSQL: the audit row and the outbox row of a write in one statement (a data-modifying CTE), one round
# trip instead of two inside the write's transaction. Built once; parameters carry a prefix per table.
# (the outbox columns a new message leaves empty; one list for both statements)
_BERICHT_LEEG = ("id", "verzonden", "eerste_fout")
_AUDIT_EN_BERICHT = (sa.insert(notificatie).values(_met_voorvoegsel(notificatie, "n_", _BERICHT_LEEG))
                     .add_cte(sa.insert(audittrail).values(_met_voorvoegsel(audittrail, "a_")).cte("audit")))
_CM_AUDIT_EN_BERICHT = (sa.insert(notificatie).values(_met_voorvoegsel(notificatie, "n_", _BERICHT_LEEG))
                        .add_cte(sa.insert(contactmoment_audittrail)
                                 .values(_met_voorvoegsel(contactmoment_audittrail, "a_")).cte("audit")))


class UnitOfWork:
    def __init__(self, engine: sa.Engine, *, schrijven: bool = False):
        self.engine = engine
        self.schrijven = schrijven
        self._committed = False

    def __enter__(self) -> "UnitOfWork":
        self.conn = self.engine.connect()
        self.conn.info["schrijven"] = self.schrijven
        self._psycopg = None
        if not self.schrijven and self.conn.dialect.name == "postgresql":
            # Reads run without BEGIN/ROLLBACK (two round trips fewer). Under PostgreSQL's READ COMMITTED each
            # statement sees its own snapshot inside a transaction too, so nothing changes in what they see.
            # Switched on the psycopg connection itself and back in __exit__: SQLAlchemy's
            # execution_options(isolation_level=...) and its reset at check-in cost ~7% of a detail read's CPU.
            # SQLAlchemy's own transaction (autobegin, rollback at close) stays, and psycopg sends nothing for
            # it while no transaction is open.
            self._psycopg = self.conn.connection.dbapi_connection
            self._psycopg.autocommit = True
            self._tx = None
        else:
            self._tx = self.conn.begin()
        return self

    # repositories are made on first use: a request touches one or two of them, and each costs a little to make
    @cached_property
    def klanten(self) -> KlantenRepository:
        return KlantenRepository(self.conn)

    @cached_property
    def audittrail(self) -> AuditTrailRepository:
        return AuditTrailRepository(self.conn)

    @cached_property
    def notificaties(self) -> NotificatieRepository:
        return NotificatieRepository(self.conn)

    @cached_property
    def contactmomenten(self) -> ContactmomentenRepository:
        return ContactmomentenRepository(self.conn)

    @cached_property
    def klantcontactmomenten(self) -> KlantContactmomentenRepository:
        return KlantContactmomentenRepository(self.conn)

    @cached_property
    def objectcontactmomenten(self) -> ObjectContactmomentenRepository:
        return ObjectContactmomentenRepository(self.conn)

    @cached_property
    def cm_audittrail(self) -> AuditTrailRepository:
        return AuditTrailRepository(self.conn, contactmoment_audittrail, "contactmoment_id")

    def vastleggen(self, *, audit: AuditRegel | ContactmomentAuditRegel | None, bericht: Bericht | None) -> None:
        """What a write leaves besides the klant (or contactmoment) itself: its audit row and its outbox message
        (each optional), in this unit of work's transaction."""
        cm = isinstance(audit, ContactmomentAuditRegel)
        if audit is not None and bericht is not None and self.conn.dialect.name == "postgresql":
            eigenaar = "contactmoment_id" if cm else "klant_id"
            waarden = {f"a_{k}": v for k, v in audit_opslag.kolommen(*audit, eigenaar).items()}
            waarden.update({f"n_{k}": v for k, v in outbox_opslag.kolommen(*bericht).items()})
            self.conn.execute(_CM_AUDIT_EN_BERICHT if cm else _AUDIT_EN_BERICHT, waarden)
            return
        if audit is not None:
            (self.cm_audittrail if cm else self.audittrail).toevoegen(*audit)
        if bericht is not None:
            self.notificaties.toevoegen(*bericht)

    def commit(self) -> None:
        if self._tx is None:
            raise RuntimeError("a reading unit of work has nothing to commit")
        self._tx.commit()
        self._committed = True

    def __exit__(self, *exc) -> None:
        try:
            if self._tx is not None and not self._committed and self._tx.is_active:
                self._tx.rollback()
            elif self._psycopg is not None:
                self._transacties_terug()
        finally:
            self.conn.close()

    def _transacties_terug(self) -> None:
        """A read's connection goes back to the pool with transactions on: the next unit of work may write. If
        psycopg cannot switch (a connection broken meanwhile), the pool discards the connection instead."""
        try:
            if not self._psycopg.closed:
                self._psycopg.autocommit = False
                return
        except Exception:
            pass
        self.conn.invalidate()


def is_unique_violation(exc: sa.exc.IntegrityError, constraint: str, columns: tuple[str, ...]) -> bool:
    """Whether an IntegrityError is the named unique constraint (PostgreSQL) / those columns (SQLite)."""
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return diag.constraint_name == constraint
    text = str(orig)
    return "UNIQUE constraint failed" in text and all(c in text for c in columns)
