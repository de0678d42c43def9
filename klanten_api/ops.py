"""Operations endpoints outside the API's base path: /_health/live, /_health/ready and /_metrics.

The standard forbids extra operations under /api/v1, so these live at the root. /_metrics is the Prometheus
exposition of klanten_api.metrics: the sum over every process of `serve`, outbox figures read when scraped.
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool

from .metrics import CONTENT_TYPE, ScrapeCollector, exposition


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


class OpsEndpoints:
    PATHS = ("/_health/live", "/_health/ready", "/_metrics")

    def __init__(self, engine: sa.Engine, collector: ScrapeCollector):
        self.engine = engine
        self.collector = collector

    async def __call__(self, scope, receive, send) -> int:
        path = scope["path"]
        if path == "/_health/live":
            return await self._send(send, 200, "application/json", json.dumps({"status": "ok"}))
        if path == "/_health/ready":
            ready, reason = await run_in_threadpool(database_status, self.engine)
            return await self._send(send, 200 if ready else 503, "application/json",
                                    json.dumps({"status": "ok" if ready else "unavailable", "reason": reason}))
        body = await run_in_threadpool(exposition, self.collector)
        return await self._send(send, 200, CONTENT_TYPE, body)

    @staticmethod
    async def _send(send, status: int, content_type: str, text: str | bytes) -> int:
        body = text if isinstance(text, bytes) else text.encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": body})
        return status
