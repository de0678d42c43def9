"""Notifications (DECISIONS #8): the outbox, the relay, and a real Notificaties API on loopback."""
from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import jwt
import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from werkzeug import Response

from conftest import Api, klant_body, wait_for
from klanten_api.settings import Settings
from notificaties.relay import Relay
from storage.tables import notificatie

NRC_CLIENT = "klanten-api-nrc"
NRC_SECRET = "nrc-secret-for-the-test-suite-of-klanten"
ROOT = Path(__file__).resolve().parents[1]


def nrc_settings(url: str, **extra) -> dict:
    return {"notifications_api_url": url, "notifications_client_id": NRC_CLIENT,
            "notifications_secret": NRC_SECRET, "notifications_timeout": 0.5, "notifications_backoff": 0.05, **extra}


def outbox(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(notificatie).order_by(notificatie.c.id)).all()


def received(nrc: HTTPServer) -> list[dict]:
    return [json.loads(req.get_data()) for req, _ in nrc.log if req.path == "/api/v1/notificaties"
            and _.status_code == 201]


@pytest.fixture
def nrc(httpserver):
    """A Notificaties API that accepts everything with 201."""
    httpserver.expect_request("/api/v1/notificaties", method="POST").respond_with_json({}, status=201)
    return httpserver


def test_every_write_sends_the_reference_message_byte_for_byte(server_factory, nrc, subject_url, engine):
    srv = server_factory(**nrc_settings(nrc.url_for("/api/v1/")))
    api = Api(srv.url)
    created = api.post("/klanten", klant_body(subject_url)).json()
    url = created["url"]
    assert api.patch(url, {"voornaam": "Anna"}).status_code == 200
    put_body = {k: v for k, v in created.items() if k not in ("url", "subjectIdentificatie")}
    assert api.put(url, {**put_body, "functie": "tester"}).status_code == 200
    audit = api.get(f"{url}/audittrail").json()
    assert isinstance(audit, list), audit
    assert api.delete(url).status_code == 204

    requests_ = wait_for(lambda: (r := [req for req, _ in nrc.log if req.path == "/api/v1/notificaties"])
                         and len(r) == 4 and r)
    acties = ["create", "partial_update", "update", "destroy"]
    for i, (req, actie) in enumerate(zip(requests_, acties)):
        body = req.get_data(as_text=True)
        stamp = audit[i]["aanmaakdatum"] if i < 3 else json.loads(body)["aanmaakdatum"]
        expected = json.dumps({"kanaal": "klanten", "hoofdObject": url, "resource": "klant", "resourceUrl": url,
                               "actie": actie, "aanmaakdatum": stamp,
                               "kenmerken": {"subjectType": "natuurlijk_persoon"}})
        assert body == expected
        assert req.headers["Content-Type"] == "application/json"
        assert req.headers["Accept"] == "application/json"
        scheme, tok = req.headers["Authorization"].split(" ")
        assert scheme == "Bearer"
        claims = jwt.decode(tok, NRC_SECRET, algorithms=["HS256"])
        assert claims["client_id"] == NRC_CLIENT and claims["iss"] == NRC_CLIENT
        assert jwt.get_unverified_header(tok)["client_identifier"] == NRC_CLIENT
    assert stamp.endswith("Z")
    rows = wait_for(lambda: (o := outbox(engine)) and all(r.status == "sent" for r in o) and o)
    assert [r.status for r in rows] == ["sent"] * 4


def test_without_notifications_api_nothing_is_queued(api, subject_url, engine):
    assert api.post("/klanten", klant_body(subject_url)).status_code == 201
    assert outbox(engine) == []


def test_failed_writes_queue_nothing(server_factory, nrc, subject_url, engine):
    srv = server_factory(**nrc_settings(nrc.url_for("/api/v1/")))
    api = Api(srv.url)
    assert api.post("/klanten", klant_body(subject_url)).status_code == 201
    wait_for(lambda: len(received(nrc)) == 1)
    assert api.post("/klanten", klant_body(subject_url)).status_code == 400           # unique
    assert api.post("/klanten", {"bronorganisatie": "1"}).status_code == 400          # validation
    assert api.patch("/klanten/00000000-0000-4000-8000-000000000000", {}).status_code == 404
    time.sleep(0.3)
    assert len(outbox(engine)) == 1 and len(received(nrc)) == 1


def test_a_rolled_back_unit_of_work_leaves_no_message(engine):
    import datetime as dt
    import uuid
    from storage.uow import UnitOfWork
    with UnitOfWork(engine, schrijven=True) as uow:
        uow.notificaties.toevoegen(uuid.uuid4(), "klanten", "{}", dt.datetime.now(dt.timezone.utc))
        # no commit: leaving the block rolls back
    assert outbox(engine) == []


def test_notificaties_api_down_then_up(server_factory, subject_url, engine):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()                                   # nothing listens here: connection refused
    srv = server_factory(**nrc_settings(f"http://127.0.0.1:{port}/api/v1/"))
    api = Api(srv.url)
    started = time.perf_counter()
    assert api.post("/klanten", klant_body(subject_url)).status_code == 201
    assert time.perf_counter() - started < 2.0     # the write does not wait for the Notificaties API
    wait_for(lambda: outbox(engine)[0].pogingen >= 2)
    assert outbox(engine)[0].status == "pending"
    up = HTTPServer(host="127.0.0.1", port=port)
    up.expect_request("/api/v1/notificaties", method="POST").respond_with_json({}, status=201)
    up.start()
    try:
        srv.app.relay.wake.set()
        wait_for(lambda: outbox(engine)[0].status == "sent", timeout=15)
        assert len(up.log) >= 1
    finally:
        up.clear()
        up.stop()


def test_500_500_201_is_retried_until_delivered(server_factory, httpserver, subject_url, engine):
    answers = iter([500, 500, 201])
    httpserver.expect_request("/api/v1/notificaties", method="POST").respond_with_handler(
        lambda request: Response("{}", status=next(answers, 201), content_type="application/json"))
    srv = server_factory(**nrc_settings(httpserver.url_for("/api/v1/")))
    api = Api(srv.url)
    assert api.post("/klanten", klant_body(subject_url)).status_code == 201
    row = wait_for(lambda: (o := outbox(engine)) and o[0].status == "sent" and o[0])
    assert row.pogingen == 3
    assert [r.status_code for req, r in httpserver.log if req.path == "/api/v1/notificaties"] == [500, 500, 201]


def test_a_hanging_notificaties_api_does_not_slow_writes(server_factory, engine):
    release = threading.Event()

    def hang(request):
        release.wait(5)
        return Response("{}", status=201, content_type="application/json")

    nrc = HTTPServer(host="127.0.0.1", port=0, threaded=True)     # its own server: it will hang
    nrc.expect_request("/api/v1/notificaties", method="POST").respond_with_handler(hang)
    nrc.start()
    try:
        srv = server_factory(**nrc_settings(nrc.url_for("/api/v1/")))
        api = Api(srv.url)
        durations = []
        for i in range(3):
            started = time.perf_counter()
            assert api.post("/klanten", klant_body(klantnummer=f"h{i}")).status_code == 201
            durations.append(time.perf_counter() - started)
        assert max(durations) < 1.0, durations      # the relay's timeout (0.5 s) never lands in a write
        rows = wait_for(lambda: (o := outbox(engine)) and any(r.laatste_fout == "time-out" for r in o) and o)
        assert all(r.status in ("pending", "failed") for r in rows)
    finally:
        release.set()
        nrc.clear()
        nrc.stop()


def test_a_400_is_kept_as_failed_listed_and_can_be_retried(server_factory, httpserver, subject_url, engine,
                                                           database_url, tmp_path):
    status = {"code": 400}
    httpserver.expect_request("/api/v1/notificaties", method="POST").respond_with_handler(
        lambda request: Response("{}", status=status["code"], content_type="application/json"))
    srv = server_factory(**nrc_settings(httpserver.url_for("/api/v1/")))
    api = Api(srv.url)
    klant = api.post("/klanten", klant_body(subject_url)).json()
    row = wait_for(lambda: (o := outbox(engine)) and o[0].status == "failed" and o[0])
    assert row.pogingen == 1 and row.laatste_fout == "HTTP 400"

    env = {"PATH": "/usr/bin:/bin", "KLANTEN_DATABASE_URL": database_url}
    cli = [str(ROOT / ".venv" / "bin" / "klanten-api")]
    listed = subprocess.run(cli + ["notificaties", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert f"{row.id}\t{klant['url'].rsplit('/', 1)[1]}\tfailed\t1\tHTTP 400" in listed.stdout

    status["code"] = 201
    retried = subprocess.run(cli + ["notificaties", "retry", "--id", str(row.id)], env=env, capture_output=True,
                             text=True, timeout=60)
    assert retried.returncode == 0 and "1 notification(s) queued again" in retried.stdout
    srv.app.relay.wake.set()
    wait_for(lambda: outbox(engine)[0].status == "sent")


def test_three_writes_of_one_klant_arrive_in_order_despite_retries(server_factory, httpserver, subject_url, engine):
    answers = iter([503, 201, 503, 503, 201])
    httpserver.expect_request("/api/v1/notificaties", method="POST").respond_with_handler(
        lambda request: Response("{}", status=next(answers, 201), content_type="application/json"))
    srv = server_factory(**nrc_settings(httpserver.url_for("/api/v1/")))
    api = Api(srv.url)
    url = api.post("/klanten", klant_body(subject_url)).json()["url"]
    assert api.patch(url, {"functie": "een"}).status_code == 200
    assert api.delete(url).status_code == 204
    nrc_log = lambda: [(req, r) for req, r in httpserver.log if req.path == "/api/v1/notificaties"]  # noqa: E731
    wait_for(lambda: len([1 for _, r in nrc_log() if r.status_code == 201]) == 3)
    delivered = [json.loads(req.get_data())["actie"] for req, r in nrc_log() if r.status_code == 201]
    assert delivered == ["create", "partial_update", "destroy"]
    attempted = [json.loads(req.get_data())["actie"] for req, _ in nrc_log()]
    # a later message is never attempted while an earlier one of the same klant is pending
    assert attempted == sorted(attempted, key=["create", "partial_update", "destroy"].index)


def test_two_relays_at_once_deliver_everything_in_order_per_klant(engine, database_url, httpserver):
    """Two relays (as in two processes or machines) on one database: nothing lost, order per klant kept."""
    import datetime as dt
    import uuid
    from storage.uow import UnitOfWork
    lock = threading.Lock()
    seen: list[tuple[str, int]] = []

    def record(request):
        msg = json.loads(request.get_data())
        with lock:
            seen.append((msg["hoofdObject"], msg["volgnummer"]))
        time.sleep(0.005)
        return Response("{}", status=201, content_type="application/json")

    httpserver.expect_request("/api/v1/notificaties", method="POST").respond_with_handler(record)
    klanten = [str(uuid.uuid4()) for _ in range(15)]
    with UnitOfWork(engine, schrijven=True) as uow:
        for volgnummer in range(4):
            for k in klanten:
                uow.notificaties.toevoegen(uuid.UUID(k), "klanten",
                                           json.dumps({"hoofdObject": k, "volgnummer": volgnummer}),
                                           dt.datetime.now(dt.timezone.utc))
        uow.commit()
    settings = Settings(database_url=database_url, **nrc_settings(httpserver.url_for("/api/v1/")))
    relays = [Relay(engine, settings, batch=5).start(), Relay(engine, settings, batch=5).start()]
    try:
        wait_for(lambda: all(r.status == "sent" for r in outbox(engine)), timeout=30)
    finally:
        for relay in relays:
            relay.stop()
    assert sorted(seen) == sorted((k, n) for k in klanten for n in range(4))     # each exactly once
    for k in klanten:
        assert [n for kk, n in seen if kk == k] == [0, 1, 2, 3]
