"""The HTTP connection under the ASGI app: uvicorn's httptools protocol with the limits it lacks.

uvicorn takes request headers of any size (httptools collects a header value in memory until its line ends:
one 50 MB Authorization header costs hundreds of MiB) and has no deadline for a request that never completes
its headers (timeout_keep_alive only counts idle time between requests, and not before the first request),
so half-sent requests are held until the process runs out of file descriptors. `BegrensdHttp` adds:

- a cap on the request line + headers of a request (KLANTEN_MAX_HEADER_BYTES): 431 and the connection closed,
  checked on the bytes as they arrive, so at most the cap plus one read is ever buffered;
- a header deadline (KLANTEN_HEADER_TIMEOUT) from the moment a connection is ready for a request (opened, or
  its previous response sent): a request whose headers are not complete by then is answered 408 (or, when
  nothing came at all, the connection is just closed); while a request runs the deadline does not apply (its
  body has KLANTEN_BODY_TIMEOUT in http.py);
- a bound on open connections per worker (KLANTEN_MAX_CONNECTIONS): a new connection over the bound closes
  the connection that has waited longest without a running request (idle keep-alive or unfinished headers,
  as a proxy drops idle connections first); when every connection runs a request the new one gets 503.

`uvicorn_opties` is the one place the uvicorn configuration is made: `klanten-api serve` and the test servers
both use it, so the tests run what production runs.
"""
from __future__ import annotations

import functools
import logging
import resource
import time
from dataclasses import dataclass

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("klanten_api.transport")

# descriptors a worker needs besides its client connections (database pool, relay wake-up, files, listener)
RESERVE_DESCRIPTORS = 128
WAARSCHUWING_INTERVAL = 60.0      # seconds between two warnings that the connection bound was reached
NAGLOED = 2.0                     # seconds a refused connection's further bytes are read and dropped


@dataclass(frozen=True)
class Grenzen:
    max_header_bytes: int
    header_timeout: float
    max_connections: int


class KopTeGroot(Exception):
    """Raised inside a parser callback: the request's headers passed max_header_bytes."""


def _antwoord(status: bytes, tekst: bytes, *extra: bytes) -> bytes:
    return b"".join([b"HTTP/1.1 ", status, b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ",
                     str(len(tekst)).encode(), b"\r\nconnection: close\r\n", *extra, b"\r\n", tekst])


TE_GROOT = _antwoord(b"431 Request Header Fields Too Large", b"Request Header Fields Too Large")
TE_TRAAG = _antwoord(b"408 Request Timeout", b"Request Timeout")
TE_VOL = _antwoord(b"503 Service Unavailable", b"Service Unavailable", b"retry-after: 1\r\n")


class BegrensdHttp(HttpToolsProtocol):
    _laatste_waarschuwing = 0.0            # per process (one worker): when the bound was last reported

    def __init__(self, config, server_state, app_state, _loop=None, *, grenzen: Grenzen):
        super().__init__(config, server_state, app_state, _loop)
        self.grenzen = grenzen
        self._wacht_op_kop = True          # ready for a request, or inside its header section
        self._kop_ontvangen = 0            # bytes received while _wacht_op_kop (what httptools may be holding)
        self._kop_geteld = 0               # request line + headers of the current request, as parsed
        self._kop_timer = None
        self._wacht_sinds = 0.0            # when this connection became ready for its current request
        self._afgewezen = False            # refused: what still comes is dropped until the connection closes

    # ---- connection
    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._gereed_voor_verzoek()
        if self._open_verbindingen() > self.grenzen.max_connections and not self._maak_plaats():
            self._sluit_met(TE_VOL)

    def connection_lost(self, exc) -> None:
        self._stop_kop_timer()
        super().connection_lost(exc)

    def _open_verbindingen(self) -> int:
        return sum(1 for c in self.connections if c.transport is not None and not c.transport.is_closing())

    def _zonder_verzoek(self) -> bool:
        """No request of this connection is being answered (idle, or still sending headers)."""
        return (self.cycle is None or self.cycle.response_complete) and not self.pipeline

    def _maak_plaats(self) -> bool:
        """Close the connection that has waited longest without a running request; False when there is none."""
        nu = time.monotonic()
        if nu - BegrensdHttp._laatste_waarschuwing > WAARSCHUWING_INTERVAL:
            BegrensdHttp._laatste_waarschuwing = nu
            log.warning("connection limit of the worker reached", extra={
                "event": "connection_limit", "max_connections": self.grenzen.max_connections})
        kandidaten = [c for c in self.connections if c is not self and isinstance(c, BegrensdHttp)
                      and c.transport is not None and not c.transport.is_closing() and c._zonder_verzoek()]
        if not kandidaten:
            return False
        min(kandidaten, key=lambda c: c._wacht_sinds).transport.close()
        return True

    def _sluit_met(self, antwoord: bytes) -> None:
        """Answer and close. The answer is followed by EOF, and what the client still sends (the rest of a huge
        header) is read and dropped for NAGLOED seconds: closing with unread bytes would reset the connection
        and could destroy the answer before the client reads it."""
        if self.transport.is_closing() or self._afgewezen:
            return
        if not self._zonder_verzoek():     # never in the middle of another response
            self.transport.close()
            return
        self._afgewezen = True
        self._wacht_sinds = 0.0            # first to go when the worker needs a connection slot
        self._stop_kop_timer()
        self.transport.write(antwoord)
        try:
            self.transport.write_eof()
        except (NotImplementedError, OSError, RuntimeError):
            self.transport.close()
            return
        self.flow.resume_reading()
        self.loop.call_later(NAGLOED, self.transport.close)

    # ---- header deadline
    def _gereed_voor_verzoek(self) -> None:
        self._wacht_sinds = time.monotonic()
        self._stop_kop_timer()
        self._kop_timer = self.loop.call_later(self.grenzen.header_timeout, self._kop_verlopen)

    def _stop_kop_timer(self) -> None:
        if self._kop_timer is not None:
            self._kop_timer.cancel()
            self._kop_timer = None

    def _kop_verlopen(self) -> None:
        self._kop_timer = None
        if self.transport.is_closing() or not self._zonder_verzoek():
            return
        if self._wacht_op_kop and self._kop_ontvangen:
            self._sluit_met(TE_TRAAG)      # part of a request came: say why it ends
        else:
            self.transport.close()         # nothing came, or the rest of an ignored body is still dribbling in

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._gereed_voor_verzoek()

    # ---- header size
    def data_received(self, data: bytes) -> None:
        if self._afgewezen or self.parser is None:
            return
        if self._wacht_op_kop:
            self._kop_ontvangen += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, KopTeGroot):
                return self._sluit_met(TE_GROOT)
            self.logger.warning("Invalid HTTP request received.")
            return self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            return self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # headers still incomplete after all that came: httptools holds them, so this is where the cap bites
        if self._wacht_op_kop and self._kop_ontvangen > self.grenzen.max_header_bytes:
            self._sluit_met(TE_GROOT)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._kop_geteld = 0

    def on_url(self, url: bytes) -> None:
        self._tel(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._tel(len(name) + len(value) + 4)          # "name: value\r\n"
        super().on_header(name, value)

    def _tel(self, n: int) -> None:
        self._kop_geteld += n
        if self._kop_geteld > self.grenzen.max_header_bytes:
            raise KopTeGroot

    def on_headers_complete(self) -> None:
        self._wacht_op_kop = False
        self._kop_ontvangen = 0
        self._stop_kop_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._wacht_op_kop = True          # the next request's headers (if the client pipelines one)


def verhoog_descriptorlimiet() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (workers inherit it); the new soft limit."""
    zacht, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or zacht < hard:
        doel = hard if hard != resource.RLIM_INFINITY else max(zacht, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (doel, hard))
            zacht = doel
        except (ValueError, OSError):
            pass
    return zacht


def grenzen(settings) -> Grenzen:
    """The limits of settings, the connection bound kept under this process's descriptor limit."""
    zacht = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    max_connections = settings.max_connections
    if zacht != resource.RLIM_INFINITY and max_connections > zacht - RESERVE_DESCRIPTORS:
        max_connections = max(1, zacht - RESERVE_DESCRIPTORS)
        log.warning("KLANTEN_MAX_CONNECTIONS lowered to fit the file descriptor limit", extra={
            "event": "max_connections_lowered", "max_connections": max_connections, "nofile": zacht})
    return Grenzen(max_header_bytes=settings.max_header_bytes, header_timeout=settings.header_timeout,
                   max_connections=max_connections)


def uvicorn_opties(settings) -> dict:
    """uvicorn's keyword arguments for every server of this project (`serve` and the test servers)."""
    return {
        "http": functools.partial(BegrensdHttp, grenzen=grenzen(settings)),
        "ws": "none",                      # the API has no WebSocket: no second protocol with limits of its own
        "log_config": None,
        "access_log": False,               # its access line holds the query string (BSNs): http.py logs instead
        "proxy_headers": False,            # X-Forwarded-* only through KLANTEN_TRUSTED_PROXIES (http.py)
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 10,
    }
