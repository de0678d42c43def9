"""Application factory: create_app(settings) builds the whole server; nothing is read at import time."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import connexion
import flask
import yaml
from connexion.lifecycle import ConnexionResponse
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from connexion.security import BearerSecurityHandler
from starlette.concurrency import run_in_threadpool

import handlers
from service.constants import COMPONENT
from service.contactmomenten import ContactmomentenService
from service.diensten import Diensten as ExterneDiensten, dienst_hosts, lees_diensten
from service.kla_002 import SubjectControle
from service.klanten import KlantenService
from service.validatie import SchemaValidatie
from storage.database import make_engine
from .auth import Authorisatie, controleer_geheimen, load_applicaties
from .context import EXTENSION, Diensten
from .errors import PROBLEM_JSON, from_exception
from .etag import JSONIFIER
from .logging import harden_library_loggers
from .apis import Layout, MountedApi, load_spec as _load_spec
from .http import ZgwHttp, controleer_publieke_url, public_base
from . import operaties, tracing
from .metrics import ScrapeCollector, TellendePool, Verzoeken, meet_pool
from .ops import OpsEndpoints
from .ratelimit import controleer as rate_limit, make_limiter
from .settings import SPEC_PATH, Settings
from .validators import VALIDATOR_MAP
from .wsgi import WsgiInEenKeer

log = logging.getLogger("klanten_api")


class OperationIdResolver(Resolver):
    """operationId `klant_list` -> handlers.klant_list: each API resolves in its own handler module (both documents
    have an `audittrail_list`)."""

    def __init__(self, module=handlers):
        super().__init__()
        self.module = module

    def resolve_function_from_operation_id(self, operation_id):
        return getattr(self.module, operation_id)


def _security_handler(authorisatie: Authorisatie, limiter, layout: Layout):
    class ZgwBearer(BearerSecurityHandler):
        """Checks the ZGW JWT and the operation's scopes (connexion's bearer handler ignores scopes)."""

        def get_fn(self, security_scheme, required_scopes):
            def component(request) -> str:
                # whose scopes: the Autorisaties API grants them per component (kc, cmc), the API's own
                # the raw scope path: request.url would build (and parse) a whole URL for its prefix
                gevonden = layout.serving(request.scope["path"])
                return gevonden[0].api.component if gevonden else COMPONENT

            if authorisatie.autorisaties_api is None:
                def verify(request):
                    token_info = authorisatie.verify(request.headers.get("authorization"), required_scopes,
                                                     component(request))
                    rate_limit(limiter, token_info["client_id"])
                    return token_info
                return verify

            async def verify_remote(request):
                # the Autorisaties API is asked over HTTP: keep the event loop free while it answers
                token_info = await run_in_threadpool(authorisatie.verify, request.headers.get("authorization"),
                                                     required_scopes, component(request))
                await run_in_threadpool(rate_limit, limiter, token_info["client_id"])
                return token_info
            return verify_remote

    return ZgwBearer


def _error_handler(settings: Settings):
    def handle(request, exc):
        status, body, headers = from_exception(exc, public_base(request.scope, settings))
        if status == 405:
            body["detail"] = f'Methode "{request.scope.get("method", "")}" niet toegestaan.'
        return ConnexionResponse(status_code=status, body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                                 content_type=PROBLEM_JSON, mimetype=PROBLEM_JSON, headers=headers)
    return handle


def load_spec(path: Path = SPEC_PATH) -> dict:
    return _load_spec(path)


def create_app(settings: Settings | None = None, *, engine=None, resolver=None):
    """The ASGI application: the Connexion app wrapped in the ZGW HTTP layer. `resolver` replaces
    socket.getaddrinfo for the kla-002 subject check (tests stand in for DNS with it)."""
    settings = settings or Settings.from_env()
    layout = Layout.from_settings(settings)
    spec = layout.api("klanten").spec
    applicaties = load_applicaties(settings.auth_config)
    controleer_geheimen(settings, applicaties)
    controleer_publieke_url(settings)
    if not applicaties.configured:
        log.warning("KLANTEN_AUTH_CONFIG is not set: every API request will be refused (403)",
                    extra={"event": "auth_not_configured"})
    autorisaties_api = None
    if settings.autorisaties_api_url:
        from .autorisaties import AutorisatiesApi
        autorisaties_api = AutorisatiesApi(settings)
    authorisatie = Authorisatie(applicaties, autorisaties_api, max_token_bytes=settings.auth_max_token_bytes,
                                cache_budget=settings.auth_token_cache_bytes, audience=settings.auth_audience,
                                max_token_age=settings.auth_max_token_age)

    engine = engine or make_engine(settings.database_url, pool_size=settings.db_pool_size,
                                   max_overflow=settings.db_max_overflow, pool_timeout=settings.db_pool_timeout,
                                   statement_timeout_ms=settings.db_statement_timeout_ms,
                                   lock_timeout_ms=settings.db_lock_timeout_ms,
                                   network_timeout=settings.db_network_timeout, poolclass=TellendePool)
    meet_pool(engine)
    tracing.configureer(settings)
    tracing.meet_database(engine)
    harden_library_loggers()
    subjectcontrole = SubjectControle(timeout=settings.subject_timeout, max_bytes=settings.subject_max_bytes,
                                      allowed_hosts=settings.subject_allowed_hosts,
                                      max_gelijktijdig=settings.subject_max_concurrent,
                                      max_per_client=settings.subject_max_concurrent_per_client,
                                      **({"resolver": resolver} if resolver is not None else {}))
    service = KlantenService(engine, SchemaValidatie(spec["components"]), subjectcontrole,
                             notificeren=bool(settings.notifications_api_url))
    externe_diensten = lees_diensten(settings.services_config)
    # the fetches of cm-004/cm-005/cm-006: the kla-002 guard and its capacity; a configured service's host is the
    # operator's choice and so allowed (often an internal address)
    ophaler = SubjectControle(timeout=settings.subject_timeout, max_bytes=settings.subject_max_bytes,
                              allowed_hosts=settings.subject_allowed_hosts + dienst_hosts(externe_diensten),
                              plaatsen=subjectcontrole.plaatsen,
                              **({"resolver": resolver} if resolver is not None else {}))
    cm_service = ContactmomentenService(engine, SchemaValidatie(layout.api("contactmomenten").spec["components"]),
                                        ExterneDiensten(externe_diensten, ophaler), layout,
                                        notificeren=bool(settings.notifications_api_url),
                                        zaak_relatie_controle=settings.cm_zaak_relatie_controle)

    app = connexion.FlaskApp(
        __name__,
        security_map={"bearer": _security_handler(authorisatie, make_limiter(settings), layout)},
        validator_map=VALIDATOR_MAP,
    )
    # the Flask app behind connexion's middleware: our bridge instead of a2wsgi's (klanten_api/wsgi.py)
    app._middleware_app.asgi_app = WsgiInEenKeer(app.app.wsgi_app, plaatsen=settings.request_concurrency,
                                                 overflow_after=settings.request_overflow_after)
    # each handler's call prepared once per operation (klanten_api/operaties.py)
    operaties.installeer(app._middleware_app)
    # every base path of every API is one mount of its document (connexion loads it anew for each, so the
    # mounts share nothing), with its own Swagger UI at {base}/schema/ui/
    for mounted in layout.apis:
        resolver = OperationIdResolver(mounted.handler_module())
        for base in mounted.base_paths:
            app.add_api(mounted.api.spec, base_path=base, resolver=resolver, strict_validation=False,
                        validate_responses=settings.validate_responses, jsonifier=JSONIFIER,
                        swagger_ui_options=SwaggerUIOptions(
                            serve_spec=False, swagger_ui_path="/schema/ui",
                            swagger_ui_template_arguments={"openapi_spec_url": f"{base}/schema/openapi.yaml"}))
    for exc in (Exception,):
        app.add_error_handler(exc, _error_handler(settings))
    from starlette.exceptions import HTTPException
    from connexion.exceptions import ProblemException
    for exc in (ProblemException, HTTPException):
        app.add_error_handler(exc, _error_handler(settings))
    for status in (404, 405, 500):
        app.add_error_handler(status, _error_handler(settings))

    relay = None
    if settings.notifications_api_url and settings.notifications_relay:
        from notificaties.relay import Relay
        relay = Relay(engine, settings).start()
        service.na_notificatie = relay.wake.set
    elif settings.notifications_api_url and settings.notifications_relay_wekker:
        from notificaties.relay import WekSignaal     # `serve`'s relay process delivers
        service.na_notificatie = WekSignaal(settings.notifications_relay_wekker)
    cm_service.na_notificatie = service.na_notificatie

    flask_app: flask.Flask = app.app
    flask_app.extensions[EXTENSION] = Diensten(settings=settings, klanten=service, layout=layout,
                                               contactmomenten=cm_service)
    for mounted in layout.apis:
        _spec_routes(app, mounted, settings)
    _ref_routes(app)

    collector = ScrapeCollector(engine, {m.naam: str(m.spec.get("info", {}).get("version", "")) for m in layout.apis})
    asgi = ZgwHttp(app, settings=settings, layout=layout, ops=OpsEndpoints(engine, collector), metrics=Verzoeken())
    asgi.connexion_app = app
    asgi.engine = engine
    asgi.settings = settings
    asgi.relay = relay
    return asgi


def _spec_routes(app, mounted: MountedApi, settings: Settings) -> None:
    """DECISIONS #12: on each base path of the API, its document at {base}/schema/openapi.{yaml,json} and
    {base}/openapi.{yaml,json}, with the absolute canonical base as servers url (an alias's document too: URLs
    are identifiers); a docs page at {base}/schema/."""
    spec = mounted.spec
    info = spec.get("info", {})
    titel = f"{info.get('title', mounted.naam)} {'.'.join(str(info.get('version', '')).split('.')[:2])}".strip()

    def document():
        doc = dict(spec)
        base = settings.base_url or flask.request.host_url.rstrip("/")
        doc["servers"] = [{"url": f"{base}{mounted.canonical}"}]
        return doc

    def as_yaml():
        return flask.Response(yaml.safe_dump(document(), sort_keys=False, allow_unicode=True),
                              mimetype="application/yaml")

    def as_json():
        return flask.Response(json.dumps(document(), ensure_ascii=False), mimetype="application/json")

    for base in mounted.base_paths:
        page = _REDOC.replace("{titel}", titel).replace("{spec}", f"{base}/schema/openapi.yaml")
        for prefix in (f"{base}/schema", base):
            app.add_url_rule(f"{prefix}/openapi.yaml", f"spec_yaml_{prefix}", as_yaml)
            app.add_url_rule(f"{prefix}/openapi.json", f"spec_json_{prefix}", as_json)
        app.add_url_rule(f"{base}/schema/", f"docs_{base}",
                         lambda page=page: flask.Response(page, mimetype="text/html"))


def _ref_routes(app) -> None:
    """The pages the error `type`s and the notification channel point at (outside every API)."""

    def fout(klasse):
        return flask.Response(_PAGE.format(titel=f"Fout: {klasse}", inhoud=(
            "<p>Het <code>type</code> van een foutbericht (application/problem+json) van de Klanten API. "
            "<code>code</code>, <code>title</code> en <code>detail</code> in het bericht beschrijven de fout; "
            "bij een validatiefout staat per veld in <code>invalidParams</code> wat er mis is.</p>")),
            mimetype="text/html")

    def kanalen():
        return flask.Response(_PAGE.format(titel="Kanalen", inhoud=(
            '<h2 id="klanten">klanten</h2><p>Deze API publiceert een notificatie op kanaal <code>klanten</code> '
            "bij elke create, update, partial_update en destroy van een klant (resource <code>klant</code>). "
            "Kenmerk: <code>subjectType</code> (filter <code>subject_type</code>).</p>"
            '<h2 id="contactmomenten">contactmomenten</h2><p>Deze API publiceert een notificatie op kanaal '
            "<code>contactmomenten</code> bij elke create, update, partial_update en destroy van een contactmoment "
            "(resource <code>contactmoment</code>). Kenmerken: <code>bronorganisatie</code> en <code>kanaal</code>."
            "</p>")), mimetype="text/html")

    app.add_url_rule("/ref/fouten/<klasse>/", "ref_fouten", fout)
    app.add_url_rule("/ref/kanalen/", "ref_kanalen", kanalen)


_PAGE = """<!DOCTYPE html>
<html lang="nl"><head><meta charset="utf-8"><title>Klanten API - {titel}</title></head>
<body><h1>{titel}</h1>{inhoud}</body></html>
"""

_REDOC = """<!DOCTYPE html>
<html lang="nl"><head><meta charset="utf-8"><title>{titel} - documentatie</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><h1>{titel}</h1>
<p>De OpenAPI-specificatie: <a href="{spec}">openapi.yaml</a> (ook als <a href="openapi.json">JSON</a>).
Interactief uitproberen: <a href="ui/">Swagger UI</a>.</p></body></html>
"""


def create_app_from_env():
    """Entry point for uvicorn's --factory (each worker process builds its own app)."""
    from .logging import configure_logging
    configure_logging()
    settings = Settings.from_env()
    if settings.serve_pid and settings.serve_pid != os.getpid():
        # a worker of `serve --workers N` (with one worker the app runs in `serve` itself)
        from .proces import eindig_met_ouder
        eindig_met_ouder(settings.serve_pid)
    return create_app(settings)
