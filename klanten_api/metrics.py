"""Prometheus metrics (prometheus_client), one view of the whole server (README "Metrics").

Two modes, chosen by prometheus_client when it is first imported in a process:

- multiprocess: `klanten-api serve` sets PROMETHEUS_MULTIPROC_DIR (a directory of its own, `metrics_map`)
  before it starts its workers and its relay, so every process writes its counters and histograms to files
  there and a scrape, answered by any worker, returns the sum over all of them. The files of a worker that
  died stay (its counts stay in the totals: counters never go backwards); its live gauges (pool in use) are
  dropped at the next scrape (`mark_process_dead`).
- single process (create_app() embedded, tests' in-process servers): the same metrics in this process's
  registry.

Labels are operationIds, status classes and fixed result words: never a path or anything a client chooses.
Gauges that describe the database (the outbox) are read by the scraping process when it is scraped.
"""
from __future__ import annotations

import datetime as dt
import os
import re

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DUUR_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}

disable_created_metrics()       # `_created` samples: not in the multiprocess mode either, one view in both modes

# the registry of this process's own metrics (single-process mode); in multiprocess mode a scrape collects the
# files instead (`exposition`)
EIGEN = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "klanten_http_requests", "HTTP requests answered, by operationId (\"other\" outside the APIs' operations) "
    "and status class.", ["operation", "status_class"], registry=EIGEN)
HTTP_DUUR = Histogram(
    "klanten_http_request_duration_seconds", "Time from a request's arrival to its answer, by operationId.",
    ["operation"], buckets=DUUR_BUCKETS, registry=EIGEN)
BEZORGINGEN = Counter(
    "klanten_notificaties_deliveries", "Notification deliveries to the Notificaties API by result: delivered, "
    "retry (transient failure, tried again later), failed (kept as failed).", ["result"], registry=EIGEN)
BEZORG_DUUR = Histogram(
    "klanten_notificaties_delivery_duration_seconds", "Duration of one POST to the Notificaties API.",
    buckets=DUUR_BUCKETS, registry=EIGEN)
BEZORG_POGINGEN = Histogram(
    "klanten_notificaties_delivery_attempts", "Attempts a notification took until it was delivered or failed.",
    buckets=(1, 2, 3, 5, 10, 20, 50), registry=EIGEN)
SUBJECT_CONTROLES = Counter(
    "klanten_subject_checks", "kla-002 subject URL checks by result: ok, bad_status (answered, not 200), "
    "refused (an address that may not be fetched), timeout, unreachable, busy (no place free).", ["result"],
    registry=EIGEN)
SUBJECT_DUUR = Histogram(
    "klanten_subject_check_duration_seconds", "Duration of one kla-002 subject URL check (redirects included).",
    buckets=DUUR_BUCKETS, registry=EIGEN)
AC_VERZOEKEN = Counter(
    "klanten_autorisaties_requests", "Calls to the Autorisaties API by result: ok, error (an error answer), "
    "unreachable.", ["result"], registry=EIGEN)
AC_CACHE = Counter(
    "klanten_autorisaties_cache_lookups", "Scope look-ups in the Autorisaties API cache by result: hit, miss.",
    ["result"], registry=EIGEN)
RATE_LIMIT = Counter(
    "klanten_rate_limit_refusals", "Requests refused with 429 by KLANTEN_RATE_LIMIT.", registry=EIGEN)
POOL_IN_GEBRUIK = Gauge(
    "klanten_db_pool_connections_in_use", "Database connections checked out of the pools (all processes).",
    multiprocess_mode="livesum", registry=EIGEN)
POOL_GROOTTE = Gauge(
    "klanten_db_pool_size", "Configured pool size plus overflow, summed over the processes (capacity).",
    multiprocess_mode="livesum", registry=EIGEN)
POOL_WACHTEN = Counter(
    "klanten_db_pool_waits", "Connection checkouts that found every connection of the pool in use and waited.",
    registry=EIGEN)
POOL_TIMEOUTS = Counter(
    "klanten_db_pool_timeouts", "Connection checkouts that waited longer than KLANTEN_DB_POOL_TIMEOUT (failed).",
    registry=EIGEN)


def status_class(status: int) -> str:
    return STATUS_CLASSES.get(status // 100, "other")


# the labelled children of the request metrics, looked up once per (operation, status class): `labels()` takes
# the metric's lock and checks its label values on every call (operations and classes are a fixed, small set)
_TELLERS: dict[tuple[str, int], object] = {}
_DUREN: dict[str, object] = {}


class Verzoeken:
    """What the HTTP layer (klanten_api.http.ZgwHttp) records of every request."""

    @staticmethod
    def observe(operation: str | None, status: int, seconds: float) -> None:
        op = operation or "other"
        sleutel = (op, status // 100)
        teller = _TELLERS.get(sleutel)
        if teller is None:
            teller = _TELLERS[sleutel] = HTTP_REQUESTS.labels(op, status_class(status))
        teller.inc()
        duur = _DUREN.get(op)
        if duur is None:
            duur = _DUREN[op] = HTTP_DUUR.labels(op)
        duur.observe(seconds)


# ------------------------------------------------------------------------------------------------ the directory
def multiprocess_map() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


_PID_BESTAND = re.compile(r"gauge_live\w*?_(\d+)\.db$")


def _levend(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def vergeet_dode_processen(pad: str) -> None:
    """Live gauges (pool in use) of processes that are gone (a worker killed and restarted by uvicorn's
    supervisor) are not summed any more; counters and histograms of dead processes stay in the totals."""
    from prometheus_client import multiprocess
    pids = {int(m.group(1)) for f in os.listdir(pad) if (m := _PID_BESTAND.search(f))}
    for pid in pids:
        if pid != os.getpid() and not _levend(pid):
            multiprocess.mark_process_dead(pid, pad)


# ------------------------------------------------------------------------------------------------ the scrape
def _build_versie() -> str:
    try:
        from importlib.metadata import version
        return version("klanten-api")
    except Exception:
        return "unknown"


class ScrapeCollector:
    """What the scraping process reads when scraped: the outbox (global, from the database) and build info."""

    def __init__(self, engine: sa.Engine, api_versies: dict[str, str]):
        self.engine = engine
        self.info = {"version": _build_versie(), **{f"{naam}_api": v for naam, v in sorted(api_versies.items())}}

    def collect(self):
        info = InfoMetricFamily("klanten_build", "Version of this server and of the APIs it serves.")
        info.add_metric([], self.info)
        yield info
        try:
            figures = outbox_figures(self.engine)
        except Exception:
            return                      # the database is unreachable: no outbox figures (readiness says why)
        yield GaugeMetricFamily("klanten_outbox_pending", "Notifications waiting to be delivered.",
                                value=figures["pending"])
        yield GaugeMetricFamily("klanten_outbox_failed", "Notifications kept as failed (`klanten-api notificaties "
                                "list`); they hold back their klant's later ones.", value=figures["failed"])
        yield GaugeMetricFamily("klanten_outbox_oldest_pending_age_seconds",
                                "Age of the oldest notification still waiting to be delivered (0: none).",
                                value=figures["oldest_pending_age"])


def outbox_figures(engine: sa.Engine) -> dict:
    from storage.notificaties import MISLUKT, WACHTEND
    from storage.tables import notificatie
    with engine.connect() as conn:
        pending, oudste = conn.execute(sa.select(sa.func.count(), sa.func.min(notificatie.c.aangemaakt))
                                       .where(notificatie.c.status == WACHTEND)).one()
        failed = conn.execute(sa.select(sa.func.count()).where(notificatie.c.status == MISLUKT)).scalar_one()
    leeftijd = 0.0
    if oudste is not None:
        if oudste.tzinfo is None:
            oudste = oudste.replace(tzinfo=dt.timezone.utc)
        leeftijd = max(0.0, (dt.datetime.now(dt.timezone.utc) - oudste).total_seconds())
    return {"pending": pending, "oldest_pending_age": leeftijd, "failed": failed}


def exposition(collector: ScrapeCollector) -> bytes:
    """The text exposition of one scrape: every process's metrics (multiprocess) or this one's, and the scrape's
    own figures."""
    registry = CollectorRegistry(auto_describe=False)
    pad = multiprocess_map()
    if pad:
        from prometheus_client import multiprocess
        vergeet_dode_processen(pad)
        multiprocess.MultiProcessCollector(registry, path=pad)
    else:
        registry.register(_Eigen())
    registry.register(collector)
    return generate_latest(registry)


class _Eigen:
    def collect(self):
        return EIGEN.collect()


# ------------------------------------------------------------------------------------------------ the pool
_GEMETEN: "set[int]" = set()


def meet_pool(engine: sa.Engine) -> None:
    """Connections in use (pool checkout/checkin events) and the capacity of this process's pool; once per
    engine (tests hand several apps one engine)."""
    pool = engine.pool
    if id(engine) in _GEMETEN or not hasattr(pool, "checkedout"):
        return
    _GEMETEN.add(id(engine))
    overflow = getattr(pool, "_max_overflow", 0)
    POOL_GROOTTE.inc(pool.size() + max(0, overflow))

    # a checkin is counted only for a checkout that was: a connection already out when this engine was measured
    # (or one whose checkout event never came) would otherwise take the gauge below zero
    uit: set[int] = set()

    @sa.event.listens_for(engine, "checkout")
    def _uit(dbapi_connection, record, proxy):
        if id(record) not in uit:
            uit.add(id(record))
            POOL_IN_GEBRUIK.inc()

    @sa.event.listens_for(engine, "checkin")
    def _terug(dbapi_connection, record):
        if id(record) in uit:
            uit.discard(id(record))
            POOL_IN_GEBRUIK.dec()


class TellendePool(sa.pool.QueuePool):
    """A QueuePool that counts the checkouts that had to wait for a connection (and those that gave up)."""

    def _do_get(self):
        if self._max_overflow > -1 and self.checkedout() >= self.size() + self._max_overflow:
            POOL_WACHTEN.inc()
        try:
            return super()._do_get()
        except sa.exc.TimeoutError:
            POOL_TIMEOUTS.inc()
            raise
