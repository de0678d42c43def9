"""Per-request access for handlers: the services of the running app and the request's Verzoek."""
from __future__ import annotations

from dataclasses import dataclass

import flask
from connexion.context import context

from service.klanten import KlantenService, Verzoek
from .settings import Settings

EXTENSION = "klanten_api"


@dataclass
class Diensten:
    settings: Settings
    klanten: KlantenService


def diensten() -> Diensten:
    return flask.current_app.extensions[EXTENSION]


def verzoek() -> Verzoek:
    request = flask.request
    settings = diensten().settings
    base = settings.base_url or (request.host_url.rstrip("/"))
    token = context.get("token_info") or {}
    return Verzoek(
        base_url=base,
        client_id=token.get("client_id", ""),
        applicatie_label=token.get("applicatie_label", ""),
        user_id=token.get("user_id", ""),
        user_representation=token.get("user_representation", ""),
        toelichting=request.headers.get("X-Audit-Toelichting", ""),
        logrecord_id=request.headers.get("X-NLX-Logrecord-ID", "")[:255],   # stored (255), never shown
        pad=request.path,
        query=request.query_string.decode("latin-1"),
    )
