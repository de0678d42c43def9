"""The bridge from connexion's ASGI middleware to the Flask (WSGI) app: the request runs in a thread pool, and
its answer comes back to the event loop in one piece.

connexion's FlaskApp uses a2wsgi for this, which hands every piece of the answer (the status line, each body
chunk, the end) to the event loop separately and makes the thread wait for each: three or four round trips
between two threads per request, each a wake-up through the loop's self-pipe and a condition variable. Our
answers are small JSON documents that Flask has built in full before it returns, so this bridge collects
status, headers and body in the thread and hands them over once (one submit, one completion). The request
side stays a2wsgi's: the same WSGI environ, the body read lazily from the ASGI `receive`.
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


class WsgiInEenKeer(WSGIMiddleware):
    """a2wsgi's WSGIMiddleware (same thread pool: 10 threads named WSGI_n), answering in one hand-over."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        loop = asyncio.get_running_loop()
        environ = build_environ(scope, Body(loop, receive))
        antwoord = Antwoord()
        context = contextvars.copy_context()
        await loop.run_in_executor(self.executor, context.run, self._wsgi, environ, antwoord)
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
