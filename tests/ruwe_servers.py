"""Raw TCP servers on loopback for the kla-002 tests: they count every connection (not only complete
HTTP requests), and can answer as slowly as an attacker would."""
from __future__ import annotations

import socket
import threading
import time


def lees_kop(conn: socket.socket, limiet: float = 5.0) -> bytes:
    """Read a request head (up to the blank line), or whatever arrives within `limiet` seconds."""
    conn.settimeout(limiet)
    data = b""
    try:
        while b"\r\n\r\n" not in data and len(data) < 65536:
            stuk = conn.recv(4096)
            if not stuk:
                break
            data += stuk
    except OSError:
        pass
    return data


def antwoord_200(conn: socket.socket, server: "RuweServer") -> None:
    server.koppen.append(lees_kop(conn))
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


def druppel(interval: float, duur: float = 60.0):
    """A handler that answers one byte every `interval` seconds for at most `duur` seconds: a valid status line,
    then headers without end (each byte arrives well within any per-read timeout)."""
    def handler(conn: socket.socket, server: "RuweServer") -> None:
        stop = server.gestopt
        server.koppen.append(lees_kop(conn))
        tekst = b"HTTP/1.1 200 OK\r\n" + b"X-Druppel: d\r\n" * 100_000
        einde = time.monotonic() + duur
        for i in range(len(tekst)):
            if stop.is_set() or time.monotonic() > einde:
                return
            conn.sendall(tekst[i:i + 1])
            if stop.wait(interval):
                return
    return handler


def doorsturen(locatie: str, wacht: float = 0.0):
    """A handler that answers 302 with exactly this `Location` (no library tidies it), after `wacht` seconds."""
    def handler(conn: socket.socket, server: "RuweServer") -> None:
        server.koppen.append(lees_kop(conn))
        if server.gestopt.wait(wacht):
            return
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + locatie.encode("latin-1")
                     + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    return handler


class RuweServer:
    """Listens on `host` (any 127.x.y.z address works on Linux), one thread per connection."""

    def __init__(self, handler, host: str = "127.0.0.1"):
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(128)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.koppen: list[bytes] = []    # request heads as received
        self.aantal = 0                  # connections accepted
        self.open = 0                    # connections still being answered
        self.max_open = 0                # the most connections answered at once
        self.gestopt = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accepteer, daemon=True).start()

    def _accepteer(self) -> None:
        while not self.gestopt.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.aantal += 1
                self.open += 1
                self.max_open = max(self.max_open, self.open)
                self._conns.append(conn)
            threading.Thread(target=self._bedien, args=(conn,), daemon=True).start()

    def _bedien(self, conn: socket.socket) -> None:
        try:
            self.handler(conn, self)
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                self.open -= 1

    def url(self, pad: str = "/") -> str:
        return f"http://{self.host}:{self.port}{pad}"

    def stop(self) -> None:
        self.gestopt.set()
        self.sock.close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
