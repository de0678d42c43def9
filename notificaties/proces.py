"""The relay as one process of its own beside the workers of `klanten-api serve`.

Why a process: a relay thread in every worker spends that worker's interpreter (GIL) time on claiming,
posting and marking, time the worker's requests then wait for; two relays also claim in smaller batches,
and every claim and mark is a commit. One relay process delivers everything, with the same at-least-once and
in-order-per-klant guarantees as any relay. It is woken by a datagram on a loopback UDP socket that `serve`
binds and hands over (the workers send one after each commit that queued a message). A PostgreSQL NOTIFY
from the outbox was tried first and measured: NOTIFY takes a database-wide lock from pre-commit to the end of
the commit, so every write waited for the others' WAL flushes (0.26 backends waiting on it at 230 creates/s).

`serve` starts it before the workers and stops it after them. The supervisor restarts a relay that exits
(with a growing pause, at most MAX_PAUZE seconds, so a relay that cannot start does not spin); the relay
runs in a session of its own, so a terminal's Ctrl+C reaches `serve` only, which stops it in order; and it
watches its parent, so it ends by itself when `serve` is killed without a chance to stop it.
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time

log = logging.getLogger("klanten_api.notificaties")
MAX_PAUZE = 30.0
STABIEL_NA = 60.0          # a relay that ran this long before exiting is restarted after the shortest pause
STOP_TIMEOUT = 15.0


class RelayProces:
    def __init__(self):
        # the wake-up socket lives as long as `serve`: a restarted relay inherits it with what was sent meanwhile
        self.wekker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.wekker.bind(("127.0.0.1", 0))
        self.proc: subprocess.Popen | None = None
        self._stoppen = threading.Event()
        self._lock = threading.Lock()
        self._bewaker: threading.Thread | None = None

    def _start_proces(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "klanten_api.cli", "relay", "--ouder", str(os.getpid()),
             "--wekker-fd", str(self.wekker.fileno())],
            stdin=subprocess.DEVNULL, start_new_session=True, pass_fds=(self.wekker.fileno(),))
        log.info("relay process started", extra={"event": "relay_process_started", "pid": self.proc.pid})

    @property
    def wekker_adres(self) -> str:
        host, poort = self.wekker.getsockname()
        return f"{host}:{poort}"

    def start(self) -> "RelayProces":
        with self._lock:
            self._start_proces()
        self._bewaker = threading.Thread(target=self._bewaak, name="relay-bewaker", daemon=True)
        self._bewaker.start()
        return self

    def _bewaak(self) -> None:
        pauze = 1.0
        while True:
            proc, gestart = self.proc, time.monotonic()
            code = proc.wait()
            if self._stoppen.is_set():
                return
            log.error("relay process exited", extra={"event": "relay_process_exited", "exit_code": code})
            pauze = 1.0 if time.monotonic() - gestart >= STABIEL_NA else pauze
            if self._stoppen.wait(pauze):
                return
            pauze = min(MAX_PAUZE, pauze * 2)
            with self._lock:
                if self._stoppen.is_set():
                    return
                self._start_proces()

    def stop(self) -> None:
        """Ask the relay to finish (SIGTERM: it ends after the delivery in hand), kill it if it does not."""
        with self._lock:
            self._stoppen.set()
            proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
