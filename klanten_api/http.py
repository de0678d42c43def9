"""The outer ASGI layer around the Connexion app: what applies to every response.

API-version on every answer, HEAD served as GET without a body, ETag / If-None-Match (304) on the
detail resources (and the ETag of a PUT/PATCH answer), the request's Content-Type in one spelling, 406
for an unacceptable Accept, a body-size limit (413) and a body-time limit (408), the full `Allow` header on
405, CORS (any origin, as the reference), the Host check (400 for a Host that may not name this server) and
one structured log event per request.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import unquote_plus

from starlette.datastructures import Headers

from .apiroot import ApiRoot
from .errors import PROBLEM_JSON, problem_bytes
from .etag import etag as etag_of, if_none_match as etag_matches
from . import tracing
from .settings import API_VERSION, ConfigError

log = logging.getLogger("klanten_api.request")
# a control character in a path (connexion's %0A 500, STACK-NOTES §7 pitfall 9): one regex search, not a loop per char
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")

# fixed paths outside the APIs that may appear as such in the request log (any other unmatched path is "(other)")
SERVER_PATHS = frozenset({"/ref/kanalen/", "/_health/live", "/_health/ready", "/_metrics"})
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# per-request facts for the request log, filled in by the security check (same task, same context)
VERZOEK_LOG: ContextVar[dict] = ContextVar("verzoek_log")
CORS_ALLOW_HEADERS = ("x-requested-with, content-type, accept, origin, authorization, x-csrftoken, user-agent, "
                      "accept-encoding, accept-crs, content-crs, if-none-match, if-match, x-audit-toelichting, "
                      "x-nlx-logrecord-id")
CORS_ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"


def controleer_publieke_url(settings) -> None:
    """Outside development a request's Host may not decide the URLs we store and publish (audit trail,
    notifications): KLANTEN_BASE_URL fixes them, or KLANTEN_ALLOWED_HOSTS lists the names this server has."""
    if not settings.development and not settings.base_url and not settings.allowed_hosts:
        raise ConfigError("set KLANTEN_BASE_URL (the public URL) or KLANTEN_ALLOWED_HOSTS (the host names of this "
                          "server): without either, any client's Host header would name this server in stored "
                          "URLs (audit trail, notifications)")


def host_toegestaan(host: str | None, allowed: tuple[str, ...]) -> bool:
    """`host` (a Host header value) is listed: an entry with a port must match host:port exactly, an entry
    without one matches that name on any port."""
    if not host:
        return False
    host = host.strip().lower()
    if host in allowed:
        return True
    if host.startswith("["):                       # [IPv6]:port
        naam = host[:host.find("]") + 1] if "]" in host else host
    else:
        naam = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return naam != host and naam in allowed


def spec_query_names(spec: dict) -> frozenset[str]:
    """Every query parameter name the spec defines (what the request log may show of a query string)."""
    components = spec.get("components", {}).get("parameters", {})
    names = set()
    for item in spec.get("paths", {}).values():
        operations = [op for m, op in item.items() if m in ("get", "post", "put", "patch", "delete")]
        for param in [*item.get("parameters", []), *(p for op in operations for p in op.get("parameters", []))]:
            if "$ref" in param:
                param = components.get(param["$ref"].rsplit("/", 1)[1], {})
            if param.get("in") == "query" and param.get("name"):
                names.add(param["name"])
    return frozenset(names)


def public_base(scope, settings) -> str:
    if settings.base_url:
        return settings.base_url
    headers = Headers(scope=scope)
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


def acceptable(accept: str | None) -> bool:
    """The reference renders application/json only; q-values are ignored, any acceptable entry wins."""
    if accept is None:
        return True
    for part in accept.split(","):
        mt = part.split(";", 1)[0].strip().lower()
        if mt in ("*/*", "application/*", "application/json"):
            return True
    return False


def canonical_content_type(value: str) -> str:
    """A Content-Type in one spelling: RFC 9110 §8.3.1 makes type, subtype and parameter names case-insensitive
    and allows whitespace around ';'. Connexion and werkzeug compare it as written, so `APPLICATION/JSON` or
    `application/json ; charset=utf-8` would otherwise miss their application/json validators."""
    media, *parameters = value.split(";")
    out = media.strip().lower()
    for parameter in parameters:
        name, eq, waarde = parameter.partition("=")
        if name.strip():
            out += f";{name.strip().lower()}{eq}{waarde.strip()}"
    return out


def document_paths(base: str) -> tuple[str, ...]:
    """The paths of an API's own documents on one base path (klanten_api.app serves them)."""
    return (f"{base}/schema/openapi.yaml", f"{base}/schema/openapi.json", f"{base}/openapi.yaml",
            f"{base}/openapi.json", f"{base}/schema/")


@dataclass(frozen=True)
class Route:
    regex: re.Pattern            # a concrete path of this template
    safe: re.Pattern             # the same with a uuid in every parameter: a path the request log may show as sent
    allow: str                   # the Allow header of a 405
    operations: dict             # method -> operationId
    template: str                # what the request log shows otherwise (a client can put anything in a path)
    etag: frozenset[str]         # methods whose 200 answer carries an ETag


def path_templates(spec_paths: dict, base: str) -> list[Route]:
    """A Route for every path of a spec on one base path. ETags: a GET whose 200 answer declares one (a klant, an
    audit row), and the PUT/PATCH answers on that path (the new version, for If-Match)."""
    out = []
    for template, item in spec_paths.items():
        methods = [m.upper() for m in ("get", "post", "put", "patch", "delete") if m in item]
        operations = {m: item[m.lower()].get("operationId") for m in methods}
        etag = set()
        if "GET" in methods:
            methods.append("HEAD")
            operations["HEAD"] = operations["GET"]
            if "ETag" in ((item["get"].get("responses") or {}).get("200") or {}).get("headers", {}):
                etag = {"GET"} | {m for m in ("PUT", "PATCH") if m in methods}
        pattern = re.escape(base) + re.sub(r"\\\{[^/]+?\\\}", "{}", re.escape(template))
        out.append(Route(regex=re.compile("^" + pattern.replace("{}", "[^/]+") + "$"),
                         safe=re.compile("^" + pattern.replace("{}", _UUID) + "$"),
                         allow=", ".join(methods), operations=operations, template=base + template,
                         etag=frozenset(etag)))
    return out


def _in_networks(address: str | None, networks) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


class ZgwHttp:
    def __init__(self, app, *, settings, layout, ops=None, metrics=None):
        self.app = app
        self.settings = settings
        # every base path of every API (klanten_api.apis): its routes, document paths and API root
        self.routes = [route for m in layout.apis for base in m.base_paths
                       for route in path_templates(m.spec["paths"], base)]
        self.api_prefixes = tuple(f"{base}/{naam}" for m in layout.apis for base in m.base_paths
                                  for naam in m.collecties)
        self.known_paths = SERVER_PATHS | {p for m in layout.apis for base in m.base_paths
                                           for p in document_paths(base)}
        self.query_names = frozenset().union(*(spec_query_names(m.spec) for m in layout.apis))
        # development without KLANTEN_ALLOWED_HOSTS takes any Host; otherwise a listed one (or, with
        # KLANTEN_BASE_URL and no list, Host is never used for a URL and need not be checked)
        self.allowed_hosts = settings.allowed_hosts
        self.check_host = bool(settings.allowed_hosts) or not (settings.development or settings.base_url)
        self.max_body_bytes = settings.max_body_bytes
        self.ops = ops
        self.metrics = metrics
        self.trusted = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]
        self.api_roots = [ApiRoot(base, m.collecties, canonical=m.canonical)
                          for m in layout.apis for base in m.base_paths]

    def _cors(self, origin: str | None) -> list:
        """CORS headers for a request from `origin` (any origin by default, as the reference)."""
        allowed = self.settings.cors_allowed_origins
        if not origin or not allowed:
            return []
        if "*" in allowed:
            return [(b"access-control-allow-origin", b"*")]
        if origin in allowed:
            return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
        return []

    def _behind_proxy(self, scope) -> dict:
        """Honour X-Forwarded-Proto/Host only from a proxy listed in KLANTEN_TRUSTED_PROXIES."""
        if not self.trusted or not _in_networks((scope.get("client") or (None,))[0], self.trusted):
            return scope
        headers = Headers(scope=scope)
        proto = (headers.get("x-forwarded-proto") or "").split(",")[0].strip().lower()
        host = (headers.get("x-forwarded-host") or "").split(",")[0].strip()
        scope = dict(scope)
        if proto in ("http", "https"):
            scope["scheme"] = proto
        if host and re.fullmatch(r"[A-Za-z0-9.\-\[\]:]{1,255}", host):
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [(b"host", host.encode())]
        return scope

    async def _send_problem(self, send, status: int, base: str, extra_headers=(), **kwargs) -> None:
        body = problem_bytes(status, base, **kwargs)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
            (b"api-version", API_VERSION.encode()), *extra_headers]})
        await send({"type": "http.response.body", "body": body})

    def _route(self, path: str) -> Route | None:
        return next((route for route in self.routes if route.regex.match(path)), None)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        if self.ops is not None and scope["path"] in self.ops.PATHS:
            await self.ops(scope, receive, send)
            return
        scope = self._behind_proxy(scope)
        headers = Headers(scope=scope)
        request_id = headers.get("x-request-id") or str(uuid.uuid4())
        if not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", request_id):
            request_id = str(uuid.uuid4())
        path = scope["path"]
        method = scope["method"]
        vreemde_host = self.check_host and not host_toegestaan(headers.get("host"), self.allowed_hosts)
        if vreemde_host:
            # not this Host in anything we answer or store: the configured URL or the first listed name
            naam = self.allowed_hosts[0] if self.allowed_hosts else "localhost"
            base = self.settings.base_url or f"{scope.get('scheme', 'http')}://{naam}"
        else:
            base = public_base(scope, self.settings)
        api_root = next((r for r in self.api_roots if r.serves(path)), None)
        origin = headers.get("origin")
        status_holder = {"status": 500}
        facts = {}
        VERZOEK_LOG.set(facts)
        cors = self._cors(origin)
        common = [(b"x-request-id", request_id.encode()), (b"x-content-type-options", b"nosniff"), *cors]

        async def finish(status: int):
            status_holder["status"] = status

        span = tracing.verzoek_begin(scope) if tracing.AAN else None
        try:
            if vreemde_host:
                await finish(400)
                return await self._send_problem(send, 400, base, common, code="disallowed_host", detail=(
                    "De Host-header noemt geen naam van deze server."))
            if CONTROL_CHARS.search(path):
                await finish(404)
                return await self._send_problem(send, 404, base, common)
            # an API root answers JSON like the resources (its redirects do not negotiate)
            is_api = path.startswith(self.api_prefixes) or (api_root is not None and path == api_root.root)
            if is_api and method == "OPTIONS" and cors and headers.get("access-control-request-method"):
                await finish(200)
                await send({"type": "http.response.start", "status": 200, "headers": [
                    *common, (b"access-control-allow-headers", CORS_ALLOW_HEADERS.encode()),
                    (b"access-control-allow-methods", CORS_ALLOW_METHODS.encode()),
                    (b"access-control-max-age", b"86400"), (b"content-length", b"0"),
                    (b"api-version", API_VERSION.encode())]})
                return await send({"type": "http.response.body", "body": b""})
            if is_api and not acceptable(headers.get("accept")):
                await finish(406)
                return await self._send_problem(send, 406, base, common)
            if api_root is not None:
                return await finish(await api_root.answer(scope, send, base,
                                                          [*common, (b"api-version", API_VERSION.encode())]))
            if is_api and method in ("POST", "PUT", "PATCH"):
                declared = headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
                    await finish(413)
                    return await self._send_problem(send, 413, base, common, detail=(
                        f"De body is groter dan {self.max_body_bytes} bytes."))
                try:
                    async with asyncio.timeout(self.settings.body_timeout):
                        receive, too_large, size = await self._buffer(receive)
                except TimeoutError:
                    # a body that dribbles in holds a worker's memory and a connection: cut it off, and close
                    # the connection (the rest of the body would otherwise be read as the next request)
                    await finish(408)
                    return await self._send_problem(send, 408, base, [*common, (b"connection", b"close")], detail=(
                        f"De body kwam niet binnen {self.settings.body_timeout:g} seconden binnen."))
                if too_large:
                    await finish(413)
                    return await self._send_problem(send, 413, base, common, detail=(
                        f"De body is groter dan {self.max_body_bytes} bytes."))
                # the body is now known in full: declare its length (the WSGI bridge reads nothing of a
                # chunked body without one, and the handler would see an empty body); the media type in its
                # canonical spelling
                content_type = headers.get("content-type")
                scope = dict(scope, headers=[(k, v) for k, v in scope["headers"]
                                             if k not in (b"content-length", b"transfer-encoding", b"content-type")]
                             + [(b"content-length", str(size).encode())]
                             + ([] if content_type is None else
                                [(b"content-type", canonical_content_type(content_type).encode("latin-1"))]))

            is_head = method == "HEAD"
            if is_head:
                scope = dict(scope, method="GET")
            route = self._route(path)
            allow = route.allow if route is not None else None
            # an ETag on what GET serves, and on the klant a PUT or PATCH answers (the new version, for If-Match)
            etag_mode = route is not None and scope["method"] in route.etag
            if_none_match = headers.get("if-none-match")
            state = {"start": None, "chunks": []}

            async def send_wrapper(message):
                if message["type"] == "http.response.start":
                    status = message["status"]
                    await finish(status)
                    hdrs = [(k, v) for k, v in message.get("headers", [])
                            if k.lower() not in (b"api-version", b"x-request-id", b"x-content-type-options")]
                    hdrs += [(b"api-version", API_VERSION.encode()), *common]
                    if status == 405 and allow:
                        hdrs = [(k, v) for k, v in hdrs if k.lower() != b"allow"] + [(b"allow", allow.encode())]
                    if status in (204, 304):
                        hdrs = [(k, v) for k, v in hdrs if k.lower() not in (b"content-type", b"content-length")]
                        if status == 204:
                            hdrs.append((b"content-length", b"0"))
                    if is_api and 200 <= status < 300 and scope["method"] == "GET":
                        hdrs.append((b"cache-control", b"private, no-cache"))
                    message = dict(message, headers=hdrs)
                    if etag_mode and status == 200:
                        state["start"] = message          # hold until the whole body is known
                        return
                    if is_head:
                        state["start"] = message
                        return await send(message)
                    return await send(message)
                if message["type"] == "http.response.body":
                    if etag_mode and state["start"] is not None and state["start"]["status"] == 200:
                        state["chunks"].append(message.get("body", b""))
                        if message.get("more_body"):
                            return
                        body = b"".join(state["chunks"])
                        etag = etag_of(body)
                        start = state["start"]
                        hdrs = list(start["headers"]) + [(b"etag", etag.encode())]
                        if if_none_match and scope["method"] == "GET" and etag_matches(etag, if_none_match):
                            await finish(304)
                            hdrs = [(k, v) for k, v in hdrs if k.lower() not in (b"content-type", b"content-length")]
                            await send({"type": "http.response.start", "status": 304, "headers": hdrs})
                            return await send({"type": "http.response.body", "body": b""})
                        await send(dict(start, headers=hdrs))
                        return await send({"type": "http.response.body", "body": b"" if is_head else body})
                    if is_head:
                        if not message.get("more_body"):
                            return await send({"type": "http.response.body", "body": b""})
                        return
                return await send(message)

            await self.app(scope, receive, send_wrapper)
        finally:
            route = self._route(path)
            operation_id = route.operations.get(method) if route is not None else None
            # uuids are identifiers, not personal data; anything else a client put in a path is not logged
            if (route is not None and route.safe.match(path)) or path in self.known_paths or api_root is not None:
                logged_path = path
            else:
                logged_path = route.template if route is not None else "(other)"
            if self.metrics is not None:
                self.metrics.observe(operation_id, status_holder["status"], time.perf_counter() - started)
            if span is not None:
                tracing.verzoek_einde(span, operation_id, route.template if route is not None else None,
                                      status_holder["status"])
            query_keys, query_other = self._query_names(scope.get("query_string", b""))
            log.info("request", extra={
                "event": "request", "method": method, "path": logged_path,
                "query_keys": query_keys, "query_other": query_other,
                "status": status_holder["status"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "operation_id": operation_id,
                "client_id": facts.get("client_id"),
                "request_id": request_id,
            })

    def _query_names(self, query_string: bytes) -> tuple[list[str], int]:
        """The spec's parameter names in a query string, and how many other parts it has. A part the spec does
        not name is only counted: a client chooses it, and `?<bsn>&<e-mail>` has no `=` at all."""
        names, other = set(), 0
        for part in query_string.split(b"&"):
            if not part:
                continue
            name = unquote_plus(part.partition(b"=")[0].decode("latin-1"))
            if name in self.query_names:
                names.add(name)
            else:
                other += 1
        return sorted(names), other

    async def _buffer(self, receive):
        """Read the whole request body (bounded) so an oversized one is refused before any work."""
        chunks, size = [], 0
        message = None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return receive, False, size
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return receive, True, size
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay, False, size
