"""`klanten-api serve --workers N` (N ≥ 2): `serve` accepts every connection and hands it to the worker that has
the fewest open.

Why not uvicorn's own supervisor: its workers share one listening socket, and the worker whose event loop wakes
first accepts the whole burst of waiting connections (asyncio accepts up to `backlog` per wake). Clients that keep
their connections (a proxy, a connection pool) then often sit on one worker while the other idles: eight
persistent connections all on one worker in 3 of 10 runs (issue #14). Which worker takes a connection was luck.

Here `serve` listens itself, and a thread of it accepts: each accepted socket goes over a Unix socket pair
(SCM_RIGHTS) to the worker with the fewest open connections (on a tie, the one that got a connection least
recently), so eight connections to two workers are always four and four. The worker adopts the socket with
`loop.connect_accepted_socket` and uvicorn's protocol factory (`config.http_protocol_class`, our BegrensdHttp), so
every limit of transport.py holds as on a listening socket (header deadline, 431, connection bound, keep-alive
timeout, graceful shutdown), and it reports each closed connection back so the counts stay right.

The rest is uvicorn's supervisor: uvicorn's worker process (`Process`: spawn, health check over a pipe), a worker
that dies or stops answering is replaced (its connections die with it; clients reconnect and are spread again), a
worker that fails at start-up stops `serve`, SIGTERM and SIGINT stop accepting and end every worker gracefully.
"""
from __future__ import annotations

import asyncio
import logging
import os
import selectors
import signal
import socket
import struct
import threading
from collections.abc import Callable

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.server import Server
from uvicorn.supervisors.multiprocess import Process

log = logging.getLogger("klanten_api.verdeler")

# the messages on a worker's channel (SOCK_SEQPACKET: one send is one message)
VERBINDING = b"V"           # serve -> worker: one accepted connection, its descriptor attached
GEREED = b"R"               # worker -> serve: start-up complete, connections welcome
GESLOTEN = b"G"             # worker -> serve: b"G" + count (uint32): connections that closed
_TELLING = struct.Struct("!I")
ONTVANG_PER_BEURT = 8       # connections a worker takes from its channel per turn of its event loop


def kanaalpaar() -> tuple[socket.socket, socket.socket]:
    """(serve's end, the worker's end) of a worker's channel."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


# ----------------------------------------------------------------------------------------------------
# in the worker
# ----------------------------------------------------------------------------------------------------
class OvernemendeServer(Server):
    """uvicorn's Server (lifespan, main loop, graceful shutdown) that serves the connections `serve` hands it
    instead of accepting from a listening socket of its own."""

    def __init__(self, config: Config, kanaal: socket.socket):
        super().__init__(config)
        self.kanaal = kanaal
        self._te_melden = 0                # closed connections not yet reported to serve
        self._melding_gepland = False

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=[])  # lifespan start-up (or exit with STARTUP_FAILURE); no listener
        if self.should_exit:
            return
        loop = asyncio.get_running_loop()
        config = self.config

        def create_protocol(_loop=None) -> asyncio.Protocol:      # as uvicorn's Server.startup makes them
            protocol = config.http_protocol_class(config=config, server_state=self.server_state,
                                                  app_state=self.lifespan.state, _loop=_loop)
            verloren = protocol.connection_lost

            def connection_lost(exc):      # the count in serve follows every close, however the connection ends
                try:
                    verloren(exc)
                finally:
                    self._meld_gesloten()
            protocol.connection_lost = connection_lost
            return protocol

        self.kanaal.setblocking(False)
        loop.add_reader(self.kanaal.fileno(), self._ontvang, loop, create_protocol)
        self._stuur(GEREED)

    def _ontvang(self, loop: asyncio.AbstractEventLoop, create_protocol: Callable) -> None:
        # a few per turn of the loop: serve refills the channel as fast as it is read, and descriptors taken
        # faster than the connections they push out over KLANTEN_MAX_CONNECTIONS are closed would exhaust the
        # worker's descriptors (the kernel then drops what it passes: the clients get a reset)
        for _ in range(ONTVANG_PER_BEURT):
            try:
                bericht, fds, _, _ = socket.recv_fds(self.kanaal, 16, 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                bericht, fds = b"", []
            if not bericht and not fds:    # serve is gone: stop as proces.py would
                loop.remove_reader(self.kanaal.fileno())
                self.should_exit = True
                return
            for fd in fds:
                sock = socket.socket(fileno=fd)
                if self.should_exit:
                    sock.close()
                    self._meld_gesloten()
                    continue
                task = loop.create_task(self._adopteer(loop, sock, create_protocol))
                self.server_state.tasks.add(task)
                task.add_done_callback(self.server_state.tasks.discard)

    async def _adopteer(self, loop, sock: socket.socket, create_protocol: Callable) -> None:
        try:
            await loop.connect_accepted_socket(create_protocol, sock)
        except OSError:                     # the client left before it was adopted
            sock.close()
            self._meld_gesloten()

    def _meld_gesloten(self) -> None:
        self._te_melden += 1
        if not self._melding_gepland:
            self._melding_gepland = True
            asyncio.get_running_loop().call_soon(self._meld)

    def _meld(self) -> None:
        """Report the closes of one loop iteration in one message."""
        self._melding_gepland = False
        if self._te_melden and self._stuur(GESLOTEN + _TELLING.pack(self._te_melden)):
            self._te_melden = 0
        elif self._te_melden:               # channel full for a moment: try again soon
            self._melding_gepland = True
            asyncio.get_running_loop().call_later(0.01, self._meld)

    def _stuur(self, bericht: bytes) -> bool:
        try:
            self.kanaal.send(bericht)
            return True
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:                     # serve is gone; nothing to report to
            self._te_melden = 0
            return True

    async def shutdown(self, sockets=None) -> None:
        loop = asyncio.get_running_loop()
        try:
            loop.remove_reader(self.kanaal.fileno())
        except (ValueError, OSError):
            pass
        self.kanaal.setblocking(False)      # (a SIGTERM during start-up returns before startup() set it)
        while True:                         # connections handed over but not yet read: not served, closed
            try:
                _, fds, _, _ = socket.recv_fds(self.kanaal, 16, 1)
            except OSError:
                break
            if not fds:
                break
            for fd in fds:
                os.close(fd)
        await super().shutdown(sockets=sockets)
        self.kanaal.close()


class Werker(Process):
    """uvicorn's worker process (spawned, answering health checks) running an OvernemendeServer."""

    def __init__(self, config: Config, kanaal: socket.socket):
        self.kanaal = kanaal                # the worker's end; pickled into the child as an inherited descriptor
        super().__init__(config, sockets=[])

    @property
    def server(self) -> Server:
        if self._server is None:
            self._server = OvernemendeServer(self.config, self.kanaal)
        return self._server

    def target(self, sockets=None) -> None:  # pragma: no cover  (runs in the child)
        threading.Thread(target=self.always_pong, daemon=True).start()
        self.server.run()


# ----------------------------------------------------------------------------------------------------
# in serve
# ----------------------------------------------------------------------------------------------------
class _Plaats:
    """serve's view of one worker: its channel, whether it is ready, how many connections it holds."""

    def __init__(self, werker: Werker, kanaal: socket.socket):
        self.werker = werker
        self.kanaal = kanaal
        self.gereed = False
        self.open = 0
        self.laatst = 0                     # sequence number of the last connection handed to it
        self.weg = False


class Verdeler:
    """The supervisor of `klanten-api serve --workers N`: accepts, distributes, keeps N workers running."""

    def __init__(self, config: Config, luister: socket.socket):
        self.config = config
        self.luister = luister
        self.plaatsen: list[_Plaats] = []
        self.lock = threading.Lock()
        self.stoppen = threading.Event()
        self._volgnummer = 0
        self._wekker_lees, self._wekker_schrijf = socket.socketpair()
        self._nieuw: list[_Plaats] = []     # channels for the accept thread to watch

    # ---- workers
    def _start_werker(self) -> _Plaats:
        eigen, kind = kanaalpaar()
        werker = Werker(self.config, kind)
        werker.start()
        kind.close()                        # the child has its own copy now: EOF on ours means it is gone
        eigen.setblocking(False)
        plaats = _Plaats(werker, eigen)
        with self.lock:
            self._nieuw.append(plaats)
        self._wek()
        return plaats

    def _wek(self) -> None:
        try:
            self._wekker_schrijf.send(b"x")
        except OSError:
            pass

    def run(self) -> None:
        log.info("Started parent process [%d], distributing connections", os.getpid())
        signalen = {sig: signal.signal(sig, lambda *_: self.stoppen.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        self.luister.listen(self.config.backlog)
        self.luister.setblocking(False)
        werkers = [self._start_werker() for _ in range(self.config.workers)]
        aannemer = threading.Thread(target=self._accepteer, name="verdeler", daemon=True)
        aannemer.start()
        try:
            while not self.stoppen.wait(0.5):
                self._houd_in_leven(werkers)
        finally:
            self.stoppen.set()
            self._wek()
            aannemer.join(5)                # no new connections from here on
            for plaats in werkers:
                plaats.werker.terminate()   # SIGTERM: uvicorn's graceful shutdown in each worker
            for plaats in werkers:
                plaats.werker.join()
                plaats.kanaal.close()
            for sig, oud in signalen.items():
                signal.signal(sig, oud)
            log.info("Stopping parent process [%d]", os.getpid())

    def _houd_in_leven(self, werkers: list[_Plaats]) -> None:
        """As uvicorn's Multiprocess.keep_subprocess_alive: replace a worker that died or does not answer."""
        for i, plaats in enumerate(werkers):
            if self.stoppen.is_set():
                return
            if plaats.werker.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            plaats.werker.kill()
            plaats.werker.join()
            with self.lock:
                plaats.weg = True
            if plaats.werker.exitcode == STARTUP_FAILURE:
                log.error("Child process [%s] failed to start, stopping the parent process.", plaats.werker.pid)
                self.stoppen.set()
                return
            if self.stoppen.is_set():
                return
            log.info("Child process [%s] died", plaats.werker.pid)
            werkers[i] = self._start_werker()

    # ---- the accept thread
    def _accepteer(self) -> None:
        """Accept, hand over, read the workers' reports. When no worker's channel has room (a burst: a channel
        queues only a few messages), the connection waits here and no more are accepted until a channel has room:
        the rest waits in the listening socket's backlog, as it did for uvicorn's workers."""
        sel = selectors.DefaultSelector()
        sel.register(self._wekker_lees, selectors.EVENT_READ, "wekker")
        bekend: list[_Plaats] = []
        wachtend: socket.socket | None = None       # accepted, not yet handed over
        luistert = schrijfwacht = None
        try:
            while not self.stoppen.is_set():
                with self.lock:
                    nieuw, self._nieuw = self._nieuw, []
                bekend.extend(nieuw)
                for plaats in [p for p in bekend if p.weg]:
                    bekend.remove(plaats)
                    plaats.weg = True
                    if plaats.kanaal.fileno() in sel.get_map():
                        sel.unregister(plaats.kanaal)
                if wachtend is not None and self._geef(bekend, wachtend):
                    wachtend.close()
                    wachtend = None
                # listen while nothing waits; watch the channels for room while something does
                if (wachtend is None) != luistert:
                    luistert = wachtend is None
                    if luistert:
                        sel.register(self.luister, selectors.EVENT_READ, "luister")
                    else:
                        sel.unregister(self.luister)
                gebeurtenis = selectors.EVENT_READ | (selectors.EVENT_WRITE if wachtend is not None else 0)
                for plaats in bekend:
                    if plaats.kanaal.fileno() not in sel.get_map():
                        sel.register(plaats.kanaal, gebeurtenis, plaats)
                    elif schrijfwacht != (wachtend is not None):
                        sel.modify(plaats.kanaal, gebeurtenis, plaats)
                schrijfwacht = wachtend is not None
                for sleutel, soort in sel.select(1.0):
                    if sleutel.data == "luister":
                        wachtend = self._neem_aan(bekend)
                    elif sleutel.data == "wekker":
                        try:
                            self._wekker_lees.recv(4096)
                        except OSError:
                            pass
                    elif soort & selectors.EVENT_READ:
                        self._lees_kanaal(sleutel.data)
        finally:
            sel.close()
            if wachtend is not None:
                wachtend.close()
            self.luister.close()            # what still waits in the backlog is refused, as uvicorn does

    def _lees_kanaal(self, plaats: _Plaats) -> None:
        while True:
            try:
                bericht = plaats.kanaal.recv(16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                bericht = b""
            if not bericht:                 # the worker is gone (its connections went with it)
                with self.lock:
                    plaats.weg = True
                return
            if bericht == GEREED:
                plaats.gereed = True
            elif bericht[:1] == GESLOTEN and len(bericht) == 1 + _TELLING.size:
                plaats.open = max(0, plaats.open - _TELLING.unpack(bericht[1:])[0])

    def _neem_aan(self, bekend: list[_Plaats]) -> socket.socket | None:
        """Accept and hand over until the backlog is empty; a connection no channel has room for is returned."""
        while True:
            try:
                verbinding, _ = self.luister.accept()
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:          # EMFILE and the like: the connection waits in the backlog
                log.warning("accept failed", extra={"event": "accept_failed", "errno": exc.errno})
                return None
            if not self._geef(bekend, verbinding):
                return verbinding
            verbinding.close()              # the worker holds it now

    def _geef(self, bekend: list[_Plaats], verbinding: socket.socket) -> bool:
        """Hand the connection to the worker with the fewest open (on a tie: a ready one, then the one served least
        recently); False when no channel has room now. A worker still starting counts too: the connection waits in
        its channel until its start-up is complete (a second or two). Handing everything to the worker that
        happened to be ready first would pin a pool's persistent connections, opened as `serve` starts, to it."""
        levend = [p for p in bekend if not p.weg]
        for plaats in sorted(levend, key=lambda p: (p.open, not p.gereed, p.laatst)):
            try:
                socket.send_fds(plaats.kanaal, [VERBINDING], [verbinding.fileno()])
            except (BlockingIOError, InterruptedError):
                continue                    # this worker's channel is full: the next one
            except OSError:
                with self.lock:
                    plaats.weg = True
                continue
            self._volgnummer += 1
            plaats.open += 1
            plaats.laatst = self._volgnummer
            return True
        return False
