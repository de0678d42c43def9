"""Real `klanten-api serve` processes for tests: start one, find its workers and its relay in /proc, stop it."""
from __future__ import annotations

import functools
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 30.0          # seconds until GET /api/v1/schema/openapi.yaml must answer
# the command line of this checkout's own code (PYTHONPATH, proces_env), whichever checkout the venv was made in
KLANTEN_API = [sys.executable, "-m", "klanten_api.cli"]


def proces_env(env: dict) -> dict:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), **env}


def vrije_poort() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kinderen(pid: int) -> dict[int, str]:
    """pid -> command line of the direct children of `pid` (from /proc)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue                   # the process went away while we looked
    return out


def socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets process `pid` holds (from /proc; empty when it is gone)."""
    uit = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return uit
    for fd in fds:
        try:
            doel = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if doel.startswith("socket:["):
            uit.add(doel[8:-1])
    return uit


def tcp_verbindingen(lezingen: int = 3):
    """The machine's TCP sockets as (local port, remote port, established, inode), from /proc/net/tcp{,6}.

    The kernel hands those tables out in pieces while they change (after many tests thousands of sockets sit in
    TIME_WAIT and expire all the time), and a socket can fall between two pieces: one read of a busy machine can
    miss a connection that is there. Each table is read `lezingen` times and the union given (a socket counts as
    established when one read saw it so)."""
    gezien: dict[tuple[int, int, str], bool] = {}
    for _ in range(lezingen):
        for tabel in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                regels = Path(tabel).read_text().splitlines()[1:]
            except OSError:
                continue
            for regel in regels:
                velden = regel.split()
                sleutel = (int(velden[1].rsplit(":", 1)[1], 16), int(velden[2].rsplit(":", 1)[1], 16), velden[9])
                gezien[sleutel] = gezien.get(sleutel, False) or velden[3] == "01"
    for (lokaal, ver, inode), gevestigd in gezien.items():
        yield lokaal, ver, gevestigd, inode


def levend(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def doden(pids) -> None:
    for pid in pids:
        if levend(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class ServeProces:
    """`klanten-api serve --workers N` as a subprocess, its output in a file."""

    def __init__(self, env: dict, log: Path, *, workers: int = 2, poort: int | None = None,
                 nofile: int | None = None):
        """nofile: the process's RLIMIT_NOFILE (soft and hard), e.g. to show what happens at the limit."""
        self.poort = poort or vrije_poort()
        self.url = f"http://127.0.0.1:{self.poort}"
        self.root = f"{self.url}/api/v1"
        self.log = log
        self.aantal_workers = workers
        self.gezien: set[int] = set()          # every child ever seen: killed at the end if still alive
        with log.open("wb") as uitvoer:
            self.proc = subprocess.Popen(
                [*KLANTEN_API, "serve", "--host", "127.0.0.1", "--port", str(self.poort), "--workers", str(workers)],
                cwd=ROOT, env=proces_env(env),
                stdin=subprocess.DEVNULL, stdout=uitvoer, stderr=subprocess.STDOUT,
                preexec_fn=None if nofile is None else functools.partial(
                    resource.setrlimit, resource.RLIMIT_NOFILE, (nofile, nofile)))

    def log_tekst(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def kinderen(self) -> dict[int, str]:
        k = kinderen(self.proc.pid)
        self.gezien.update(k)
        return k

    def worker_pids(self) -> list[int]:
        return [pid for pid, cmd in self.kinderen().items()
                if "spawn_main" in cmd and "resource_tracker" not in cmd]

    def relay_pids(self) -> list[int]:
        return [pid for pid, cmd in self.kinderen().items() if " relay " in f"{cmd} "]

    def wacht_tot_klaar(self) -> "ServeProces":
        deadline = time.monotonic() + START_TIMEOUT
        sessie = requests.Session()
        sessie.trust_env = False
        try:
            while True:
                assert self.proc.poll() is None, f"server exited with {self.proc.returncode}:\n{self.log_tekst()}"
                try:
                    if sessie.get(f"{self.root}/schema/openapi.yaml", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, f"server did not answer in {START_TIMEOUT} s:\n{self.log_tekst()}"
                time.sleep(0.1)
        finally:
            sessie.close()
        while len(self.worker_pids()) < self.aantal_workers and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(self.worker_pids()) == self.aantal_workers, (self.kinderen(), self.log_tekst())
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        doden(self.gezien)               # only processes this server started, by their id
