"""The outer ASGI layer around the Connexion app: what applies to every response.

API-version on every answer, HEAD served as GET without a body, ETag / If-None-Match (304) on the
detail resources (and the ETag of a PUT/PATCH answer), the request's Content-Type in one spelling, 406
for an unacceptable Accept, a body-size limit (413), the full `Allow` header on 405, CORS (any origin,
as the reference) and one structured log event per request.
"""
from __future__ import annotations

import ipaddress
import logging
import re
import time
import uuid
from contextvars import ContextVar

from starlette.datastructures import Headers

from .errors import PROBLEM_JSON, problem_bytes
from .etag import etag as etag_of, if_none_match as etag_matches
from .settings import API_BASE_PATH, API_VERSION

log = logging.getLogger("klanten_api.request")

# fixed paths that may appear as such in the request log (any other unmatched path is logged as "(other)")
KNOWN_PATHS = {f"{API_BASE_PATH}/schema/openapi.yaml", f"{API_BASE_PATH}/schema/openapi.json",
               f"{API_BASE_PATH}/openapi.yaml", f"{API_BASE_PATH}/openapi.json", f"{API_BASE_PATH}/schema/",
               "/ref/kanalen/", "/_health/live", "/_health/ready", "/_metrics"}
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# per-request facts for the request log, filled in by the security check (same task, same context)
VERZOEK_LOG: ContextVar[dict] = ContextVar("verzoek_log")
CORS_ALLOW_HEADERS = ("x-requested-with, content-type, accept, origin, authorization, x-csrftoken, user-agent, "
                      "accept-encoding, accept-crs, content-crs, if-none-match, if-match, x-audit-toelichting, "
                      "x-nlx-logrecord-id")
CORS_ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"


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


def path_templates(spec_paths: dict, base: str = API_BASE_PATH) -> list[tuple[re.Pattern, str, dict]]:
    """(regex for a concrete path, Allow header value, method -> operationId) for every path of the spec;
    the template itself under "_template" (what the request log shows: a client can put anything in a path)."""
    out = []
    for template, item in spec_paths.items():
        methods = [m.upper() for m in ("get", "post", "put", "patch", "delete") if m in item]
        operations = {m: item[m.lower()].get("operationId") for m in methods}
        if "GET" in methods:
            methods.append("HEAD")
            operations["HEAD"] = operations["GET"]
        regex = re.compile("^" + re.escape(base) + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$")
        operations["_template"] = base + template
        # what a path with uuids in its parameters looks like (logged as it is: uuids are no personal data)
        operations["_safe"] = re.compile("^" + re.escape(base) + re.sub(r"\{[^/]+\}", _UUID, template) + "$")
        out.append((regex, ", ".join(methods), operations))
    return out


def _api_paden(apis) -> tuple[tuple[str, ...], list[re.Pattern], list[re.Pattern], set[str]]:
    """From the documents and their base paths: the path prefixes of API resources; the paths with an ETag on
    GET (every *_read); the paths with an ETag on a PUT/PATCH answer (those of a *_read); the documents' paths."""
    prefixes, etag_get, etag_write, documenten = [], [], [], set()
    for base, spec_paths in apis:
        for template, item in spec_paths.items():
            prefixes.append(base + "/" + template.strip("/").split("/", 1)[0])
            if str(item.get("get", {}).get("operationId", "")).endswith("_read"):
                regex = re.compile("^" + re.escape(base) + re.sub(r"\{[^/]+\}", "[^/]+", template) + "$")
                etag_get.append(regex)
                if "put" in item or "patch" in item:
                    etag_write.append(regex)
        documenten |= {f"{base}/schema/openapi.yaml", f"{base}/schema/openapi.json", f"{base}/openapi.yaml",
                       f"{base}/openapi.json", f"{base}/schema/"}
    return tuple(dict.fromkeys(prefixes)), etag_get, etag_write, documenten


def _in_networks(address: str | None, networks) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


class ZgwHttp:
    def __init__(self, app, *, settings, spec_paths: dict, ops=None, metrics=None, apis=None):
        """apis: (base path, spec paths) of every API served (default: the Klanten API's `spec_paths`)."""
        self.app = app
        self.settings = settings
        apis = apis or ((API_BASE_PATH, spec_paths),)
        self.templates = [t for base, paths in apis for t in path_templates(paths, base)]
        self.api_prefixes, self.etag_get, self.etag_write, documenten = _api_paden(apis)
        self.known_paths = KNOWN_PATHS | documenten
        self.max_body_bytes = settings.max_body_bytes
        self.ops = ops
        self.metrics = metrics
        self.trusted = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]

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

    def _route(self, path: str) -> tuple[str | None, dict]:
        for regex, allow, operations in self.templates:
            if regex.match(path):
                return allow, operations
        return None, {}

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
        base = public_base(scope, self.settings)
        origin = headers.get("origin")
        status_holder = {"status": 500}
        facts = {}
        VERZOEK_LOG.set(facts)
        cors = self._cors(origin)
        common = [(b"x-request-id", request_id.encode()), (b"x-content-type-options", b"nosniff"), *cors]

        async def finish(status: int):
            status_holder["status"] = status

        try:
            if any(ord(c) < 32 or ord(c) == 127 for c in path):
                await finish(404)
                return await self._send_problem(send, 404, base, common)
            is_api = path.startswith(self.api_prefixes)
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
            if is_api and method in ("POST", "PUT", "PATCH"):
                declared = headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
                    await finish(413)
                    return await self._send_problem(send, 413, base, common, detail=(
                        f"De body is groter dan {self.max_body_bytes} bytes."))
                receive, too_large, size = await self._buffer(receive)
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
            # an ETag on what GET serves, and on the klant a PUT or PATCH answers (the new version, for If-Match)
            etag_mode = (scope["method"] == "GET" and any(r.match(path) for r in self.etag_get)) or (
                scope["method"] in ("PUT", "PATCH") and any(r.match(path) for r in self.etag_write))
            if_none_match = headers.get("if-none-match")
            allow, operations = self._route(path)
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
            route = self._route(path)[1]
            operation_id = route.get(method)
            # uuids are identifiers, not personal data; anything else a client put in a path is not logged
            safe = route.get("_safe")
            logged_path = path if ((safe is not None and safe.match(path)) or path in self.known_paths) else (
                route.get("_template") or "(other)")
            if self.metrics is not None:
                self.metrics.observe(operation_id, status_holder["status"], time.perf_counter() - started)
            log.info("request", extra={
                "event": "request", "method": method, "path": logged_path,
                "query_keys": sorted({k.decode("latin-1") for k, _, _ in
                                      (p.partition(b"=") for p in scope.get("query_string", b"").split(b"&") if p)}),
                "status": status_holder["status"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "operation_id": operation_id,
                "client_id": facts.get("client_id"),
                "request_id": request_id,
            })

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
