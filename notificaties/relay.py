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
import select
import socket
import threading
import time
from contextlib import contextmanager

import sqlalchemy as sa

from klanten_api.settings import Settings
from storage.notificaties import MISLUKT, VERZONDEN, WACHTEND
from storage.tables import notificatie
from .client import NietBereikbaar, NotificatiesApi

log = logging.getLogger("klanten_api.notificaties")
MAX_BACKOFF_SECONDS = 300.0
RETRYABLE_4XX = {408, 425, 429}
FOUT_PAUZE = 5.0          # seconds at most between tries while the database is away


def _nu() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Relay:
    def __init__(self, engine: sa.Engine, settings: Settings, *, batch: int = 20, wekker=None):
        self.engine = engine
        self.settings = settings
        self.api = NotificatiesApi(settings)
        self.batch = batch
        self.lease = dt.timedelta(seconds=2 * settings.notifications_timeout + 10)
        # how an idle relay learns of new messages: by default the writes of this process wake it (`wake`)
        self.wekker = wekker or ThreadWekker()
        self.wake = getattr(self.wekker, "event", None)
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

    # ---- running ----
    def run(self, poll_seconds: float | None = None, batch_window: float = 0.05) -> None:
        """Deliver until stopped: drain what is due, then sleep until woken (a new message) or until the poll
        interval has passed (retries that fell due)."""
        poll = self.settings.notifications_poll if poll_seconds is None else poll_seconds
        while not self._stop.is_set():
            try:
                while self.verzend_batch() and not self._stop.is_set():
                    pass
                if self.wekker.wacht(poll):
                    # writes arriving together go out in one batch: wait a moment, then forget the wake-ups so far
                    self._stop.wait(batch_window)
                    self.wekker.vergeet()
            except Exception as exc:   # the database may be away for a moment; keep the relay alive
                log.error("relay error", extra={"event": "relay_error", "exception_class": type(exc).__name__})
                self._stop.wait(min(poll, FOUT_PAUZE))

    def start(self) -> "Relay":
        """Run in a thread of this process (an embedding of `create_app()` or uvicorn's factory without `serve`,
        the tests); writes of this process wake it through `wake`."""
        self._thread = threading.Thread(target=self.run, name="notificatie-relay", daemon=True)
        self._thread.start()
        return self

    def gestopt(self) -> bool:
        return self._stop.is_set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.wekker.onderbreek()
        if self._thread:
            self._thread.join(timeout)


class ThreadWekker:
    """Wakes a relay thread from the writes of its own process (`Relay.wake.set` after a commit)."""

    def __init__(self):
        self.event = threading.Event()

    def wacht(self, timeout: float) -> bool:
        gewekt = self.event.wait(timeout)
        self.event.clear()
        return gewekt

    def vergeet(self) -> None:
        self.event.clear()

    def onderbreek(self) -> None:
        self.event.set()


class SocketWekker:
    """Wakes the relay process that `serve` runs beside its workers: a worker that committed a message sends one
    datagram (`WekSignaal`) to this loopback UDP socket, which `serve` bound and handed over. A lost datagram
    costs at most the poll interval; datagrams sent while the relay restarts wait in the socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sock.setblocking(False)
        self._onderbroken = False

    def wacht(self, timeout: float) -> bool:
        einde = time.monotonic() + timeout
        self._onderbroken = False
        while not self._onderbroken:
            # in slices of at most a second, so that a stop is seen soon whatever the poll interval
            rest = einde - time.monotonic()
            if rest <= 0:
                return False
            leesbaar, _, _ = select.select([self.sock], [], [], min(rest, 1.0))
            if leesbaar:
                return True
        return False

    def vergeet(self) -> None:
        try:
            while True:
                self.sock.recv(64)
        except (BlockingIOError, InterruptedError):
            pass

    def onderbreek(self) -> None:
        self._onderbroken = True


class WekSignaal:
    """Worker side of `SocketWekker`: after a commit that queued a message, one datagram to the relay process
    (never blocks, never fails the request: the relay also polls)."""

    def __init__(self, adres: str):
        host, _, poort = adres.rpartition(":")
        self.adres = (host, int(poort))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    def __call__(self) -> None:
        try:
            self.sock.sendto(b"!", self.adres)
        except OSError:
            pass
