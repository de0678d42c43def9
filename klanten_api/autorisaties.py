"""Scopes from the Autorisaties API (optional, DECISIONS #13).

Used for a client whose local entry names neither `scopes` nor `heeftAlleAutorisaties` (its secret
still comes from the local file). Grants count per component: `kc` for the Klanten API, `cmc` for the
Contactmomenten API (an `audittrails.lezen` of the one is not one of the other); answers are cached for a
bounded time; an unreachable or failing Autorisaties API means 403, never 500.
"""
from __future__ import annotations

import logging
import threading
import time
import urllib.parse

import requests

from service.constants import ALLE_SCOPES, CM_COMPONENT, COMPONENT
from . import metrics, tracing
from .errors import GeenToestemming
from .settings import Settings

log = logging.getLogger("klanten_api.autorisaties")
AC_UNAVAILABLE = ("not_authenticated_for_ac",
                  "De component kon zich niet autoriseren met het AC - de autorisaties konden daardoor niet "
                  "opgehaald worden.")


class AutorisatiesApi:
    def __init__(self, settings: Settings, clock=time.monotonic):
        self.root = settings.autorisaties_api_url
        self.client_id = settings.autorisaties_client_id
        self.secret = settings.autorisaties_secret
        self.timeout = settings.autorisaties_timeout
        self.ttl = settings.autorisaties_cache_seconds
        doel = urllib.parse.urlsplit(self.root)
        self._host, self._port = doel.hostname, doel.port or (443 if doel.scheme == "https" else 80)
        self.clock = clock
        self._cache: dict[str, tuple[float, dict[str, frozenset[str]]]] = {}
        self._lock = threading.Lock()

    def _headers(self) -> dict:
        from notificaties.client import zgw_token
        h = {"Accept": "application/json"}
        if self.client_id and self.secret:
            h["Authorization"] = f"Bearer {zgw_token(self.client_id, self.secret)}"
        return h

    def scopes(self, client_id: str, component: str = COMPONENT) -> frozenset[str]:
        now = self.clock()
        with self._lock:
            hit = self._cache.get(client_id)
        if hit and hit[0] > now:
            metrics.AC_CACHE.labels("hit").inc()
            return hit[1].get(component, frozenset())
        metrics.AC_CACHE.labels("miss").inc()
        granted = self._fetch(client_id)
        with self._lock:
            self._cache[client_id] = (now + self.ttl, granted)
            if len(self._cache) > 10_000:          # bounded memory: drop expired entries
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        return granted.get(component, frozenset())

    def _fetch(self, client_id: str) -> dict[str, frozenset[str]]:
        try:
            with requests.Session() as session, tracing.uitgaand("autorisaties GET", self._host, self._port,
                                                                 "GET") as span:
                session.trust_env = False
                resp = session.get(f"{self.root}applicaties", params={"clientIds": client_id},
                                   headers={**self._headers(), **span.headers()}, timeout=(self.timeout, self.timeout))
                span.status(resp.status_code)
            if resp.status_code != 200:
                metrics.AC_VERZOEKEN.labels("error").inc()
                log.warning("autorisaties api answered an error", extra={
                    "event": "autorisaties_error", "status": resp.status_code})
                raise GeenToestemming(*AC_UNAVAILABLE)
            data = resp.json()
        except (requests.RequestException, ValueError):
            metrics.AC_VERZOEKEN.labels("unreachable").inc()
            log.warning("autorisaties api unreachable", extra={"event": "autorisaties_unreachable"})
            raise GeenToestemming(*AC_UNAVAILABLE) from None
        metrics.AC_VERZOEKEN.labels("ok").inc()
        applicaties = data.get("results", []) if isinstance(data, dict) else data
        granted: dict[str, set[str]] = {COMPONENT: set(), CM_COMPONENT: set()}
        for app in applicaties if isinstance(applicaties, list) else []:
            if not isinstance(app, dict) or client_id not in (app.get("clientIds") or []):
                continue
            if app.get("heeftAlleAutorisaties") is True:
                return {c: frozenset(ALLE_SCOPES) for c in granted}
            for autorisatie in app.get("autorisaties") or []:
                if isinstance(autorisatie, dict) and autorisatie.get("component") in granted:
                    granted[autorisatie["component"]].update(
                        s for s in autorisatie.get("scopes") or [] if isinstance(s, str))
        return {c: frozenset(s) for c, s in granted.items()}

    def staat_toe(self, client_id: str, required: set[str], component: str = COMPONENT) -> bool:
        return required <= self.scopes(client_id, component)
