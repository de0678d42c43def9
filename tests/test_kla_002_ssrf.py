"""kla-002 without server-side request forgery: every internal address range is refused before any
connection is made (also for names that resolve to one), unless the host is explicitly allowed."""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace

import pytest

from conftest import Api, klant_body, start_server
from ruwe_servers import RuweServer, antwoord_200, doorsturen, lees_kop
from test_kla_002 import Klanten

REFUSED = [
    "127.0.0.1", "127.8.9.10",                    # loopback
    "10.0.0.1", "172.16.5.4", "192.168.1.1",       # private (RFC 1918)
    "169.254.169.254",                             # link-local: cloud metadata services
    "100.64.0.1",                                  # carrier-grade NAT (shared address space)
    "0.0.0.0", "224.0.0.1", "240.0.0.1",           # unspecified, multicast, reserved
    "[::1]", "[fd00::1]", "[fe80::1]", "[::ffff:127.0.0.1]", "[::ffff:169.254.169.254]",
    "[64:ff9b::7f00:1]", "[2002:7f00:1::1]", "[2002:a9fe:a9fe::1]",   # IPv4 inside NAT64 and 6to4 addresses
]


@pytest.fixture
def strict_server(server_factory):
    """No allowed hosts: the production default."""
    return server_factory(subject_allowed_hosts=())


@pytest.mark.parametrize("host", REFUSED)
def test_internal_addresses_are_refused_without_connecting(strict_server, host):
    api = Api(strict_server.url)
    url = f"http://{host}:9/klant/123"
    started = time.perf_counter()
    response = api.post("/klanten", klant_body(url))
    assert time.perf_counter() - started < 2.0      # refused up front, no connection attempt timing out
    assert response.status_code == 400, response.text
    assert response.json()["invalidParams"] == [{
        "name": "subject", "code": "bad-url",
        "reason": f"De URL {url} kon niet opgehaald worden. Foutmelding: het adres is niet toegestaan"}]


def test_a_name_that_resolves_to_loopback_is_refused(strict_server, httpserver):
    httpserver.expect_request("/subject").respond_with_data("ok")
    url = httpserver.url_for("/subject")
    assert "//localhost:" in url
    response = Api(strict_server.url).post("/klanten", klant_body(url))
    assert response.status_code == 400
    assert response.json()["invalidParams"][0]["reason"].endswith("het adres is niet toegestaan")
    assert len(httpserver.log) == 0


def test_an_allowed_host_may_be_internal(server_factory, httpserver):
    httpserver.expect_request("/subject").respond_with_data("ok")
    srv = server_factory(subject_allowed_hosts=("localhost",))   # the httpserver URL names localhost
    assert Api(srv.url).post("/klanten", klant_body(httpserver.url_for("/subject"))).status_code == 201
    assert len(httpserver.log) == 1


def test_only_http_and_https_are_fetched(strict_server):
    for url in ("ftp://ftp.example.com/klant", "file:///etc/passwd", "gopher://example.com/x"):
        response = Api(strict_server.url).post("/klanten", klant_body(url))
        assert response.status_code == 400
        codes = {p["code"] for p in response.json()["invalidParams"]}
        assert codes & {"bad-url", "invalid"}, response.text


# ---------- one parser: the host that is checked is the host that is connected to ----------
# `{p}` is the port of an "internal" service on 127.0.0.2. Each form is read by one URL parser or another as
# a URL of example.org (or another harmless host) while an HTTP client may connect to 127.0.0.2 (issue #13:
# urlsplit and urllib3 disagree on `\`). Expected: (code, reason key); every form is refused before any
# connection. "invalid" forms are already refused by the URL format of the field.
ONEENDUIDIG = "de URL is ongeldig of niet eenduidig"
NIET_TOEGESTAAN = "het adres is niet toegestaan"
VORMEN = [
    (r"http://127.0.0.2:{p}\@example.org/../path", "bad-url", ONEENDUIDIG),     # the form of the issue
    (r"http://127.0.0.2:{p}\@example.org", "bad-url", ONEENDUIDIG),
    (r"http://127.0.0.2:{p}\\@example.org/", "bad-url", ONEENDUIDIG),
    (r"http://127.0.0.2:{p}\@example.org:80/path", "bad-url", ONEENDUIDIG),
    (r"https://127.0.0.2:{p}\@example.org/path", "bad-url", ONEENDUIDIG),
    (r"HTTP://127.0.0.2:{p}\@EXAMPLE.ORG/path", "bad-url", ONEENDUIDIG),
    (r"http://example.org\@127.0.0.2:{p}/", "bad-url", ONEENDUIDIG),
    ("http://127.0.0.2:{p}%5C@example.org/", "bad-url", ONEENDUIDIG),
    ("http://127.0.0.2:{p}#@example.org/", "bad-url", ONEENDUIDIG),
    ("http://127.0.0.2:{p}?@example.org/", "bad-url", ONEENDUIDIG),
    ("http://example.org@127.0.0.2:{p}/", "bad-url", ONEENDUIDIG),
    ("http://example.org:80@127.0.0.2:{p}/", "bad-url", ONEENDUIDIG),
    ("http://127.0.0.2:{p}\uff3c@example.org/", "bad-url", ONEENDUIDIG),          # fullwidth backslash (NFKC)
    ("http://[::ffff:127.0.0.2]:{p}/", "bad-url", NIET_TOEGESTAAN),
    ("http://[::ffff:7f00:2]:{p}/", "bad-url", NIET_TOEGESTAAN),
    ("http://127.0.0.2:{p}\t@example.org/", "invalid", None),
    ("http://127.0.0.2:{p} @example.org/", "invalid", None),
    ("http://127.2:{p}/", "invalid", None),
    ("http://2130706434:{p}/", "invalid", None),
    ("http://0x7f000002:{p}/", "invalid", None),
]
# what the redirecting subject server may answer as Location
LOCATIES = [r"http://127.0.0.2:{p}\@example.org/../path", r"//127.0.0.2:{p}\@example.org/", r"\\127.0.0.2:{p}/",
            "http://example.org@127.0.0.2:{p}/", "http://127.0.0.2:{p}#@example.org/"]
SLECHT_PORT = "1"                      # where a form is refused by the field's format, the URL port is irrelevant


class Dns:
    """Stands in for DNS (socket.getaddrinfo's signature): the names in `namen` answer the listed addresses in
    turn (the last one from then on); other names are asked of the real resolver. Records every question."""

    def __init__(self, namen: dict[str, list[str]]):
        self.namen = namen
        self.vragen: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        with self._lock:
            self.vragen.append(host)
            if host not in self.namen:
                return socket.getaddrinfo(host, port, family, type, proto, flags)
            eerder = self.vragen.count(host) - 1
            adres = self.namen[host][min(eerder, len(self.namen[host]) - 1)]
        family = socket.AF_INET6 if ":" in adres else socket.AF_INET
        sockaddr = (adres, port, 0, 0) if family == socket.AF_INET6 else (adres, port)
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)]


@pytest.fixture(scope="module")
def intern():
    """The internal service that must never be reached: a raw server on 127.0.0.2 that counts connections."""
    srv = RuweServer(antwoord_200, host="127.0.0.2")
    yield srv
    srv.stop()


@pytest.fixture(scope="module", params=["example.org toegestaan", "example.org publiek"])
def ruime_server(request, base_settings, engine):
    """Two ways example.org passes the address check: the operator allows it, or it resolves to a public
    address (a stand-in for DNS). Loopback 127.0.0.1 is allowed too (the redirecting subject server)."""
    if request.param == "example.org toegestaan":
        srv = start_server(replace(base_settings, subject_allowed_hosts=("127.0.0.1", "example.org")), engine)
    else:
        srv = start_server(replace(base_settings, subject_allowed_hosts=("127.0.0.1",)), engine,
                           resolver=Dns({"example.org": ["93.184.215.14"]}))
    yield srv
    srv.stop()


def assert_subject_geweigerd(resp, code: str, reden: str | None, url: str) -> None:
    assert resp.status_code == 400, (resp.status_code, resp.text)
    [param] = resp.json()["invalidParams"]
    assert (param["name"], param["code"]) == ("subject", code), param
    if reden is not None:
        assert param["reason"] == f"De URL {url} kon niet opgehaald worden. Foutmelding: {reden}"


@pytest.mark.parametrize("operatie", ["create", "PUT", "PATCH"])
@pytest.mark.parametrize("vorm, code, reden", VORMEN)
def test_urls_die_parsers_verschillend_lezen_worden_geweigerd(ruime_server, engine, intern, operatie, vorm, code,
                                                              reden):
    klanten = Klanten(Api(ruime_server.url), engine)
    klanten.voorbereiden(operatie)
    url = vorm.replace("{p}", str(intern.port) if code == "bad-url" else SLECHT_PORT)
    voor = intern.aantal
    assert_subject_geweigerd(klanten.stuur(operatie, url), code, reden, url)
    assert intern.aantal == voor, "the internal service was connected to"
    klanten.niets_veranderd()


@pytest.mark.parametrize("operatie", ["create", "PATCH"])
@pytest.mark.parametrize("locatie", LOCATIES)
def test_een_redirect_van_die_vorm_wordt_geweigerd(ruime_server, engine, intern, operatie, locatie):
    klanten = Klanten(Api(ruime_server.url), engine)
    klanten.voorbereiden(operatie)
    subject = RuweServer(doorsturen(locatie.replace("{p}", str(intern.port))))
    try:
        url = subject.url("/doorsturen")
        voor = intern.aantal
        resp = klanten.stuur(operatie, url)
        assert_subject_geweigerd(resp, "bad-url", None, url)
        assert resp.json()["invalidParams"][0]["reason"].endswith((ONEENDUIDIG, NIET_TOEGESTAAN)), resp.text
        assert intern.aantal == voor, "the internal service was connected to"
        assert subject.aantal == 1
    finally:
        subject.stop()
    klanten.niets_veranderd()


# ---------- DNS rebinding: the address that was checked is the address that is connected to ----------
@pytest.fixture
def server_met_dns(base_settings, engine):
    gestart = []

    def maak(dns: Dns, **overrides):
        srv = start_server(replace(base_settings, **overrides), engine, resolver=dns)
        gestart.append(srv)
        return srv

    yield maak
    for srv in gestart:
        srv.stop()


def test_dns_rebinding_publiek_dan_loopback(server_met_dns, engine):
    """The name answers a public address when checked and loopback afterwards: the check asks once and
    connects to the public address it checked; the loopback service hears nothing."""
    loopback = RuweServer(antwoord_200, host="127.0.0.1")
    dns = Dns({"rebind.test": ["8.8.8.8", "127.0.0.1"]})
    srv = server_met_dns(dns, subject_allowed_hosts=(), subject_timeout=1.5)
    try:
        url = f"http://rebind.test:{loopback.port}/subject"
        resp = Api(srv.url).post("/klanten", klant_body(url))
        # whatever the public address answers (nothing, most likely): not the loopback service's 200
        assert_subject_geweigerd(resp, "bad-url", None, url)
        assert dns.vragen == ["rebind.test"]
        assert loopback.aantal == 0
    finally:
        loopback.stop()


def test_een_toegestane_host_wordt_verbonden_met_het_opgezochte_adres(server_met_dns, engine, intern):
    """An allowed host skips the address check but is still resolved once and connected to by that address:
    a second answer (127.0.0.2) is never used; the request carries the URL's host name."""
    loopback = RuweServer(antwoord_200, host="127.0.0.1")
    dns = Dns({"rebind.test": ["127.0.0.1", "127.0.0.2"]})
    srv = server_met_dns(dns, subject_allowed_hosts=("rebind.test",))
    try:
        url = f"http://rebind.test:{loopback.port}/subject"
        voor = intern.aantal
        resp = Api(srv.url).post("/klanten", klant_body(url))
        assert resp.status_code == 201, resp.text
        assert dns.vragen == ["rebind.test"]
        assert intern.aantal == voor
        [kop] = loopback.koppen
        assert kop.startswith(b"GET /subject HTTP/1.1\r\n")
        assert f"\r\nHost: rebind.test:{loopback.port}\r\n".encode() in kop
    finally:
        loopback.stop()


def test_een_redirect_naar_dezelfde_host_vraagt_de_dns_niet_opnieuw(server_met_dns, engine, intern):
    """Within one check a host is resolved once: a redirect back to it cannot be rebound to 127.0.0.2."""
    dns = Dns({"rebind.test": ["127.0.0.1", "127.0.0.2"]})
    srv = server_met_dns(dns, subject_allowed_hosts=("rebind.test",))

    def eerst_doorsturen(conn, server):
        kop = lees_kop(conn)
        server.koppen.append(kop)
        if kop.startswith(b"GET /eerst "):
            conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /daarna\r\nContent-Length: 0\r\n\r\n")
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    loopback = RuweServer(eerst_doorsturen, host="127.0.0.1")
    try:
        voor = intern.aantal
        resp = Api(srv.url).post("/klanten", klant_body(f"http://rebind.test:{loopback.port}/eerst"))
        assert resp.status_code == 201, resp.text
        assert dns.vragen == ["rebind.test"]
        assert [k.split(b" ")[1] for k in loopback.koppen] == [b"/eerst", b"/daarna"]
        assert intern.aantal == voor
    finally:
        loopback.stop()
