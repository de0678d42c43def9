"""The outbox relay: delivers stored notifications to the Notificaties API, never in the request path.

Delivery is at least once and in order per klant: only the oldest pending message of a klant is
eligible. A message is claimed with a lease (its next attempt time moved past the send's timeout) in a
short transaction of its own, with FOR UPDATE SKIP LOCKED on PostgreSQL, so any number of relays in
any number of processes and machines can run at once; the HTTP call happens outside any transaction,
so a slow or hanging Notificaties API never holds a lock that a write needs. A relay that dies after
sending but before marking leaves the lease to expire, and the message is sent again.

Retry policy: 5xx, 408, 429, timeouts and connection errors are retried with exponential backoff and
full jitter, at most `notifications_max_attempts` times; any other 4xx is permanent. Both end as
`failed`: kept, logged (ids only, no personal data) and listed by `klanten-api notificaties list`.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
import threading
from contextlib import contextmanager

import sqlalchemy as sa

from klanten_api.settings import Settings
from storage.notificaties import MISLUKT, VERZONDEN, WACHTEND
from storage.tables import notificatie
from .client import NietBereikbaar, NotificatiesApi

log = logging.getLogger("klanten_api.notificaties")
MAX_BACKOFF_SECONDS = 300.0
RETRYABLE_4XX = {408, 425, 429}


def _nu() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Relay:
    def __init__(self, engine: sa.Engine, settings: Settings, *, batch: int = 20):
        self.engine = engine
        self.settings = settings
        self.api = NotificatiesApi(settings)
        self.batch = batch
        self.lease = dt.timedelta(seconds=2 * settings.notifications_timeout + 10)
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._claims: dict[tuple[str, int], sa.Update] = {}

    # ---- claiming ----
    @staticmethod
    def _klok(conn):
        """Now, as the statements compare it: the database's clock on PostgreSQL (machines' clocks differ;
        leases must not), evaluated inside the statement itself; ours on SQLite."""
        return sa.func.now() if conn.dialect.name == "postgresql" else _nu()

    def claim_statement(self, conn) -> sa.Update:
        """Lease the oldest pending messages that are due, at most one per klant (the oldest of that klant),
        in one statement that returns them. Both conditions on status = pending match the partial indexes of
        migration 0003: claiming reads pending messages only, however many sent ones the outbox keeps.
        Built once per dialect (building it costs more CPU than running it); `nu`/`tot` are parameters on
        SQLite, the database's clock on PostgreSQL."""
        sleutel = (conn.dialect.name, self.batch)
        if sleutel not in self._claims:
            kandidaat, ouder = notificatie.alias("kandidaat"), notificatie.alias("ouder")
            # 'pending' written into the SQL text, not sent as a parameter: psycopg prepares a statement after a
            # few executions and PostgreSQL may then plan it generically, and a generic plan cannot use a partial
            # index whose predicate compares with a parameter (it walked the whole outbox: seconds per claim)
            wachtend = sa.literal(WACHTEND, literal_execute=True)
            eerder_wachtend = sa.exists().where(ouder.c.klant_uuid == kandidaat.c.klant_uuid,
                                                ouder.c.status == wachtend, ouder.c.id < kandidaat.c.id)
            postgres = conn.dialect.name == "postgresql"
            nu = sa.func.now() if postgres else sa.bindparam("nu", type_=notificatie.c.volgende_poging.type)
            tot = nu + self.lease if postgres else sa.bindparam("tot", type_=notificatie.c.volgende_poging.type)
            kandidaten = (sa.select(kandidaat.c.id)
                          .where(kandidaat.c.status == wachtend, ~eerder_wachtend, kandidaat.c.volgende_poging <= nu)
                          .order_by(kandidaat.c.id).limit(self.batch))
            if postgres:
                kandidaten = kandidaten.with_for_update(skip_locked=True, of=kandidaat)
            self._claims[sleutel] = (
                sa.update(notificatie).where(notificatie.c.id.in_(kandidaten.scalar_subquery()))
                .values(volgende_poging=tot, pogingen=notificatie.c.pogingen + 1)
                .returning(notificatie.c.id, notificatie.c.bericht, notificatie.c.pogingen))
        return self._claims[sleutel]

    def claim_parameters(self, conn) -> dict:
        if conn.dialect.name == "postgresql":
            return {}
        nu = _nu()
        return {"nu": nu, "tot": nu + self.lease}

    @contextmanager
    def _atomair(self):
        """A connection for one statement that must be atomic by itself: on PostgreSQL without BEGIN/COMMIT
        (a single statement is its own transaction: one round trip instead of three); SQLite takes its write
        lock up front."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                yield conn.execution_options(isolation_level="AUTOCOMMIT")
                return
            conn.info["schrijven"] = True
            with conn.begin():
                yield conn

    def _claim(self) -> list[tuple[int, str, int]]:
        with self._atomair() as conn:
            rows = conn.execute(self.claim_statement(conn), self.claim_parameters(conn)).all()
        return sorted((r.id, r.bericht, r.pogingen) for r in rows)

    def _markeer(self, id: int, wacht: float | None = None, **values) -> None:
        with self._atomair() as conn:
            if wacht is not None:
                values["volgende_poging"] = self._klok(conn) + dt.timedelta(seconds=wacht)
            conn.execute(sa.update(notificatie).where(notificatie.c.id == id, notificatie.c.status == WACHTEND)
                         .values(**values))

    def _markeer_verzonden(self, ids: list[int]) -> None:
        with self._atomair() as conn:
            conn.execute(sa.update(notificatie).where(notificatie.c.id.in_(ids), notificatie.c.status == WACHTEND)
                         .values(status=VERZONDEN, verzonden=self._klok(conn), laatste_fout=""))

    def backoff(self, pogingen: int) -> float:
        """Exponential backoff with full jitter: uniform in [base, base * 2^(n-1)], capped."""
        hoogste = min(MAX_BACKOFF_SECONDS, self.settings.notifications_backoff * 2 ** max(0, pogingen - 1))
        return random.uniform(min(self.settings.notifications_backoff, hoogste), hoogste)

    # ---- sending ----
    def verzend_batch(self) -> int:
        """Claim and send one batch; returns how many messages were attempted. The batch holds at most one
        message per klant, so marking the delivered ones together at the end keeps the order per klant."""
        geclaimd = self._claim()
        verzonden = [id for id, bericht, pogingen in geclaimd if self._verzend(id, bericht, pogingen)]
        if verzonden:
            self._markeer_verzonden(verzonden)
        return len(geclaimd)

    def _verzend(self, id: int, bericht: str, pogingen: int) -> bool:
        """Send one message; True when delivered (marked by the caller), failures are recorded here."""
        try:
            status = self.api.publiceer(bericht)
            fout = f"HTTP {status}"
        except NietBereikbaar as exc:
            status, fout = None, exc.reden
        if status is not None and 200 <= status < 300:
            log.info("notification delivered", extra={"event": "notification_delivered", "notificatie_id": id})
            return True
        permanent = status is not None and 400 <= status < 500 and status not in RETRYABLE_4XX
        if permanent or pogingen >= self.settings.notifications_max_attempts:
            self._markeer(id, status=MISLUKT, laatste_fout=fout)
            log.warning("notification failed permanently", extra={
                "event": "notification_failed", "notificatie_id": id, "reason": fout, "attempts": pogingen})
            return False
        wacht = self.backoff(pogingen)
        self._markeer(id, wacht=wacht, laatste_fout=fout)
        log.info("notification will be retried", extra={
            "event": "notification_retry", "notificatie_id": id, "reason": fout, "attempts": pogingen,
            "retry_in_seconds": round(wacht, 2)})
        return False

    # ---- running beside the server ----
    def run(self, poll_seconds: float = 1.0, batch_window: float = 0.05) -> None:
        while not self._stop.is_set():
            try:
                while self.verzend_batch() and not self._stop.is_set():
                    pass
            except Exception as exc:   # the database may be away for a moment; keep the relay alive
                log.error("relay error", extra={"event": "relay_error", "exception_class": type(exc).__name__})
                self._stop.wait(poll_seconds)
            if self.wake.wait(poll_seconds):
                self.wake.clear()
                # a write woke us: wait a moment so that writes arriving together go out in one batch
                self._stop.wait(batch_window)

    def start(self) -> "Relay":
        self._thread = threading.Thread(target=self.run, name="notificatie-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread:
            self._thread.join(timeout)
