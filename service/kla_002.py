"""kla-002: a non-blank `subject` must answer HTTP 200 to a GET.

The server fetches a URL the client chose, so the fetch is fenced in:

- One strict parser decides everything. A URL that URL parsers may read differently (a backslash, an `@`,
  percent-encoding in the host, whitespace or control characters, non-ASCII, numeric host forms such as
  `127.1`, an empty port) is refused, not interpreted: the host that is checked must be the host that is
  connected to, and no library gets to parse the URL a second time.
- The host is resolved once; every address is checked (no loopback, private, link-local or otherwise
  internal targets unless the host is explicitly allowed) and the connection goes to exactly such a checked
  address (DNS rebinding cannot swap it). TLS is verified against the URL's host name (certifi CA bundle).
- Every redirect `Location` goes through the same parser and the same check.
- One deadline for the whole check (DNS, connect, every read, every redirect): a server that drips bytes
  cannot extend it. At most `max_bytes` of an answer is read.
- Capacity: only a few checks run at once per process, and one client gets only a share of them; a write
  that finds no free place is answered at once (503 or 429), so slow subject servers never take the
  threads that reads and other writes need.

Reasons never echo internal details (addresses, exception texts); nothing here logs a URL.
"""
from __future__ import annotations

import http.client
import io
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import certifi

from klanten_api import metrics, tracing
from klanten_api.errors import ApiProblem, InvalidParam

log = logging.getLogger("klanten_api.kla_002")
MAX_REDIRECTS = 5
REDIRECT_STATUSSEN = (301, 302, 303, 307, 308)
USER_AGENT = "klanten-api (kla-002 subject check)"
KOP_RUIMTE = 65536          # bytes read for the status line and headers on top of max_bytes
RETRY_AFTER = 1             # seconds: a place frees up as soon as any running check ends

REDENEN = {
    "ongeldig": "de URL is ongeldig of niet eenduidig",
    "scheme": "alleen http en https zijn toegestaan",
    "internal": "het adres is niet toegestaan",
    "dns": "de host is onbekend",
    "redirects": "te veel doorverwijzingen",
    "time-out": "time-out",
    "verbinding": "verbinding mislukt",
}
# the result a failed check counts as (klanten_subject_checks_total)
_RESULTAAT = {"ongeldig": "refused", "scheme": "refused", "internal": "refused", "dns": "unreachable",
              "redirects": "unreachable", "time-out": "timeout", "verbinding": "unreachable"}

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
# WHATWG reads a host whose last label looks like a number as an IPv4 address (127.1, 0x7f.1, 2130706433)
_NUMERIEK_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)\Z")
_POORT = re.compile(r"[0-9]{1,5}\Z")


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _geweigerd(ip: ipaddress._BaseAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address and reach it through a translator or tunnel
        ingebed = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if any(ip in net for net in _NAT64):
            ingebed.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        elif any(v4 is not None and _geweigerd(v4) for v4 in ingebed):
            return True
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


class OnbereikbaarAdres(Exception):
    """The target may not be fetched; the message is a key of REDENEN."""


# ---------------------------------------------------------------------------------------------------------
# the one parser
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Adres:
    """A subject URL as the check reads it: this is what is resolved, checked and connected to."""
    url: str                 # the URL without fragment: the base for a relative redirect
    scheme: str              # "http" or "https"
    host: str                # lower case; an IPv6 literal without brackets
    port: int
    doel: str                # the request target: path (dot segments removed) and query
    ip: ipaddress._BaseAddress | None     # the host when it is an address literal

    @property
    def standaardpoort(self) -> int:
        return 443 if self.scheme == "https" else 80


def ontleed(url: str) -> Adres:
    """Parse `url` strictly; raises OnbereikbaarAdres("ongeldig" | "scheme") for anything ambiguous."""
    if not isinstance(url, str) or not url or any(not ("!" <= c <= "~") for c in url):
        raise OnbereikbaarAdres("ongeldig")        # whitespace, control characters, non-ASCII
    if "\\" in url or "@" in url:
        # `\` is a `/` to WHATWG parsers and not to RFC 3986 ones; `@` makes what precedes it userinfo for
        # some parsers and not for others (http://a#@b, http://a\@b): neither is needed in a subject URL
        raise OnbereikbaarAdres("ongeldig")
    m = _SCHEME.match(url)
    if not m:
        raise OnbereikbaarAdres("ongeldig")
    scheme = m.group(1).lower()
    if scheme not in ("http", "https"):
        raise OnbereikbaarAdres("scheme")
    rest = url[m.end():]
    if not rest.startswith("//"):
        raise OnbereikbaarAdres("ongeldig")
    rest = rest[2:].split("#", 1)[0]               # the fragment is never sent
    einde = min([i for i in (rest.find("/"), rest.find("?")) if i >= 0], default=len(rest))
    authority, staart = rest[:einde], rest[einde:]
    if "%" in authority or not authority:
        raise OnbereikbaarAdres("ongeldig")
    host, poort_tekst, ip = _host_en_poort(authority)
    if poort_tekst is None:
        port = 443 if scheme == "https" else 80
    elif _POORT.match(poort_tekst) and 1 <= int(poort_tekst) <= 65535:
        port = int(poort_tekst)
    else:
        raise OnbereikbaarAdres("ongeldig")
    pad, vraag, query = staart.partition("?")
    doel = _zonder_puntsegmenten(pad or "/") + vraag + query
    # belt and braces: the standard library's reading must agree with ours
    try:
        delen = urlsplit(url)
        eens = (delen.scheme.lower() == scheme and delen.hostname == host
                and delen.port == (None if poort_tekst is None else port))
    except ValueError:
        eens = False
    if not eens:
        raise OnbereikbaarAdres("ongeldig")
    return Adres(f"{scheme}://{rest}", scheme, host, port, doel, ip)


def _host_en_poort(authority: str) -> tuple[str, str | None, ipaddress._BaseAddress | None]:
    if authority.startswith("["):
        sluit = authority.find("]")
        if sluit < 0:
            raise OnbereikbaarAdres("ongeldig")
        literal, na = authority[1:sluit].lower(), authority[sluit + 1:]
        try:
            ip = ipaddress.IPv6Address(literal)
        except ValueError:
            raise OnbereikbaarAdres("ongeldig") from None
        if na and not na.startswith(":"):
            raise OnbereikbaarAdres("ongeldig")
        return literal, (na[1:] if na else None), ip
    host, dubbelepunt, poort = authority.partition(":")
    host = host.lower()
    labels = host.split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise OnbereikbaarAdres("ongeldig")        # empty labels (a trailing dot too), `_`, other characters
    ip = None
    if _NUMERIEK_LABEL.match(labels[-1]):
        try:
            ip = ipaddress.IPv4Address(host)       # only the four plain decimal parts, without leading zeros
        except ValueError:
            raise OnbereikbaarAdres("ongeldig") from None
    return host, (poort if dubbelepunt else None), ip


def _zonder_puntsegmenten(pad: str) -> str:
    """RFC 3986 §5.2.4 for an absolute path: `.` and `..` segments removed (what the server is asked for)."""
    delen = pad.split("/")[1:]
    uit: list[str] = []
    for deel in delen:
        if deel == "..":
            if uit:
                uit.pop()
        elif deel != ".":
            uit.append(deel)
    if delen and delen[-1] in (".", ".."):
        uit.append("")
    return "/" + "/".join(uit)


# ---------------------------------------------------------------------------------------------------------
# one deadline for every socket operation
# ---------------------------------------------------------------------------------------------------------
class _TermijnSocket:
    """A connected socket of which every operation only gets the time left until the deadline, and of which
    at most `max_lezen` bytes are read: a server dripping bytes cannot stretch the check."""

    def __init__(self, sock: socket.socket, termijn: float, max_lezen: int):
        self.sock, self.termijn, self.rest_lezen = sock, termijn, max_lezen

    def _klok(self) -> None:
        over = self.termijn - time.monotonic()
        if over <= 0:
            raise TimeoutError("deadline")
        self.sock.settimeout(over)

    def sendall(self, data) -> None:
        self._klok()
        self.sock.sendall(data)

    def recv_into(self, buffer) -> int:
        if self.rest_lezen <= 0:
            return 0                               # the cap: as if the answer ended here
        self._klok()
        view = memoryview(buffer)[:self.rest_lezen]
        n = self.sock.recv_into(view)
        self.rest_lezen -= n
        return n

    def makefile(self, mode="rb", *args, **kwargs):
        return io.BufferedReader(_Lezer(self))

    def close(self) -> None:
        pass                                       # the owner closes the real socket (after the response)


class _Lezer(io.RawIOBase):
    def __init__(self, sock: _TermijnSocket):
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._sock.recv_into(buffer)


class _Verbinding(http.client.HTTPConnection):
    """http.client over a socket we connected ourselves (to a checked address): http.client only formats the
    request (Host header from the URL's host) and parses the answer; it never resolves or connects."""

    def __init__(self, adres: Adres, sock: _TermijnSocket):
        super().__init__(adres.host, adres.port)
        self.default_port = adres.standaardpoort
        self.sock = sock

    def connect(self):                             # pragma: no cover - the socket is given
        raise OSError("not connected")


# ---------------------------------------------------------------------------------------------------------
# capacity
# ---------------------------------------------------------------------------------------------------------
class SubjectControlesBezet(ApiProblem):
    """Every place for subject checks of this process is taken."""
    status = 503

    def __init__(self):
        super().__init__("Er lopen al te veel controles van subject-URL's (kla-002); probeer het over "
                         f"{RETRY_AFTER} seconde opnieuw.", headers={"Retry-After": str(RETRY_AFTER)})


class SubjectControlesClientBezet(ApiProblem):
    """This client already runs its share of subject checks."""
    status = 429

    def __init__(self):
        super().__init__("Deze applicatie heeft al het maximale aantal controles van subject-URL's (kla-002) "
                         f"lopen; probeer het over {RETRY_AFTER} seconde opnieuw.",
                         headers={"Retry-After": str(RETRY_AFTER)})


class Plaatsen:
    """At most `totaal` checks at once, at most `per_client` of them for one client. Never waits: a request
    thread that finds no place is freed at once instead of queueing behind slow subject servers."""

    def __init__(self, totaal: int, per_client: int):
        self.totaal, self.per_client = totaal, per_client
        self._bezig = 0
        self._per_client: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def plaats(self, client_id: str):
        with self._lock:
            eigen = self._per_client.get(client_id, 0)
            if eigen >= self.per_client:
                log.warning("subject check refused: the client's share is in use",
                            extra={"event": "subject_check_client_busy", "client_id": client_id})
                raise SubjectControlesClientBezet()
            if self._bezig >= self.totaal:
                log.warning("subject check refused: every place is in use",
                            extra={"event": "subject_check_busy", "client_id": client_id})
                raise SubjectControlesBezet()
            self._bezig += 1
            self._per_client[client_id] = eigen + 1
        try:
            yield
        finally:
            with self._lock:
                self._bezig -= 1
                over = self._per_client[client_id] - 1
                if over:
                    self._per_client[client_id] = over
                else:
                    del self._per_client[client_id]


# ---------------------------------------------------------------------------------------------------------
# the check
# ---------------------------------------------------------------------------------------------------------
class SubjectControle:
    def __init__(self, *, timeout: float, max_bytes: int, allowed_hosts: tuple[str, ...] = (),
                 max_gelijktijdig: int = 4, max_per_client: int = 2, resolver=socket.getaddrinfo,
                 ca_bestand: str | None = None, plaatsen: Plaatsen | None = None):
        """`resolver` stands in for DNS (socket.getaddrinfo's signature); `ca_bestand` defaults to certifi's;
        `plaatsen` shares the capacity of another SubjectControle (one budget for every outgoing fetch)."""
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.allowed_hosts = {h.lower().strip("[]") for h in allowed_hosts}
        self.resolver = resolver
        self.plaatsen = plaatsen or Plaatsen(max_gelijktijdig, max_per_client)
        self.tls = ssl.create_default_context(cafile=ca_bestand or certifi.where())
        # getaddrinfo cannot be given a timeout: it runs here, and the check waits only until its deadline
        self._dns = ThreadPoolExecutor(max_workers=max_gelijktijdig, thread_name_prefix="kla002-dns")

    # ----- resolving and checking -----
    def _adressen(self, adres: Adres, termijn: float, bekend: dict) -> list[tuple]:
        """(family, sockaddr) of every address of the host, each checked; a host is resolved once per check
        (`bekend`), also when redirects return to it, on any port."""
        if adres.host in bekend:
            return [(family, (sockaddr[0], adres.port, *sockaddr[2:])) for family, sockaddr in bekend[adres.host]]
        if adres.ip is not None:
            family = socket.AF_INET6 if adres.ip.version == 6 else socket.AF_INET
            sockaddr = (str(adres.ip), adres.port) if family == socket.AF_INET else (str(adres.ip), adres.port, 0, 0)
            adressen = [(family, sockaddr)]
        else:
            over = termijn - time.monotonic()
            if over <= 0:
                raise TimeoutError("deadline")
            try:
                infos = self._dns.submit(self.resolver, adres.host, adres.port,
                                         type=socket.SOCK_STREAM).result(timeout=over)
            except (socket.gaierror, UnicodeError, ValueError):
                raise OnbereikbaarAdres("dns") from None
            adressen = [(info[0], info[4]) for info in infos
                        if info[0] in (socket.AF_INET, socket.AF_INET6)]
            if not adressen:
                raise OnbereikbaarAdres("dns")
        if adres.host not in self.allowed_hosts:
            for _family, sockaddr in adressen:
                if _geweigerd(ipaddress.ip_address(sockaddr[0].split("%", 1)[0])):
                    raise OnbereikbaarAdres("internal")
        bekend[adres.host] = adressen
        return adressen

    def _verbind(self, adres: Adres, adressen: list[tuple], termijn: float) -> socket.socket:
        """A socket connected to one of the checked addresses (TLS verified against the URL's host)."""
        fout: OSError = OSError("no address")
        for family, sockaddr in adressen:
            over = termijn - time.monotonic()
            if over <= 0:
                raise TimeoutError("deadline")
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(over)
                sock.connect(sockaddr)
                if adres.scheme == "https":
                    sock.settimeout(max(termijn - time.monotonic(), 0.001))   # the handshake as a whole
                    sock = self.tls.wrap_socket(sock, server_hostname=adres.host)
                return sock
            except TimeoutError:
                sock.close()
                raise
            except OSError as exc:
                sock.close()
                fout = exc
        raise fout

    def _vraag(self, adres: Adres, termijn: float, bekend: dict, headers: dict | None = None,
               lichaam: list | None = None) -> tuple[int, str | None]:
        """GET one URL: (status, Location header or None). With `lichaam` the answer's bytes (at most max_bytes)
        are put in it; `headers` are sent besides ours."""
        with tracing.uitgaand("kla-002 GET", adres.host, adres.port, "GET") as span:
            antwoord = self._vraag_een(adres, termijn, bekend, {**(headers or {"Accept": "*/*"}), **span.headers()},
                                       lichaam)
            span.status(antwoord[0])
            return antwoord

    def _vraag_een(self, adres: Adres, termijn: float, bekend: dict, headers: dict,
                   lichaam: list | None) -> tuple[int, str | None]:
        sock = self._verbind(adres, self._adressen(adres, termijn, bekend), termijn)
        try:
            verbinding = _Verbinding(adres, _TermijnSocket(sock, termijn, self.max_bytes + KOP_RUIMTE))
            verbinding.putrequest("GET", adres.doel, skip_accept_encoding=True)
            verbinding.putheader("User-Agent", USER_AGENT)
            for naam, waarde in headers.items():
                verbinding.putheader(naam, waarde)
            verbinding.putheader("Accept-Encoding", "identity")
            verbinding.putheader("Connection", "close")
            verbinding.endheaders()
            antwoord = verbinding.getresponse()
            locatie = antwoord.getheader("location")
            if antwoord.status in REDIRECT_STATUSSEN and locatie:
                return antwoord.status, locatie
            gelezen = 0
            while gelezen < self.max_bytes:
                stuk = antwoord.read(min(65536, self.max_bytes - gelezen))
                if not stuk:
                    break
                gelezen += len(stuk)       # the status is all kla-002 needs; a large answer is not read to the end
                if lichaam is not None:
                    lichaam.append(stuk)
            return antwoord.status, None
        finally:
            sock.close()

    def status(self, url: str) -> int:
        """The final HTTP status of GET url (redirects followed), within one deadline; raises on any failure."""
        return self._volg(ontleed(url))

    def _volg(self, adres: Adres, headers: dict | None = None, lichaam: list | None = None) -> int:
        termijn = time.monotonic() + self.timeout
        bekend: dict = {}
        oorsprong = (adres.scheme, adres.host, adres.port)
        for _ in range(MAX_REDIRECTS + 1):
            if lichaam is not None:
                lichaam.clear()
            status, locatie = self._vraag(adres, termijn, bekend, headers, lichaam)
            if locatie is None:
                return status
            if any(not ("!" <= c <= "~") or c == "\\" for c in locatie):
                raise OnbereikbaarAdres("ongeldig")        # before urljoin could tidy it into something else
            adres = ontleed(urljoin(adres.url, locatie))
            if headers and (adres.scheme, adres.host, adres.port) != oorsprong:
                # credentials are for the service they were configured for, never for where it redirects to
                headers = {k: w for k, w in headers.items() if k.lower() != "authorization"}
        raise OnbereikbaarAdres("redirects")

    def haal_op(self, url: str, *, headers: dict, client_id: str = "") -> tuple[int, bytes]:
        """GET url with `headers` under the same guard as the subject check (strict parser, checked addresses,
        one deadline, a size cap, a place of the capacity): (final status, body of at most max_bytes).
        An Authorization header is dropped on a redirect to another origin. Raises OnbereikbaarAdres,
        TimeoutError, OSError, http.client.HTTPException or ValueError (see `reden`), or
        SubjectControlesBezet / SubjectControlesClientBezet."""
        adres = ontleed(url)
        lichaam: list = []
        with self.plaatsen.plaats(client_id):
            status = self._volg(adres, headers, lichaam)
        return status, b"".join(lichaam)

    def fout(self, url: str, client_id: str = "") -> InvalidParam | None:
        """None when `url` answers 200, else the `bad-url` error for field `subject`. Raises
        SubjectControlesBezet / SubjectControlesClientBezet when no place is free for this check."""
        begin = time.perf_counter()
        resultaat = "busy"
        try:
            resultaat, fout = self._controleer(url, client_id)
            return fout
        finally:
            metrics.SUBJECT_CONTROLES.labels(resultaat).inc()
            metrics.SUBJECT_DUUR.observe(time.perf_counter() - begin)

    def _controleer(self, url: str, client_id: str) -> tuple[str, InvalidParam | None]:
        """(result for the metrics, error) of one check."""
        try:
            adres = ontleed(url)                   # a refused URL takes no place
        except OnbereikbaarAdres as exc:
            return _RESULTAAT[str(exc)], self._ophaalfout(url, str(exc))
        with self.plaatsen.plaats(client_id):
            try:
                status = self._volg(adres)
            except OnbereikbaarAdres as exc:
                return _RESULTAAT[str(exc)], self._ophaalfout(url, str(exc))
            except TimeoutError:
                return "timeout", self._ophaalfout(url, "time-out")
            except (OSError, http.client.HTTPException, ValueError):
                return "unreachable", self._ophaalfout(url, "verbinding")
        if status != 200:
            return "bad_status", InvalidParam("subject", "bad-url",
                                              f"De URL {url} gaf als antwoord HTTP {status}. Geef een geldige URL op.")
        return "ok", None

    @staticmethod
    def reden(exc: Exception) -> str | None:
        """The Dutch reason for a failed fetch (REDENEN), or None for an exception that is not a fetch failure."""
        if isinstance(exc, OnbereikbaarAdres):
            return REDENEN[str(exc)]
        if isinstance(exc, TimeoutError):
            return REDENEN["time-out"]
        if isinstance(exc, (OSError, http.client.HTTPException, ValueError)):
            return REDENEN["verbinding"]
        return None

    @staticmethod
    def _ophaalfout(url: str, sleutel: str) -> InvalidParam:
        return InvalidParam("subject", "bad-url",
                            f"De URL {url} kon niet opgehaald worden. Foutmelding: {REDENEN[sleutel]}")
