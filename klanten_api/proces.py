"""A worker of `klanten-api serve --workers N` ends when its `serve` is gone.

uvicorn's supervisor (`serve`) stops its workers when it is stopped; killed with SIGKILL (or by the OOM killer)
it cannot, and its workers would go on serving from the inherited listening socket: writes without the relay
that `serve` ran, and a restarted `serve` that cannot bind the port they hold. So each worker watches its
parent: on Linux the kernel sends it SIGTERM when the parent dies (PR_SET_PDEATHSIG), and a thread that
compares the parent's pid with the one at start does the same elsewhere (and covers a parent that died before
the signal was asked for). SIGTERM is uvicorn's own graceful shutdown: requests in flight are finished.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger("klanten_api.proces")
PR_SET_PDEATHSIG = 1
KIJK_ELKE = 1.0          # seconds between two looks of the parent watch


def _doodsignaal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            log.warning("parent-death signal not available", extra={"event": "pdeathsig_unavailable",
                                                                    "errno": ctypes.get_errno()})
    except (OSError, AttributeError):
        pass          # no libc prctl: the watch thread below is enough


def eindig_met_ouder(ouder_pid: int) -> None:
    """End this process (SIGTERM to itself) once `ouder_pid` is no longer its parent."""
    _doodsignaal()

    def bewaak() -> None:
        while os.getppid() == ouder_pid:
            time.sleep(KIJK_ELKE)
        log.warning("serve is gone: this worker stops", extra={"event": "serve_gone", "serve_pid": ouder_pid})
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=bewaak, name="serve-bewaker", daemon=True).start()
