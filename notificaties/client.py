"""HTTP client for the Notificaties API (ZGW JWT, timeouts on every call)."""
from __future__ import annotations

import time

import certifi
import jwt
import requests
import urllib3

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
        # The relay's one call per notification goes through urllib3 (the transport under requests) directly:
        # about half the CPU per call of requests' session machinery, with the same CA bundle (certifi), no
        # proxies from the environment (as trust_env=False) and no redirects (a POST is never turned into a GET).
        self._pool = urllib3.PoolManager(num_pools=4, maxsize=2, cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
        self._timeout = urllib3.Timeout(connect=self.timeout, read=self.timeout)
        self._token: tuple[float, str] | None = None

    def headers(self) -> dict:
        h = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.client_id and self.secret:
            nu = time.monotonic()
            if self._token is None or nu - self._token[0] > TOKEN_HERGEBRUIK_SECONDEN:
                self._token = (nu, zgw_token(self.client_id, self.secret))
            h["Authorization"] = f"Bearer {self._token[1]}"
        return h

    def publiceer(self, bericht: str) -> int:
        """POST one message, its body exactly as stored in the outbox; the HTTP status of the answer."""
        try:
            resp = self._pool.request("POST", f"{self.root}notificaties", body=bericht.encode("utf-8"),
                                      headers=self.headers(), timeout=self._timeout, retries=False, redirect=False)
        except urllib3.exceptions.MaxRetryError as exc:
            raise NietBereikbaar("time-out" if isinstance(exc.reason, urllib3.exceptions.TimeoutError)
                                 else "verbinding mislukt") from None
        except urllib3.exceptions.TimeoutError:
            raise NietBereikbaar("time-out") from None
        except (urllib3.exceptions.HTTPError, OSError):
            raise NietBereikbaar("verbinding mislukt") from None
        return resp.status

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
