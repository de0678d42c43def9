"""Rate limiting per client_id (off by default): a fixed window of N requests per T seconds.

In-process by default (each worker process counts on its own); shared by all processes and machines
through Redis when KLANTEN_REDIS_URL is set. When Redis is unreachable the request is let through and a
warning is logged: an unavailable limiter must not take the register down.
"""
from __future__ import annotations

import logging
import math
import threading
import time

from .errors import ApiProblem
from .metrics import RATE_LIMIT

log = logging.getLogger("klanten_api.ratelimit")


class TeVeelVerzoeken(ApiProblem):
    status = 429

    def __init__(self, retry_after: int):
        super().__init__(f"Te veel verzoeken; probeer het over {retry_after} seconden opnieuw.",
                         headers={"Retry-After": str(retry_after)})


class InProcessLimiter:
    def __init__(self, aantal: int, seconden: float, clock=time.monotonic):
        self.aantal, self.seconden, self.clock = aantal, seconden, clock
        self._vensters: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def tel(self, client_id: str) -> float | None:
        """Count one request; None when allowed, else seconds until the window ends."""
        nu = self.clock()
        venster = int(nu // self.seconden)
        with self._lock:
            oud_venster, aantal = self._vensters.get(client_id, (venster, 0))
            if oud_venster != venster:
                aantal = 0
            aantal += 1
            self._vensters[client_id] = (venster, aantal)
            if len(self._vensters) > 10_000:
                self._vensters = {k: v for k, v in self._vensters.items() if v[0] == venster}
        if aantal > self.aantal:
            return (venster + 1) * self.seconden - nu
        return None


class RedisLimiter:
    def __init__(self, url: str, aantal: int, seconden: float):
        import redis
        self.redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.aantal, self.seconden = aantal, seconden

    def tel(self, client_id: str) -> float | None:
        nu = time.time()
        venster = int(nu // self.seconden)
        key = f"klanten-api:rl:{client_id}:{venster}"
        try:
            pipe = self.redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, int(math.ceil(self.seconden)) + 1)
            aantal = pipe.execute()[0]
        except Exception as exc:   # redis down: let the request through
            log.warning("rate limiter unavailable", extra={"event": "ratelimit_unavailable",
                                                          "exception_class": type(exc).__name__})
            return None
        if aantal > self.aantal:
            return (venster + 1) * self.seconden - nu
        return None


def make_limiter(settings):
    parts = settings.rate_limit_parts()
    if parts is None:
        return None
    if settings.redis_url:
        return RedisLimiter(settings.redis_url, *parts)
    return InProcessLimiter(*parts)


def controleer(limiter, client_id: str) -> None:
    if limiter is None:
        return
    wacht = limiter.tel(client_id)
    if wacht is not None:
        RATE_LIMIT.inc()
        raise TeVeelVerzoeken(max(1, int(math.ceil(wacht))))
