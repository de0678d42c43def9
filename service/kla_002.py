"""kla-002: a non-blank `subject` must answer HTTP 200 to a GET.

The server fetches a URL the client chose, so the fetch is fenced in: a connect/read timeout, a cap on
what is read, at most a few redirects, and no loopback, private, link-local or otherwise internal
targets (checked after DNS resolution and at every redirect) unless the host is explicitly allowed.
Reasons never echo internal details (addresses, exception texts).
"""
from __future__ import annotations

import ipaddress
import logging
import socket
from urllib.parse import urljoin, urlsplit

import requests

from klanten_api.errors import InvalidParam

log = logging.getLogger("klanten_api.kla_002")
MAX_REDIRECTS = 5
USER_AGENT = "klanten-api (kla-002 subject check)"


def _geweigerd(ip: ipaddress._BaseAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


class OnbereikbaarAdres(Exception):
    """The target may not be fetched (internal address) or could not be resolved."""


class SubjectControle:
    def __init__(self, *, timeout: float, max_bytes: int, allowed_hosts: tuple[str, ...] = ()):
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.allowed_hosts = {h.lower() for h in allowed_hosts}

    def _controleer_host(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OnbereikbaarAdres("scheme")
        host = parts.hostname.lower()
        if host in self.allowed_hosts:
            return
        try:
            infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80),
                                       type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, ValueError):
            raise OnbereikbaarAdres("dns") from None
        for info in infos:
            if _geweigerd(ipaddress.ip_address(info[4][0].split("%", 1)[0])):
                raise OnbereikbaarAdres("internal")

    def status(self, url: str) -> int:
        """The final HTTP status of GET url (redirects followed); raises on any failure."""
        with requests.Session() as session:
            session.trust_env = False       # never route subject checks through an environment proxy
            return self._volg(session, url)

    def _volg(self, session: requests.Session, url: str) -> int:
        huidige = url
        for _ in range(MAX_REDIRECTS + 1):
            self._controleer_host(huidige)
            with session.get(huidige, timeout=(self.timeout, self.timeout), allow_redirects=False,
                                  stream=True, headers={"User-Agent": USER_AGENT, "Accept": "*/*"}) as resp:
                if resp.is_redirect and resp.headers.get("location"):
                    huidige = urljoin(huidige, resp.headers["location"])
                    continue
                gelezen = 0
                for chunk in resp.iter_content(65536):
                    gelezen += len(chunk)
                    if gelezen >= self.max_bytes:
                        break      # the status is all we need; stop reading a large answer
                return resp.status_code
        raise OnbereikbaarAdres("redirects")

    def fout(self, url: str) -> InvalidParam | None:
        """None when `url` answers 200, else the `bad-url` error for field `subject`."""
        try:
            status = self.status(url)
        except OnbereikbaarAdres as exc:
            reden = {"internal": "het adres is niet toegestaan", "dns": "de host is onbekend",
                     "redirects": "te veel doorverwijzingen", "scheme": "alleen http en https zijn toegestaan"}[
                str(exc)]
            return InvalidParam("subject", "bad-url", f"De URL {url} kon niet opgehaald worden. Foutmelding: {reden}")
        except requests.Timeout:
            return InvalidParam("subject", "bad-url", f"De URL {url} kon niet opgehaald worden. Foutmelding: time-out")
        except requests.RequestException:
            return InvalidParam("subject", "bad-url",
                                f"De URL {url} kon niet opgehaald worden. Foutmelding: verbinding mislukt")
        if status != 200:
            return InvalidParam("subject", "bad-url",
                                f"De URL {url} gaf als antwoord HTTP {status}. Geef een geldige URL op.")
        return None
