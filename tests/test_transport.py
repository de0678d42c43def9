"""The HTTP transport under attack (issue #13, items 7 and 8): header sizes, half-sent requests, dribbled
bodies and connection floods, over raw loopback sockets.

The servers run the production protocol and uvicorn options (klanten_api.transport.uvicorn_opties): the
in-process test servers of conftest.start_server with short limits, and one real `klanten-api serve` with
two workers under a low file descriptor limit, as the issue measured it (a 1024 descriptor limit, 2,600
half-sent requests: every new connection refused, health checks included).

Settings: KLANTEN_MAX_HEADER_BYTES, KLANTEN_HEADER_TIMEOUT, KLANTEN_BODY_TIMEOUT, KLANTEN_MAX_CONNECTIONS.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from conftest import Api, klant_body, token
from processen import ServeProces

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MARGE = 5.0                     # seconds on top of a timeout before the test calls it "held forever"
SNEL = 5.0                      # "answered promptly": something that takes milliseconds, with room for a busy machine


@pytest.fixture
def kort_server(server_factory):
    """A test server with short deadlines (and the default header cap)."""
    return server_factory(header_timeout=HEADER_TIMEOUT, body_timeout=BODY_TIMEOUT)


# ---------- raw sockets ----------
def verbind(url: str, timeout: float = 10.0) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def lees_tot_eof(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Everything the server sends until it closes (True), or until `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        over = deadline - time.monotonic()
        if over <= 0:
            return data, False
        sock.settimeout(over)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk


def verzoek(pad: str, *kopregels: str, host: str = "127.0.0.1") -> bytes:
    return ("\r\n".join([f"GET {pad} HTTP/1.1", f"Host: {host}", *kopregels]) + "\r\n\r\n").encode()


def status_van(antwoord: bytes) -> int | None:
    if not antwoord.startswith(b"HTTP/1.1 "):
        return None
    return int(antwoord[9:12])


def half_open(url: str, aantal: int) -> list[socket.socket]:
    """`aantal` connections that each send part of a request and then stop (half a request line, or a request
    line and part of the headers), as a slowloris client does."""
    delen = [b"GET /api/v1/kla", b"GET /_health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a",
             b"POST /api/v1/klanten HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/js"]
    socks = []
    for i in range(aantal):
        sock = verbind(url)
        sock.sendall(delen[i % len(delen)])
        socks.append(sock)
    return socks


def assert_gesloten(socks: list[socket.socket], binnen: float) -> None:
    deadline = time.monotonic() + binnen
    open_ = 0
    for sock in socks:
        _, gesloten = lees_tot_eof(sock, max(0.05, deadline - time.monotonic()))
        open_ += not gesloten
        sock.close()
    assert open_ == 0, f"{open_} of {len(socks)} half-sent requests still held after {binnen} s"


def stuur_op_achtergrond(sock: socket.socket, data: bytes) -> threading.Thread:
    def stuur():
        try:
            sock.sendall(data)
        except OSError:
            pass                        # the server closed: what matters is what it answered
    thread = threading.Thread(target=stuur, daemon=True)
    thread.start()
    return thread


def assert_dient_nog(url: str) -> None:
    """The server still answers a health check and an authenticated read, promptly."""
    begin = time.monotonic()
    live = requests.get(f"{url}/_health/live", timeout=SNEL, headers={"Connection": "close"})
    assert live.status_code == 200
    lees = Api(url).get("/klanten", headers={"Connection": "close"})
    assert lees.status_code == 200, lees.text
    assert time.monotonic() - begin < 2 * SNEL


# ---------- header size (item 7) ----------
@pytest.mark.parametrize("grootte", [100 * 1024, 50 * 1024 * 1024], ids=["100 KB", "50 MB"])
def test_a_huge_authorization_header_is_refused_at_once_with_431(kort_server, grootte):
    sock = verbind(kort_server.url)
    begin = time.monotonic()
    kop = b"GET /api/v1/klanten HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
    zender = stuur_op_achtergrond(sock, kop + b"x" * grootte + b"\r\n\r\n")
    antwoord, gesloten = lees_tot_eof(sock, SNEL)
    duur = time.monotonic() - begin
    sock.close()
    zender.join(10)
    assert status_van(antwoord) == 431, antwoord[:200]
    assert gesloten, "the connection stayed open after the 431"
    assert duur < SNEL, f"refusing the header took {duur:.1f} s"
    assert_dient_nog(kort_server.url)


def test_headers_of_a_normal_size_are_served(kort_server):
    """A real token with 12 KiB of other headers (cookies of a portal, tracing headers) stays under the cap."""
    api = Api(kort_server.url)
    r = api.get("/klanten", headers={"Cookie": "sessie=" + "c" * 8192, "X-Trace": "t" * 4096})
    assert r.status_code == 200, r.text


def test_many_headers_that_together_pass_the_cap_are_refused(kort_server):
    """The cap is on all headers together, not per header."""
    with verbind(kort_server.url) as sock:
        sock.sendall(verzoek("/api/v1/klanten", *(f"X-Veld-{i}: {'v' * 100}" for i in range(800))))
        antwoord, gesloten = lees_tot_eof(sock, SNEL)
    assert status_van(antwoord) == 431, antwoord[:200]
    assert gesloten


# ---------- half-sent requests (item 8) ----------
def test_half_sent_requests_are_closed_after_the_header_timeout(kort_server):
    socks = half_open(kort_server.url, 300)
    try:
        assert_dient_nog(kort_server.url)
        assert_gesloten(socks, HEADER_TIMEOUT + MARGE)
    finally:
        for sock in socks:
            sock.close()
    assert_dient_nog(kort_server.url)


def test_a_half_sent_request_gets_408(kort_server):
    with verbind(kort_server.url) as sock:
        sock.sendall(b"GET /_health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        antwoord, gesloten = lees_tot_eof(sock, HEADER_TIMEOUT + MARGE)
    assert gesloten
    assert status_van(antwoord) == 408, antwoord[:200]


def test_a_connection_that_sends_nothing_is_closed(kort_server):
    with verbind(kort_server.url) as sock:
        antwoord, gesloten = lees_tot_eof(sock, HEADER_TIMEOUT + MARGE)
    assert gesloten and antwoord == b""


def test_the_header_timeout_applies_to_the_next_request_on_a_kept_alive_connection(kort_server):
    with verbind(kort_server.url) as sock:
        sock.sendall(verzoek("/_health/live"))
        eerste = b""
        while b"\r\n\r\n" not in eerste or not eerste.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, "the server closed the kept-alive connection after the first answer"
            eerste += chunk
        assert status_van(eerste) == 200
        # the next request starts within the keep-alive time and then stalls in its headers
        sock.sendall(b"GET /_health/live HTTP/1.1\r\nHost: 127.0.0")
        begin = time.monotonic()
        antwoord, gesloten = lees_tot_eof(sock, HEADER_TIMEOUT + MARGE)
    assert gesloten, "a stalled second request was held"
    assert status_van(antwoord) == 408, antwoord[:200]
    assert time.monotonic() - begin < HEADER_TIMEOUT + MARGE


def test_a_slow_request_is_not_cut_off_by_the_header_timeout(kort_server, httpserver):
    """The header deadline is for headers: a request whose answer takes longer (a slow subject check) is served."""
    def traag(request):
        time.sleep(HEADER_TIMEOUT + 1)
        from werkzeug import Response
        return Response("ok", status=200)
    httpserver.expect_request("/traag").respond_with_handler(traag)
    r = Api(kort_server.url).post("/klanten", json=klant_body(subject=httpserver.url_for("/traag")))
    assert r.status_code == 201, r.text


# ---------- connections per worker ----------
def test_over_the_connection_bound_the_longest_waiting_connections_make_room(server_factory):
    """With the deadline far away, the bound alone keeps new connections served: each one over it closes the
    connection that has waited longest without a running request."""
    srv = server_factory(max_connections=20, header_timeout=60.0)
    socks = half_open(srv.url, 100)
    try:
        assert_dient_nog(srv.url)
        # the oldest 80 (and then some, for the checks' own connections) were closed at once, not after 60 s
        assert_gesloten(socks[:80], MARGE)
        open_ = sum(not lees_tot_eof(sock, 0.05)[1] for sock in socks[90:])
        assert open_ > 0, "the newest connections were closed too"
    finally:
        for sock in socks:
            sock.close()


def test_when_every_connection_runs_a_request_a_new_one_gets_503(server_factory, httpserver):
    def traag(request):
        time.sleep(2)                               # pytest-httpserver answers one at a time: 4 s for both
        from werkzeug import Response
        return Response("ok", status=200)
    httpserver.expect_request("/traag").respond_with_handler(traag)
    srv = server_factory(max_connections=2)
    resultaten = []

    def maak(nummer: str):
        resultaten.append(Api(srv.url).post("/klanten", json=klant_body(subject=httpserver.url_for("/traag"),
                                                                        klantnummer=nummer)))
    bezig = [threading.Thread(target=maak, args=(f"910{i}",)) for i in range(2)]
    for t in bezig:
        t.start()
    time.sleep(0.7)                                 # both requests wait for the subject check now
    with verbind(srv.url) as sock:
        sock.sendall(verzoek("/_health/live"))
        antwoord, gesloten = lees_tot_eof(sock, SNEL)
    for t in bezig:
        t.join(30)
    assert status_van(antwoord) == 503 and gesloten, antwoord[:200]
    assert sorted(r.status_code for r in resultaten) == [201, 201]
    assert_dient_nog(srv.url)


# ---------- request bodies ----------
def test_a_body_that_dribbles_in_is_cut_off_with_408(kort_server):
    body = json.dumps(klant_body(klantnummer="9001")).encode()
    kop = (f"POST /api/v1/klanten HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token()}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    with verbind(kort_server.url) as sock:
        sock.sendall(kop)
        begin = time.monotonic()
        antwoord = b""
        for i in range(len(body)):                  # a byte every 0.2 s: minutes for the whole body
            try:
                sock.sendall(body[i:i + 1])
            except OSError:
                break
            sock.settimeout(0.2)
            try:
                antwoord += sock.recv(65536)
            except socket.timeout:
                pass
            if antwoord or time.monotonic() - begin > BODY_TIMEOUT + MARGE:
                break
        rest, gesloten = lees_tot_eof(sock, MARGE)
    antwoord += rest
    assert status_van(antwoord) == 408, antwoord[:300]
    assert b"application/problem+json" in antwoord
    assert gesloten, "the connection stayed open after the 408"
    assert Api(kort_server.url).get("/klanten", params={"klantnummer": "9001"}).json()["count"] == 0


def test_a_body_sent_at_once_is_served(kort_server):
    r = Api(kort_server.url).post("/klanten", json=klant_body(klantnummer="9002"))
    assert r.status_code == 201, r.text


# ---------- the production server: `klanten-api serve` ----------
NOFILE = 256            # the serve process's descriptor limit (soft = hard): a worker keeps 128 for connections


def rss_kib(pid: int) -> int:
    for regel in Path(f"/proc/{pid}/status").read_text().splitlines():
        if regel.startswith("VmRSS:"):
            return int(regel.split()[1])
    return 0


@pytest.fixture
def serve(database_url, auth_config, tmp_path):
    env = {"KLANTEN_DATABASE_URL": database_url, "KLANTEN_AUTH_CONFIG": str(auth_config),
           "KLANTEN_DEVELOPMENT": "true",        # the suite's test secret (conftest); the limits are production's
           "KLANTEN_HEADER_TIMEOUT": "3"}
    srv = ServeProces(env, tmp_path / "serve.log", workers=2, nofile=NOFILE)
    try:
        yield srv.wacht_tot_klaar()
    finally:
        srv.stop()


def test_serve_holds_under_a_flood_of_half_sent_requests_and_a_50_mb_header(serve):
    """The issue's attack on the real server: more half-sent requests than a worker has descriptors, then a
    50 MB Authorization header. New connections (a health check, an authenticated read) are still served,
    the half-sent requests are closed, the huge header is refused at once and costs the workers no memory."""
    socks = half_open(serve.url, 3 * NOFILE)        # spread over 2 workers: more than each can hold open
    try:
        assert_dient_nog(serve.url)
        assert_gesloten(socks, 3 + MARGE)
    finally:
        for sock in socks:
            sock.close()
    assert_dient_nog(serve.url)

    workers = serve.worker_pids()
    voor = sum(rss_kib(pid) for pid in workers)
    for _ in range(2):                              # both workers, probably
        sock = verbind(serve.url)
        begin = time.monotonic()
        zender = stuur_op_achtergrond(
            sock, b"GET /api/v1/klanten HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + b"x" * (50 * 1024 * 1024) + b"\r\n\r\n")
        antwoord, gesloten = lees_tot_eof(sock, SNEL)
        sock.close()
        zender.join(10)
        assert status_van(antwoord) == 431 and gesloten, antwoord[:200]
        assert time.monotonic() - begin < SNEL
    na = sum(rss_kib(pid) for pid in workers)
    assert na - voor < 32 * 1024, f"the workers grew by {(na - voor) // 1024} MiB"
    assert_dient_nog(serve.url)
    assert serve.proc.poll() is None and sorted(serve.worker_pids()) == sorted(workers)
