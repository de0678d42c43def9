"""A TCP path to PostgreSQL that tests can cut: a forwarder, optionally behind a veth link into a network
namespace of the test's own.

Why a namespace: a forwarder on loopback acknowledges every byte the server sends, so the server's kernel never
sees a dead peer; cutting the forwarder's sockets is a closed connection, not a partition. Here the server
connects to an address inside a namespace made for the test (10.231.x.2, over a veth pair); the forwarder's
listening socket lives in that namespace, its upstream socket on this host's loopback to PostgreSQL. Setting
the namespace's end of the veth down is a real partition for the server: its packets are dropped, nothing is
acknowledged, nothing is refused; setting it up again heals it. Needs root and `ip` (iproute2).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import socket
import subprocess
import threading

import pytest

CLONE_NEWNET = 0x40000000


class Doorsturer:
    """Forwards every connection accepted on `luister` to (host, port)."""

    def __init__(self, luister: socket.socket, doel: tuple[str, int]):
        self.luister, self.doel = luister, doel
        self.luister.listen(64)
        self.adres = self.luister.getsockname()[:2]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._gestopt = False
        threading.Thread(target=self._accepteer, name="doorsturer", daemon=True).start()

    @classmethod
    def op_loopback(cls, doel: tuple[str, int], poort: int = 0) -> "Doorsturer":
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", poort))
        return cls(sock, doel)

    def _accepteer(self) -> None:
        while True:
            try:
                binnen, _ = self.luister.accept()
            except OSError:
                return                                    # closed: stopped
            try:
                buiten = socket.create_connection(self.doel, timeout=5)
                buiten.settimeout(None)
            except OSError:
                binnen.close()
                continue
            with self._lock:
                if self._gestopt:
                    binnen.close()
                    buiten.close()
                    return
                self._open += [binnen, buiten]
            for a, b in ((binnen, buiten), (buiten, binnen)):
                threading.Thread(target=self._pomp, args=(a, b), daemon=True).start()

    @staticmethod
    def _pomp(van: socket.socket, naar: socket.socket) -> None:
        try:
            while data := van.recv(65536):
                naar.sendall(data)
        except OSError:
            pass
        for sock in (van, naar):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        with self._lock:
            self._gestopt = True
            socks, self._open = self._open, []
        self.luister.close()
        for sock in socks:
            sock.close()


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *(["netns", "exec", ns, "ip"] if ns else []), *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=20)


class Partitie:
    """A network namespace with a forwarder to `doel` at `self.adres`, and a link that can be cut."""

    def __init__(self, doel: tuple[str, int]):
        if os.geteuid() != 0 or shutil.which("ip") is None or not os.path.exists("/proc/thread-self/ns/net"):
            pytest.skip("a network partition needs root, iproute2 (`ip`) and Linux network namespaces")
        n = os.getpid() % 100_000
        self.ns, self.host_kant, self.ns_kant = f"klpart{n}", f"klph{n}", f"klpn{n}"
        net = 100 + os.getpid() % 150
        self.host_ip, self.ns_ip = f"10.231.{net}.1", f"10.231.{net}.2"
        self.doorsturer: Doorsturer | None = None
        try:
            _ip("netns", "add", self.ns)
            _ip("link", "add", self.host_kant, "type", "veth", "peer", "name", self.ns_kant)
            _ip("link", "set", self.ns_kant, "netns", self.ns)
            _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_kant)
            _ip("link", "set", self.host_kant, "up")
            _ip("addr", "add", f"{self.ns_ip}/30", "dev", self.ns_kant, ns=self.ns)
            _ip("link", "set", self.ns_kant, "up", ns=self.ns)
            self.doorsturer = Doorsturer(self._socket_in_namespace(), doel)
        except (subprocess.SubprocessError, OSError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            self.opruimen()
            pytest.skip(f"no network namespace with a veth link here: {exc} {detail.decode(errors='replace')}")
        self.adres = self.doorsturer.adres

    def _socket_in_namespace(self) -> socket.socket:
        """A listening socket bound inside the namespace: made by a short-lived thread that enters it (setns
        changes the calling thread only), so the test process itself stays where it is."""
        uitkomst: dict = {}

        def maak():
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/var/run/netns/{self.ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    uitkomst["fout"] = OSError(ctypes.get_errno(), "setns")
                    return
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.ns_ip, 0))
                uitkomst["sock"] = sock
            except OSError as exc:
                uitkomst["fout"] = exc
            finally:
                os.close(fd)

        t = threading.Thread(target=maak)
        t.start()
        t.join()
        if "fout" in uitkomst:
            raise uitkomst["fout"]
        return uitkomst["sock"]

    def knip(self) -> None:
        """Partition: the namespace's end of the link goes down; the server's packets are silently dropped."""
        _ip("link", "set", self.ns_kant, "down", ns=self.ns)

    def herstel(self) -> None:
        _ip("link", "set", self.ns_kant, "up", ns=self.ns)

    def opruimen(self) -> None:
        if self.doorsturer is not None:
            self.doorsturer.stop()
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=20)
        subprocess.run(["ip", "link", "del", self.host_kant], capture_output=True, timeout=20)
