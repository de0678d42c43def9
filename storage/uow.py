"""Unit of work: one connection, one transaction; rolled back unless commit() was called."""
from __future__ import annotations

import sqlalchemy as sa

from .audittrail import AuditTrailRepository
from .klanten import KlantenRepository
from .notificaties import NotificatieRepository


class UnitOfWork:
    def __init__(self, engine: sa.Engine, *, schrijven: bool = False):
        self.engine = engine
        self.schrijven = schrijven
        self._committed = False

    def __enter__(self) -> "UnitOfWork":
        self.conn = self.engine.connect()
        self.conn.info["schrijven"] = self.schrijven
        if not self.schrijven and self.conn.dialect.name == "postgresql":
            # Reads run without BEGIN/ROLLBACK (two round trips fewer). Under PostgreSQL's READ COMMITTED each
            # statement sees its own snapshot inside a transaction too, so nothing changes in what they see.
            self.conn.execution_options(isolation_level="AUTOCOMMIT")
            self._tx = None
        else:
            self._tx = self.conn.begin()
        self.klanten = KlantenRepository(self.conn)
        self.audittrail = AuditTrailRepository(self.conn)
        self.notificaties = NotificatieRepository(self.conn)
        return self

    def commit(self) -> None:
        if self._tx is None:
            raise RuntimeError("a reading unit of work has nothing to commit")
        self._tx.commit()
        self._committed = True

    def __exit__(self, *exc) -> None:
        try:
            if self._tx is not None and not self._committed and self._tx.is_active:
                self._tx.rollback()
        finally:
            self.conn.close()


def is_unique_violation(exc: sa.exc.IntegrityError, constraint: str, columns: tuple[str, ...]) -> bool:
    """Whether an IntegrityError is the named unique constraint (PostgreSQL) / those columns (SQLite)."""
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return diag.constraint_name == constraint
    text = str(orig)
    return "UNIQUE constraint failed" in text and all(c in text for c in columns)
