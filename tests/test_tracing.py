"""OpenTelemetry traces of a real `klanten-api serve --workers 2` (issue #15), received by a loopback OTLP/HTTP
receiver that decodes the protobuf with opentelemetry-proto's ExportTraceServiceRequest.

Switched on by the standard variables only (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). Checked: the span tree of a
klant_create with a kla-002 subject check (server span -> database spans and a client span whose traceparent
the loopback subject server received), the caller's traceparent honoured, the relay's delivery continuing the
write's trace with the traceparent sent to the Notificaties API, and no personal data (BSN, names, the subject's
path or query) in any span name or attribute.
"""
from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from conftest import eigen_postgres_database, token, wait_for, zonder_nummer
from processen import ServeProces

BSN = "999993653"
ACHTERNAAM = "Pietersenvanderlaan"
SERVER, CLIENT = 2, 3          # Span.SpanKind in the protobuf


class OtlpOntvanger:
    """POST /v1/traces: every span of every request, as (resource attributes, span)."""

    def __init__(self):
        self.spans = []
        ontvanger = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                lengte = int(self.headers.get("content-length", 0))
                verzoek = ExportTraceServiceRequest.FromString(self.rfile.read(lengte))
                for rs in verzoek.resource_spans:
                    for ss in rs.scope_spans:
                        ontvanger.spans.extend(ss.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def attrs(span) -> dict:
    out = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = v.string_value if v.HasField("string_value") else v.int_value
    return out


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    if os.environ.get("KLANTEN_TEST_DATABASE_URL", "").strip().startswith("postgres"):
        with eigen_postgres_database("tracing") as (url, _admin):
            yield url
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('tracing') / 'klanten.db'}"


@pytest.fixture
def otlp():
    o = OtlpOntvanger()
    yield o
    o.stop()


@pytest.fixture
def serve(database, httpserver, otlp, auth_config, tmp_path):
    httpserver.expect_request("/api/v1/notificaties", method="POST").respond_with_json({}, status=201)
    httpserver.expect_request(f"/personen/{BSN}").respond_with_data("ok", status=200)
    env = {"KLANTEN_DATABASE_URL": database, "KLANTEN_AUTH_CONFIG": str(auth_config),
           "KLANTEN_DEVELOPMENT": "true", "KLANTEN_NOTIFICATIONS_API_URL": httpserver.url_for("/api/v1/"),
           "KLANTEN_SUBJECT_ALLOWED_HOSTS": "localhost,127.0.0.1",
           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    srv = ServeProces(env, tmp_path / "serve.log", workers=2).wacht_tot_klaar()
    yield srv
    srv.stop()


def test_span_tree_of_a_write_with_a_subject_check_and_its_delivery(serve, httpserver, otlp):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    ouder_id = "00f067aa0ba902b7"
    subject = httpserver.url_for(f"/personen/{BSN}") + f"?bsn={BSN}"
    r = requests.post(f"{serve.root}/klanten", timeout=10,
                      json=zonder_nummer(subject=subject, voornaam="Jan", achternaam=ACHTERNAAM, emailadres="jan@x.nl"),
                      headers={"Authorization": f"Bearer {token()}", "traceparent": f"00-{trace_id}-{ouder_id}-01"})
    assert r.status_code == 201, r.text

    def compleet():
        namen = {s.name for s in otlp.spans}
        return {"klant_create", "kla-002 GET", "notificatie POST"} <= namen
    wait_for(compleet, timeout=15, wat="the spans of the write and of its delivery exported")

    server = [s for s in otlp.spans if s.name == "klant_create"]
    assert len(server) == 1
    server = server[0]
    # the caller's trace continues
    assert server.trace_id.hex() == trace_id and server.parent_span_id.hex() == ouder_id
    assert server.kind == SERVER
    assert attrs(server) == {"http.request.method": "POST", "http.response.status_code": 201,
                             "http.route": "/api/v1/klanten"}

    kinderen = [s for s in otlp.spans if s.parent_span_id == server.span_id]
    db = [s for s in kinderen if "db.system" in attrs(s)]
    assert db, [s.name for s in kinderen]
    assert all(s.kind == CLIENT and s.trace_id == server.trace_id for s in db)
    assert {attrs(s)["db.operation.name"] for s in db} >= {"INSERT"}
    assert any(attrs(s).get("db.collection.name") == "klant" for s in db), [s.name for s in db]

    subject_span = [s for s in kinderen if s.name == "kla-002 GET"]
    assert len(subject_span) == 1
    subject_span = subject_span[0]
    assert subject_span.kind == CLIENT
    assert attrs(subject_span) == {"http.request.method": "GET", "server.address": "localhost",
                                   "server.port": httpserver.port, "http.response.status_code": 200}
    # the subject server received the client span's traceparent
    ontvangen = [req.headers.get("traceparent") for req, _ in httpserver.log if req.path.startswith("/personen/")]
    assert ontvangen == [f"00-{trace_id}-{subject_span.span_id.hex()}-01"]

    # the relay (another process) delivered in the write's trace and sent that on to the Notificaties API
    bezorging = [s for s in otlp.spans if s.name == "notificatie POST"]
    assert len(bezorging) == 1 and bezorging[0].trace_id.hex() == trace_id and bezorging[0].kind == CLIENT
    assert attrs(bezorging[0])["http.response.status_code"] == 201
    nrc = [req.headers.get("traceparent") for req, _ in httpserver.log if req.path == "/api/v1/notificaties"]
    assert nrc == [f"00-{trace_id}-{bezorging[0].span_id.hex()}-01"]

    # a read: its own span, the path template, never the concrete path
    uuid = r.json()["url"].rsplit("/", 1)[1]
    assert requests.get(f"{serve.root}/klanten/{uuid}?bsn={BSN}", timeout=10,
                        headers={"Authorization": f"Bearer {token()}"}).status_code == 200
    lees = wait_for(lambda: [s for s in otlp.spans if s.name == "klant_read"], wat="klant_read span")
    assert attrs(lees[0])["http.route"] == "/api/v1/klanten/{uuid}"

    # no personal data, no URL, no identifier of the klant in any span
    for span in otlp.spans:
        tekst = span.name + " " + " ".join(f"{k}={v}" for k, v in attrs(span).items())
        for verboden in (BSN, ACHTERNAAM, "Jan", "jan@x.nl", "/personen", "bsn", uuid, "http://"):
            assert verboden not in tekst, (verboden, tekst)


def test_tracing_is_off_without_the_otel_variables(database, httpserver, auth_config, tmp_path):
    """No OTEL_* variable: nothing is sent anywhere and no traceparent goes out with a subject check."""
    httpserver.expect_request(f"/personen/{BSN}").respond_with_data("ok", status=200)
    env = {"KLANTEN_DATABASE_URL": database, "KLANTEN_AUTH_CONFIG": str(auth_config), "KLANTEN_DEVELOPMENT": "true",
           "KLANTEN_SUBJECT_ALLOWED_HOSTS": "localhost,127.0.0.1"}
    srv = ServeProces(env, tmp_path / "serve.log", workers=2).wacht_tot_klaar()
    try:
        r = requests.post(f"{srv.root}/klanten", json=zonder_nummer(subject=httpserver.url_for(f"/personen/{BSN}")),
                          headers={"Authorization": f"Bearer {token()}"}, timeout=10)
        assert r.status_code == 201, r.text
    finally:
        srv.stop()
    assert [req.headers.get("traceparent") for req, _ in httpserver.log] == [None]
