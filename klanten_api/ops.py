"""Operations endpoints outside the API's base path: /_health/live, /_health/ready and /_metrics.

The standard forbids extra operations under /api/v1, so these live at the root. Request metrics are
counted per worker process (label `pid`); outbox and pool figures are read when scraped.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections import defaultdict

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, list] = {}

    def observe(self, operation: str | None, status: int, seconds: float) -> None:
        op = operation or "other"
        with self._lock:
            self.requests[(op, status)] += 1
            hist = self.latency.setdefault(op, [[0] * len(BUCKETS), 0.0, 0])
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    hist[0][i] += 1
            hist[1] += seconds
            hist[2] += 1

    def render(self) -> list[str]:
        pid = os.getpid()
        lines = ["# HELP klanten_requests_total API requests by operationId and status (this worker process).",
                 "# TYPE klanten_requests_total counter"]
        with self._lock:
            for (op, status), n in sorted(self.requests.items()):
                lines.append(f'klanten_requests_total{{operation="{op}",status="{status}",pid="{pid}"}} {n}')
            lines += ["# HELP klanten_request_duration_seconds Request latency by operationId (this worker process).",
                      "# TYPE klanten_request_duration_seconds histogram"]
            for op, (counts, total, n) in sorted(self.latency.items()):
                for bound, c in zip(BUCKETS, counts):
                    lines.append(f'klanten_request_duration_seconds_bucket{{operation="{op}",le="{bound}",pid="{pid}"}} {c}')
                lines.append(f'klanten_request_duration_seconds_bucket{{operation="{op}",le="+Inf",pid="{pid}"}} {n}')
                lines.append(f'klanten_request_duration_seconds_sum{{operation="{op}",pid="{pid}"}} {total:.6f}')
                lines.append(f'klanten_request_duration_seconds_count{{operation="{op}",pid="{pid}"}} {n}')
        return lines


def database_status(engine: sa.Engine) -> tuple[bool, str]:
    """(ready, reason): the database answers and its schema is at the newest migration."""
    from storage.migrate import current, heads
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            huidig = current(conn)
    except Exception as exc:
        return False, f"database unreachable ({type(exc).__name__})"
    verwacht = heads(str(engine.url))
    if huidig != verwacht:
        return False, "database schema is not at the newest migration (run `klanten-api migrate`)"
    return True, "ok"


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


class OpsEndpoints:
    PATHS = ("/_health/live", "/_health/ready", "/_metrics")

    def __init__(self, engine: sa.Engine, metrics: Metrics):
        self.engine = engine
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> int:
        path = scope["path"]
        if path == "/_health/live":
            return await self._send(send, 200, "application/json", json.dumps({"status": "ok"}))
        if path == "/_health/ready":
            ready, reason = await run_in_threadpool(database_status, self.engine)
            return await self._send(send, 200 if ready else 503, "application/json",
                                    json.dumps({"status": "ok" if ready else "unavailable", "reason": reason}))
        lines = self.metrics.render()
        try:
            figures = await run_in_threadpool(outbox_figures, self.engine)
            lines += ["# HELP klanten_outbox_pending Notifications waiting to be delivered.",
                      "# TYPE klanten_outbox_pending gauge", f"klanten_outbox_pending {figures['pending']}",
                      "# HELP klanten_outbox_oldest_pending_age_seconds Age of the oldest undelivered notification.",
                      "# TYPE klanten_outbox_oldest_pending_age_seconds gauge",
                      f"klanten_outbox_oldest_pending_age_seconds {figures['oldest_pending_age']:.3f}",
                      "# HELP klanten_notifications_failed Notifications kept as failed (see `klanten-api notificaties list`).",
                      "# TYPE klanten_notifications_failed gauge", f"klanten_notifications_failed {figures['failed']}"]
        except Exception:
            lines += ["# outbox figures unavailable: database unreachable"]
        pool = self.engine.pool
        if hasattr(pool, "checkedout"):
            pid = os.getpid()
            lines += ["# HELP klanten_db_pool_checked_out Database connections in use (this worker process).",
                      "# TYPE klanten_db_pool_checked_out gauge",
                      f'klanten_db_pool_checked_out{{pid="{pid}"}} {pool.checkedout()}',
                      "# HELP klanten_db_pool_size Configured pool size (this worker process).",
                      "# TYPE klanten_db_pool_size gauge", f'klanten_db_pool_size{{pid="{pid}"}} {pool.size()}']
        return await self._send(send, 200, "text/plain; version=0.0.4", "\n".join(lines) + "\n")

    @staticmethod
    async def _send(send, status: int, content_type: str, text: str) -> int:
        body = text.encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": body})
        return status
