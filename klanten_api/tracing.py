"""OpenTelemetry traces (README "Tracing"): off by default, switched on by the standard OTEL_* variables
(Settings.tracing), exported over OTLP/HTTP.

Off, the request path pays one flag check (`AAN`) and opentelemetry is not even imported. On:

- a SERVER span per request, named by its operationId ("other" outside the APIs' operations), continuing the
  caller's trace (W3C `traceparent`); attributes: method, status and the spec's path *template* (a concrete
  path can carry anything a client puts there);
- a CLIENT child span per database statement (operation and table, never the statement's parameters);
- a CLIENT child span per outbound call (kla-002 subject check, Notificaties API, Autorisaties API) with the
  `traceparent` sent along; attributes: host, port, method, status. Never a URL: subject URLs may carry BSNs.

No span carries personal data: no bodies, no paths, no query strings, no header values.
"""
from __future__ import annotations

import re
from contextlib import contextmanager

AAN = False                 # whether traces are recorded in this process (set once by `configureer`)
_tracer = None
_provider = None
_GEMETEN: set[int] = set()
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SQL_SOORT = re.compile(r"\s*(\w+)")
_SQL_TABEL = {"INSERT": re.compile(r"\bINTO\s+\"?(\w+)", re.I), "UPDATE": re.compile(r"^\s*UPDATE\s+\"?(\w+)", re.I),
              "DELETE": re.compile(r"\bFROM\s+\"?(\w+)", re.I), "SELECT": re.compile(r"\bFROM\s+\"?(\w+)", re.I)}


def configureer(settings, exporter=None) -> None:
    """Switch traces on in this process when the settings ask for them (once per process: every worker and the
    relay call this). `exporter` replaces the OTLP exporter (a span exporter of the SDK)."""
    global AAN, _tracer, _provider
    if AAN or not settings.tracing:
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "klanten-api"}))
    _provider = TracerProvider(resource=resource)
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter()           # endpoint, headers, timeout: the OTEL_EXPORTER_OTLP_* variables
    _provider.add_span_processor(BatchSpanProcessor(exporter))
    _tracer = _provider.get_tracer("klanten_api")
    AAN = True


def sluit() -> None:
    """Send what is still buffered (at the end of a process; the SDK also does this at exit)."""
    if _provider is not None:
        _provider.force_flush()


# ------------------------------------------------------------------------------------------------ requests
def verzoek_begin(scope):
    """Start the SERVER span of a request (the caller's traceparent honoured); a handle for `verzoek_einde`."""
    from opentelemetry import context, propagate, trace
    drager = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
              if k in (b"traceparent", b"tracestate")}
    ouder = propagate.extract(drager) if drager else None
    method = scope["method"] if scope["method"] in _METHODS else "_OTHER"
    span = _tracer.start_span(f"HTTP {method}", context=ouder, kind=trace.SpanKind.SERVER,
                              attributes={"http.request.method": method})
    return span, context.attach(trace.set_span_in_context(span, ouder))


def verzoek_einde(handle, operation_id: str | None, route: str | None, status: int) -> None:
    from opentelemetry import context
    from opentelemetry.trace import StatusCode
    span, token = handle
    span.update_name(operation_id or "other")
    span.set_attribute("http.response.status_code", status)
    if route:
        span.set_attribute("http.route", route)
    if status >= 500:
        span.set_status(StatusCode.ERROR)
    span.end()
    try:
        context.detach(token)
    except Exception:      # pragma: no cover - a context switched under us; the span is ended either way
        pass


# ------------------------------------------------------------------------------------------------ outbound calls
class _Uitgaand:
    def __init__(self, span):
        self.span = span

    def headers(self) -> dict:
        """The W3C trace headers (traceparent, tracestate) that carry this span to the server called."""
        from opentelemetry import propagate, trace
        drager: dict = {}
        propagate.inject(drager, context=trace.set_span_in_context(self.span))
        return drager

    def status(self, code: int) -> None:
        from opentelemetry.trace import StatusCode
        self.span.set_attribute("http.response.status_code", code)
        if code >= 500:
            self.span.set_status(StatusCode.ERROR)


class _Niets:
    def headers(self) -> dict:
        return {}

    def status(self, code: int) -> None:
        pass


_NIETS = _Niets()


@contextmanager
def uitgaand(naam: str, host: str | None, port: int | None, method: str, parent: str | None = None):
    """A CLIENT span around one outbound HTTP call; `.headers()` are to be sent with it, `.status(code)` records
    the answer. `parent`: a stored traceparent to continue (the relay's delivery of a write's notification)."""
    if not AAN:
        yield _NIETS
        return
    from opentelemetry import propagate, trace
    from opentelemetry.trace import StatusCode
    ouder = propagate.extract({"traceparent": parent}) if parent else None
    attributes = {"http.request.method": method, "server.address": host or ""}
    if port:
        attributes["server.port"] = port
    with _tracer.start_as_current_span(naam, context=ouder, kind=trace.SpanKind.CLIENT, attributes=attributes,
                                       record_exception=False, set_status_on_exception=False) as span:
        try:
            yield _Uitgaand(span)
        except BaseException as exc:
            # the exception's class only: its message can hold a URL
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(StatusCode.ERROR)
            raise


def traceparent() -> str | None:
    """The traceparent of the current span (stored with an outbox message so its delivery continues the trace)."""
    if not AAN:
        return None
    from opentelemetry import propagate
    drager: dict = {}
    propagate.inject(drager)
    return drager.get("traceparent")


# ------------------------------------------------------------------------------------------------ the database
def meet_database(engine) -> None:
    """A CLIENT span per statement under the current span (none outside a trace: the relay's idle polls)."""
    if not AAN or id(engine) in _GEMETEN:
        return
    _GEMETEN.add(id(engine))
    import sqlalchemy as sa
    from opentelemetry import trace
    from opentelemetry.trace import StatusCode
    systeem = {"postgresql": "postgresql", "sqlite": "sqlite"}.get(engine.dialect.name, engine.dialect.name)

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _voor(conn, cursor, statement, parameters, context, executemany):
        if context is None or not trace.get_current_span().get_span_context().is_valid:
            return
        m = _SQL_SOORT.match(statement)
        soort = m.group(1).upper() if m else "SQL"
        attributes = {"db.system": systeem, "db.operation.name": soort}
        naam = soort
        patroon = _SQL_TABEL.get(soort)
        if patroon is not None and (t := patroon.search(statement)):
            attributes["db.collection.name"] = t.group(1)
            naam = f"{soort} {t.group(1)}"
        context._klanten_span = _tracer.start_span(naam, kind=trace.SpanKind.CLIENT, attributes=attributes)

    @sa.event.listens_for(engine, "after_cursor_execute")
    def _na(conn, cursor, statement, parameters, context, executemany):
        span = getattr(context, "_klanten_span", None)
        if span is not None:
            context._klanten_span = None
            span.end()

    @sa.event.listens_for(engine, "handle_error")
    def _fout(exception_context):
        span = getattr(exception_context.execution_context, "_klanten_span", None)
        if span is not None:
            exception_context.execution_context._klanten_span = None
            span.set_attribute("error.type", type(exception_context.original_exception).__name__)
            span.set_status(StatusCode.ERROR)
            span.end()
