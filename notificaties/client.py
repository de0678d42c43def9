"""HTTP client for the Notificaties API (ZGW JWT, timeouts on every call)."""
from __future__ import annotations

import http.client
import select
import socket
import ssl
import time
import urllib.parse

import certifi
import jwt
import requests

from klanten_api import tracing
from klanten_api.settings import Settings


def zgw_token(client_id: str, secret: str) -> str:
    """The token ZGW components send each other: HS256 with client_identifier in the JOSE header."""
    payload = {"iss": client_id, "iat": int(time.time()), "client_id": client_id,
               "user_id": "", "user_representation": ""}
    return jwt.encode(payload, secret, algorithm="HS256", headers={"client_identifier": client_id})


TOKEN_HERGEBRUIK_SECONDEN = 60.0   # a token is reused this long (its iat stays recent), then a new one is made


class NietBereikbaar(Exception):
    """The Notificaties API gave no answer: `reden` is "time-out" or "verbinding mislukt"."""

    def __init__(self, reden: str):
        super().__init__(reden)
        self.reden = reden


class NotificatiesApi:
    def __init__(self, settings: Settings):
        if not settings.notifications_api_url:
            raise ValueError("KLANTEN_NOTIFICATIONS_API_URL is not set")
        self.root = settings.notifications_api_url
        self.client_id = settings.notifications_client_id
        self.secret = settings.notifications_secret
        self.timeout = settings.notifications_timeout
        self.session = requests.Session()
        self.session.trust_env = False
        # The relay's one call per notification goes over one kept-alive http.client connection: a fraction of
        # the CPU per call of requests (and about half of urllib3's), with the same CA bundle (certifi) and
        # hostname check, no proxies from the environment (as trust_env=False), no redirects (a POST is never
        # turned into a GET) and the timeout on connecting and on every read.
        doel = urllib.parse.urlsplit(f"{self.root}notificaties")
        self._https = doel.scheme == "https"
        self._adres = (doel.hostname, doel.port or (443 if self._https else 80))
        self._pad = doel.path + (f"?{doel.query}" if doel.query else "")
        self._tls = ssl.create_default_context(cafile=certifi.where()) if self._https else None
        self._verbinding: http.client.HTTPConnection | None = None
        self._token: tuple[float, str] | None = None

    def headers(self) -> dict:
        h = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.client_id and self.secret:
            nu = time.monotonic()
            if self._token is None or nu - self._token[0] > TOKEN_HERGEBRUIK_SECONDEN:
                self._token = (nu, zgw_token(self.client_id, self.secret))
            h["Authorization"] = f"Bearer {self._token[1]}"
        return h

    def _open(self) -> http.client.HTTPConnection:
        """The kept-alive connection, or a new one when there is none or the server closed it while idle
        (readable while no answer is due means EOF or junk: it cannot carry the next request)."""
        conn = self._verbinding
        if conn is not None and conn.sock is not None and select.select([conn.sock], [], [], 0)[0]:
            self._sluit()
            conn = None
        if conn is None:
            host, poort = self._adres
            conn = (http.client.HTTPSConnection(host, poort, timeout=self.timeout, context=self._tls) if self._https
                    else http.client.HTTPConnection(host, poort, timeout=self.timeout))
            self._verbinding = conn
            conn.connect()
            # http.client writes the headers and the body in two sends: without this, Nagle's algorithm holds the
            # body back until the server's delayed ACK of the headers (40 ms per notification)
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _sluit(self) -> None:
        if self._verbinding is not None:
            self._verbinding.close()
            self._verbinding = None

    def publiceer(self, bericht: str, traceparent: str | None = None) -> int:
        """POST one message, its body exactly as stored in the outbox; the HTTP status of the answer.
        `traceparent`: the trace of the write that queued it (its delivery's span continues that trace)."""
        with tracing.uitgaand("notificatie POST", self._adres[0], self._adres[1], "POST", parent=traceparent) as span:
            status = self._publiceer(bericht, {**self.headers(), **span.headers()})
            span.status(status)
            return status

    def _publiceer(self, bericht: str, headers: dict) -> int:
        try:
            conn = self._open()
            conn.request("POST", self._pad, body=bericht.encode("utf-8"), headers=headers)   # (Host: from the URL)
            resp = conn.getresponse()
            resp.read()
            if resp.will_close:
                self._sluit()
            return resp.status
        except TimeoutError:
            self._sluit()
            raise NietBereikbaar("time-out") from None
        except (OSError, http.client.HTTPException):
            self._sluit()
            raise NietBereikbaar("verbinding mislukt") from None

    def kanalen(self, naam: str) -> list:
        resp = self.session.get(f"{self.root}kanaal", params={"naam": naam}, headers=self.headers(),
                                timeout=(self.timeout, self.timeout))
        resp.raise_for_status()
        data = resp.json()
        return data.get("results", []) if isinstance(data, dict) else data

    def maak_kanaal(self, naam: str, documentatie_link: str, filters: list[str]) -> requests.Response:
        return self.session.post(f"{self.root}kanaal", json={"naam": naam, "documentatieLink": documentatie_link,
                                                             "filters": filters},
                                 headers=self.headers(), timeout=(self.timeout, self.timeout))
