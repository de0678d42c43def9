"""The bridge from connexion's ASGI middleware to the Flask (WSGI) app: the request runs in a thread pool, and
its answer comes back to the event loop in one piece.

connexion's FlaskApp uses a2wsgi for this, which hands every piece of the answer (the status line, each body
chunk, the end) to the event loop separately and makes the thread wait for each: three or four round trips
between two threads per request, each a wake-up through the loop's self-pipe and a condition variable. Our
answers are small JSON documents that Flask has built in full before it returns, so this bridge collects
status, headers and body in the thread and hands them over once (one submit, one completion). The request
side stays a2wsgi's: the same WSGI environ, the body read lazily from the ASGI `receive`.

It also lets only a few requests run in the thread pool at once (`Toegang`, KLANTEN_REQUEST_CONCURRENCY, 3).
With eight kept connections, four per worker, four threads contended for the GIL and a detail read cost a worker
up to 1.3× the CPU it costs alone (issue #14: 0.80 against 0.62 ms; with a pool of two threads 0.61 ms and
2,706 against 1,920 reads/s). The pool keeps its 10 threads for requests that wait (a subject check, a row lock,
a pool connection): a request that finds the places taken waits at most KLANTEN_REQUEST_OVERFLOW_AFTER (10 ms)
and then runs anyway on a free thread, so a slow request never holds up the others for longer than that.
"""
from __future__ import annotations

import asyncio
import contextvars

from a2wsgi.wsgi import Body, WSGIMiddleware, build_environ


class Antwoord:
    """What the WSGI app answered: filled in by start_response, write() and the returned iterable."""

    __slots__ = ("status", "headers", "exc_info", "delen")

    def __init__(self):
        self.status = None
        self.headers = None
        self.exc_info = None
        self.delen: list[bytes] = []

    def start_response(self, status: str, response_headers, exc_info=None):
        # nothing has been sent yet, so a second call (with exc_info, PEP 3333) simply replaces the first
        self.exc_info = exc_info
        self.status = int(status.split(" ", 1)[0])
        self.headers = [(naam.strip().encode("latin1").lower(), waarde.strip().encode("latin1"))
                        for naam, waarde in response_headers]
        return self.delen.append


class Toegang:
    """At most `plaatsen` requests in the thread pool at once; one that waited `overflow_after` seconds for a
    place goes in without one (the places are for the CPU, the pool's other threads for requests that wait)."""

    def __init__(self, plaatsen: int, overflow_after: float):
        self.plaatsen, self.overflow_after = plaatsen, overflow_after
        self._lus = self._semafoor = None       # the places belong to the event loop that serves the app

    async def binnen(self) -> bool:
        """Wait for a place (True), or give up after overflow_after seconds (False: run without one)."""
        lus = asyncio.get_running_loop()
        if self._lus is not lus:
            self._lus, self._semafoor = lus, asyncio.Semaphore(self.plaatsen)
        semafoor = self._semafoor
        if not semafoor.locked():
            await semafoor.acquire()          # a free place: taken without suspending
            return True
        try:
            await asyncio.wait_for(semafoor.acquire(), self.overflow_after)
            return True
        except TimeoutError:
            return False

    def uit(self, met_plaats: bool) -> None:
        if met_plaats and self._lus is asyncio.get_running_loop():
            self._semafoor.release()


class WsgiInEenKeer(WSGIMiddleware):
    """a2wsgi's WSGIMiddleware (same thread pool: 10 threads named WSGI_n), answering in one hand-over, with at
    most `plaatsen` requests running in it at once unless they wait longer than `overflow_after` seconds."""

    def __init__(self, app, *, plaatsen: int, overflow_after: float, **kwargs):
        # the numbers come from Settings (request_concurrency, request_overflow_after): no second set of defaults
        super().__init__(app, **kwargs)
        self.toegang = Toegang(plaatsen, overflow_after)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        loop = asyncio.get_running_loop()
        environ = build_environ(scope, Body(loop, receive))
        antwoord = Antwoord()
        context = contextvars.copy_context()
        met_plaats = await self.toegang.binnen()
        try:
            await loop.run_in_executor(self.executor, context.run, self._wsgi, environ, antwoord)
        finally:
            self.toegang.uit(met_plaats)
        await send({"type": "http.response.start", "status": antwoord.status, "headers": antwoord.headers})
        await send({"type": "http.response.body", "body": b"".join(antwoord.delen)})
        if antwoord.exc_info is not None:
            # as a2wsgi: an error the app reported through start_response is raised after its answer
            raise antwoord.exc_info[1].with_traceback(antwoord.exc_info[2])

    def _wsgi(self, environ, antwoord: Antwoord) -> None:
        iterable = self.app(environ, antwoord.start_response)
        try:
            for deel in iterable:
                if deel:
                    antwoord.delen.append(deel)
        finally:
            getattr(iterable, "close", lambda: None)()
        if antwoord.status is None:
            raise RuntimeError("the WSGI app returned without calling start_response")
