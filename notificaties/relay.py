"""The outbox relay: delivers stored notifications to the Notificaties API, never in the request path.

Guarantees (README "Audit trail and notifications"):

- At least once, and only the message whose send was in flight when a relay died (or lost its database
  for longer than its lease) can arrive twice. A batch is claimed with a lease (its next attempt time moved
  past the sends' window) in one statement, with FOR UPDATE SKIP LOCKED on PostgreSQL, so any number of
  relays in any number of processes and machines can run at once. Each message is marked delivered right
  after its own send. Before each send the relay checks, on its own monotonic clock measured from before the
  claim, that the lease still covers the longest send (twice the timeout: connecting, then the answer) plus a
  margin; if not, it extends the lease of what it still holds first (only where the lease is still the one it
  took, so never over another relay's claim). So no relay sends a message whose lease may have run out.
- In order per klant: a message is eligible only when no older message of its klant is pending or failed, so
  a batch holds at most one message per klant and a failed message holds back the later ones of its klant
  until an operator retries (`klanten-api notificaties retry`) or discards it.
- Retries: 5xx, 408, 425, 429, time-outs and connection errors are retried with exponential backoff and full
  jitter (at most `notifications_max_backoff`) until `notifications_retry_horizon` has passed since the
  message's first failure; then, or at once for any other 4xx, it is kept as `failed`, logged (ids only, no
  personal data) and listed by `klanten-api notificaties list`.

The HTTP call happens outside any transaction, so a slow or hanging Notificaties API never holds a lock that
a write needs.
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
from typing import NamedTuple

import sqlalchemy as sa

from klanten_api import metrics
from klanten_api.settings import Settings
from storage.notificaties import MISLUKT, VERZONDEN, WACHTEND
from storage.tables import notificatie
from .client import NietBereikbaar, NotificatiesApi

log = logging.getLogger("klanten_api.notificaties")
RETRYABLE_4XX = {408, 425, 429}
FOUT_PAUZE = 5.0          # seconds at most between tries while the database is away
LEASE_RUIMTE = 10.0       # seconds a lease lasts beyond the longest send: room for sends before it is extended
MARGE = 1.0               # seconds a lease must still have beyond the longest send when a send starts
MAX_VERVANGEN = 3         # dead pooled connections replaced at once within one statement's run


def _nu() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _tekst(waarde: str):
    """A status in the SQL text, not a parameter: psycopg prepares a statement after a few executions and
    PostgreSQL may then plan it generically, and a generic plan cannot use a partial index whose predicate
    compares with a parameter (it walked the whole outbox: seconds per claim)."""
    return sa.literal_column(f"'{waarde}'")


class Geclaimd(NamedTuple):
    id: int
    bericht: str
    pogingen: int
    traceparent: str | None = None


class Relay:
    def __init__(self, engine: sa.Engine, settings: Settings, *, batch: int = 20, wekker=None):
        self.engine = engine
        self.settings = settings
        self.api = NotificatiesApi(settings)
        self.batch = batch
        # the longest one send takes: connecting and then waiting for the answer, each bounded by the timeout
        self.verzendduur = 2 * settings.notifications_timeout
        self.lease = dt.timedelta(seconds=self.verzendduur + LEASE_RUIMTE)
        self.horizon = dt.timedelta(seconds=settings.notifications_retry_horizon)
        # how an idle relay learns of new messages: by default the writes of this process wake it (`wake`)
        self.wekker = wekker or ThreadWekker()
        self.wake = getattr(self.wekker, "event", None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._statements: dict[tuple[str, str], sa.Executable] = {}
        self._dbapi_fout = getattr(engine.dialect.loaded_dbapi, "Error", sa.exc.DBAPIError)

    # ---- statements (built once per dialect: building one costs more CPU than running it) ----
    @staticmethod
    def _klok(postgres: bool):
        """Now, as the statements compare it: the database's clock on PostgreSQL (machines' clocks differ;
        leases must not), evaluated inside the statement itself; ours on SQLite (parameter `nu`)."""
        return sa.func.now() if postgres else sa.bindparam("nu", type_=notificatie.c.volgende_poging.type)

    def _statement(self, conn, naam: str) -> sa.Executable:
        sleutel = (conn.dialect.name, naam)
        if sleutel not in self._statements:
            self._statements[sleutel] = getattr(self, f"_bouw_{naam}")(conn.dialect.name == "postgresql")
        return self._statements[sleutel]

    def _parameters(self, conn, **extra) -> dict:
        if conn.dialect.name == "postgresql":
            return extra
        nu = _nu()
        return {"nu": nu, "tot": nu + self.lease, "grens": nu - self.horizon, **extra}

    def claim_statement(self, conn) -> sa.Update:
        return self._statement(conn, "claim")

    def claim_parameters(self, conn) -> dict:
        return self._parameters(conn)

    def _lease_einde(self, postgres: bool):
        return (sa.func.now() + self.lease if postgres
                else sa.bindparam("tot", type_=notificatie.c.volgende_poging.type))

    def _bouw_claim(self, postgres: bool) -> sa.Update:
        """Lease the oldest pending messages that are due, at most one per klant: the oldest of that klant,
        and only while no older one of the klant failed (order per klant), in one statement that returns
        them. The conditions on status match the partial indexes of migrations 0003 and 0004: claiming reads
        pending (and failed) messages only, however many sent ones the outbox keeps."""
        kandidaat, ouder = notificatie.alias("kandidaat"), notificatie.alias("ouder")
        eerder_open = sa.exists().where(ouder.c.klant_uuid == kandidaat.c.klant_uuid,
                                        ouder.c.status.in_([_tekst(WACHTEND), _tekst(MISLUKT)]),
                                        ouder.c.id < kandidaat.c.id)
        kandidaten = (sa.select(kandidaat.c.id)
                      .where(kandidaat.c.status == _tekst(WACHTEND), ~eerder_open,
                             kandidaat.c.volgende_poging <= self._klok(postgres))
                      .order_by(kandidaat.c.id).limit(self.batch))
        if postgres:
            kandidaten = kandidaten.with_for_update(skip_locked=True, of=kandidaat)
        return (sa.update(notificatie).where(notificatie.c.id.in_(kandidaten.scalar_subquery()))
                .values(volgende_poging=self._lease_einde(postgres), pogingen=notificatie.c.pogingen + 1)
                .returning(notificatie.c.id, notificatie.c.bericht, notificatie.c.pogingen,
                           notificatie.c.volgende_poging, notificatie.c.traceparent))

    def _van_ons(self):
        """Messages still held under the lease this relay took (`einde`), by no one else since."""
        return sa.and_(notificatie.c.id.in_(sa.bindparam("ids", expanding=True)),
                       notificatie.c.status == _tekst(WACHTEND),
                       notificatie.c.volgende_poging == sa.bindparam("einde", type_=notificatie.c.volgende_poging.type))

    def _bouw_verleng(self, postgres: bool) -> sa.Update:
        return (sa.update(notificatie).where(self._van_ons()).values(volgende_poging=self._lease_einde(postgres))
                .returning(notificatie.c.id, notificatie.c.volgende_poging))

    def _bouw_teruggeven(self, postgres: bool) -> sa.Update:
        # claimed but not sent (the relay stops): due again at once, the claim's attempt not counted
        return (sa.update(notificatie).where(self._van_ons())
                .values(volgende_poging=self._klok(postgres), pogingen=notificatie.c.pogingen - 1))

    def _bouw_verzonden(self, postgres: bool) -> sa.Update:
        statement = (sa.update(notificatie)
                     .where(notificatie.c.id == sa.bindparam("nid"), notificatie.c.status == _tekst(WACHTEND))
                     .values(status=VERZONDEN, verzonden=self._klok(postgres), laatste_fout=""))
        if postgres:
            # One commit per delivery; waiting for its WAL flush made the mark cost more than the send (measured:
            # 330-480 deliveries/s instead of about 1300/s). The statement commits asynchronously instead
            # (synchronous_commit off for its own transaction only, set inside it: no extra round trip). What a
            # PostgreSQL crash can lose is a fraction of a second of these marks, and a lost mark only means the
            # message is sent again (README: the duplicate window), never that one is lost.
            statement = statement.where(
                sa.literal_column("set_config('synchronous_commit', 'off', true)") == sa.literal_column("'off'"))
        return statement

    def _bouw_mislukt(self, postgres: bool) -> sa.Update:
        return (sa.update(notificatie)
                .where(notificatie.c.id == sa.bindparam("nid"), notificatie.c.status == _tekst(WACHTEND))
                .values(status=MISLUKT, laatste_fout=sa.bindparam("fout", type_=sa.String()),
                        eerste_fout=sa.func.coalesce(notificatie.c.eerste_fout, self._klok(postgres))))

    def _bouw_opnieuw(self, postgres: bool) -> sa.Update:
        """A transient failure: retried after `wacht` seconds, or failed once the retry horizon has passed since
        the message's first failure (the database's clock on PostgreSQL, as the leases)."""
        nu = self._klok(postgres)
        grens = (nu - self.horizon if postgres
                 else sa.bindparam("grens", type_=notificatie.c.eerste_fout.type))
        volgende = (nu + sa.bindparam("wacht", type_=sa.Interval()) if postgres
                    else sa.bindparam("volgende", type_=notificatie.c.volgende_poging.type))
        eerste = notificatie.c.eerste_fout
        return (sa.update(notificatie)
                .where(notificatie.c.id == sa.bindparam("nid"), notificatie.c.status == _tekst(WACHTEND))
                .values(volgende_poging=volgende, laatste_fout=sa.bindparam("fout", type_=sa.String()),
                        eerste_fout=sa.func.coalesce(eerste, nu),
                        status=sa.case((eerste <= grens, MISLUKT), else_=WACHTEND))
                .returning(notificatie.c.status))

    # ---- running statements ----
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

    def _uitvoeren(self, naam: str, tot: float | None = None, **parameters) -> list:
        """Run one of the relay's statements; the rows it returns. Connections that died in the pool (the database
        restarted, a connection was killed) are replaced at once; with `tot` (a time.monotonic() deadline: the end
        of the lease in hand) any database error is retried with a growing pause until then, since a delivery
        that is not marked is sent again after its lease."""
        pauze, vervangen = 0.05, 0
        while True:
            try:
                with self._atomair() as conn:
                    result = conn.execute(self._statement(conn, naam), self._parameters(conn, **parameters))
                    return result.all() if result.returns_rows else []
            except (sa.exc.DBAPIError, self._dbapi_fout) as exc:
                # a dead connection: SQLAlchemy invalidated it, or (setting autocommit on it) the driver's own
                # error came through unwrapped; not a lock time-out or a constraint, which another try won't fix
                dood = exc.connection_invalidated if isinstance(exc, sa.exc.DBAPIError) else True
                if dood and vervangen < MAX_VERVANGEN:
                    vervangen += 1
                    continue
                if tot is None or time.monotonic() + pauze >= tot:
                    raise exc
                time.sleep(pauze)
                pauze = min(1.0, pauze * 2)

    def backoff(self, pogingen: int) -> float:
        """Exponential backoff with full jitter: uniform in [base, base * 2^(n-1)], capped."""
        basis = self.settings.notifications_backoff
        hoogste = min(self.settings.notifications_max_backoff, basis * 2.0 ** min(max(0, pogingen - 1), 60))
        return random.uniform(min(basis, hoogste), hoogste)

    # ---- sending ----
    def verzend_batch(self) -> int:
        """Claim one batch and send it message by message; returns how many messages were claimed. Each
        delivery is marked at once, so a relay that dies leaves at most the message in flight to be sent
        again; the rest of its batch waits for the lease to run out and is then sent once, by any relay."""
        begin = time.monotonic()              # before the claim: the lease runs at least this long from here
        rijen = self._uitvoeren("claim")
        if not rijen:
            return 0
        einde = rijen[0].volgende_poging      # one statement, one lease end for all its rows
        rest = sorted(Geclaimd(r.id, r.bericht, r.pogingen, r.traceparent) for r in rijen)
        lease = self.lease.total_seconds()
        while rest:
            if self._stop.is_set():
                self._uitvoeren("teruggeven", ids=[r.id for r in rest], einde=einde)
                break
            if time.monotonic() - begin + self.verzendduur + MARGE > lease:
                begin = time.monotonic()
                verlengd = self._uitvoeren("verleng", ids=[r.id for r in rest], einde=einde)
                if not verlengd:
                    break
                einde = verlengd[0].volgende_poging
                nog = {r.id for r in verlengd}
                rest = [r for r in rest if r.id in nog]
                continue
            self._verzend(rest.pop(0), tot=begin + lease)
        return len(rijen)

    def _verzend(self, rij: Geclaimd, tot: float) -> None:
        """Send one message and record the outcome (before `tot`, the end of its lease, if at all possible)."""
        begin = time.perf_counter()
        try:
            status = self.api.publiceer(rij.bericht, rij.traceparent)
            fout = f"HTTP {status}"
        except NietBereikbaar as exc:
            status, fout = None, exc.reden
        metrics.BEZORG_DUUR.observe(time.perf_counter() - begin)
        if status is not None and 200 <= status < 300:
            metrics.BEZORGINGEN.labels("delivered").inc()
            metrics.BEZORG_POGINGEN.observe(rij.pogingen)
            self._uitvoeren("verzonden", tot, nid=rij.id)
            log.info("notification delivered", extra={"event": "notification_delivered", "notificatie_id": rij.id})
            return
        if status is not None and 400 <= status < 500 and status not in RETRYABLE_4XX:
            metrics.BEZORGINGEN.labels("failed").inc()
            metrics.BEZORG_POGINGEN.observe(rij.pogingen)
            self._uitvoeren("mislukt", tot, nid=rij.id, fout=fout)
            log.warning("notification failed permanently", extra={
                "event": "notification_failed", "notificatie_id": rij.id, "reason": fout, "attempts": rij.pogingen})
            return
        wacht = self.backoff(rij.pogingen)
        uitkomst = self._uitvoeren("opnieuw", tot, nid=rij.id, fout=fout, wacht=dt.timedelta(seconds=wacht),
                                   volgende=_nu() + dt.timedelta(seconds=wacht))
        if uitkomst and uitkomst[0].status == MISLUKT:
            metrics.BEZORGINGEN.labels("failed").inc()
            metrics.BEZORG_POGINGEN.observe(rij.pogingen)
            log.warning("notification failed: retry horizon passed", extra={
                "event": "notification_failed", "notificatie_id": rij.id, "reason": fout, "attempts": rij.pogingen})
            return
        metrics.BEZORGINGEN.labels("retry").inc()
        log.info("notification will be retried", extra={
            "event": "notification_retry", "notificatie_id": rij.id, "reason": fout, "attempts": rij.pogingen,
            "retry_in_seconds": round(wacht, 2)})

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
