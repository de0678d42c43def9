"""Per-request access for handlers: the services of the running app and the request's Verzoek."""
from __future__ import annotations

from dataclasses import dataclass

import flask
from connexion.context import context

from service.klanten import KlantenService, Verzoek
from .apis import Layout
from .settings import Settings

EXTENSION = "klanten_api"


@dataclass
class Diensten:
    settings: Settings
    klanten: KlantenService
    layout: Layout
    contactmomenten: object = None      # service.contactmomenten.ContactmomentenService


def diensten() -> Diensten:
    return flask.current_app.extensions[EXTENSION]


def header_tekst(waarde: str) -> str:
    """A free-text header value as the client wrote it. HTTP carries header values as bytes and the WSGI bridge
    hands them over decoded as latin-1, while clients send UTF-8 (é arrives as two bytes, shown as "Ã©").
    Bytes that are not valid UTF-8 stay read as latin-1: RFC 9110 §5.5's historical charset, what the
    reference stores for such clients, and latin-1 Dutch text is practically never valid UTF-8 (é followed
    by a letter is not). Control characters become spaces, as in the other audit texts."""
    try:
        tekst = waarde.encode("latin-1").decode("utf-8")
    except UnicodeError:
        tekst = waarde
    return "".join(c if c.isprintable() else " " for c in tekst)


_HOST_URLS: dict[tuple, str] = {}
_HOST_URLS_MAX = 256


def _host_url(request) -> str:
    """werkzeug's `request.host_url` without the slash, remembered per (scheme, Host, server, script root): it
    is a pure function of those and costs about a tenth of a detail read to build (host parsing, IRI
    conversion). The Host is the client's, so the memory is bounded (emptied when full)."""
    environ = request.environ
    sleutel = (environ.get("wsgi.url_scheme"), environ.get("HTTP_HOST"), environ.get("SERVER_NAME"),
               environ.get("SERVER_PORT"), environ.get("SCRIPT_NAME"))
    url = _HOST_URLS.get(sleutel)
    if url is None:
        url = request.host_url.rstrip("/")
        if len(_HOST_URLS) >= _HOST_URLS_MAX:
            _HOST_URLS.clear()
        _HOST_URLS[sleutel] = url
    return url


def verzoek() -> Verzoek:
    # the request object itself, not the proxy: each attribute read through flask.request is a context lookup
    request = flask.request._get_current_object()
    headers = request.headers
    d = diensten()
    settings, layout = d.settings, d.layout
    host_url = _host_url(request)
    base = settings.base_url or host_url
    token = context.get("token_info") or {}
    return Verzoek(
        base_url=base,
        api_pad=layout.api("klanten").canonical,
        client_id=token.get("client_id", ""),
        applicatie_label=token.get("applicatie_label", ""),
        user_id=token.get("user_id", ""),
        user_representation=token.get("user_representation", ""),
        toelichting=header_tekst(headers.get("X-Audit-Toelichting", "")),
        # blank counts as absent: no tag given is no version to protect
        if_match=headers.get("If-Match", "").strip() or None,
        logrecord_id=headers.get("X-NLX-Logrecord-ID", "")[:255],   # stored (255), never shown
        # the page links of a list: this request's URL on the canonical base path (DECISIONS #18)
        pad=layout.canonical_path(request.path),
        query=request.query_string.decode("latin-1"),
        verzoek_base=host_url,
    )
