"""Scopes from the Autorisaties API (DECISIONS #13), against a real loopback server."""
from __future__ import annotations

import socket
import time

import jwt
import pytest
import yaml
from pytest_httpserver import HTTPServer
from werkzeug import Response

from conftest import SECRET, Api, klant_body

AC_CLIENT = "klanten-api-ac"
AC_SECRET = "ac-secret-for-the-test-suite-of-klanten-api"


@pytest.fixture
def ac_auth_config(tmp_path):
    """`remote` has no scopes locally (asked at the AC); `lokaal` has its own scopes."""
    path = tmp_path / "applicaties.yaml"
    path.write_text(yaml.safe_dump({"applicaties": [
        {"label": "Remote", "clientIds": ["remote"], "secret": SECRET},
        {"label": "Lokaal", "clientIds": ["lokaal"], "secret": SECRET, "scopes": ["klanten.lezen"]},
    ]}))
    return path


def ac_answer(*autorisaties, alles=False, client_id="remote"):
    return {"count": 1, "next": None, "previous": None, "results": [{
        "url": "http://ac.example/api/v1/applicaties/1", "clientIds": [client_id], "label": "Remote",
        "heeftAlleAutorisaties": alles, "autorisaties": list(autorisaties)}]}


def ac_server(server_factory, ac_auth_config, url, **extra):
    return server_factory(auth_config=ac_auth_config, autorisaties_api_url=url, autorisaties_client_id=AC_CLIENT,
                          autorisaties_secret=AC_SECRET, autorisaties_timeout=0.5, **extra)


def ac_requests(httpserver):
    return [req for req, _ in httpserver.log if req.path == "/ac/api/v1/applicaties"]


def test_scopes_for_component_kc_are_granted(server_factory, ac_auth_config, httpserver, subject_url):
    httpserver.expect_request("/ac/api/v1/applicaties").respond_with_json(ac_answer(
        {"component": "kc", "scopes": ["klanten.lezen"]},
        {"component": "zrc", "scopes": ["klanten.aanmaken"]}))
    srv = ac_server(server_factory, ac_auth_config, httpserver.url_for("/ac/api/v1/"))
    api = Api(srv.url, "remote")
    assert api.get("/klanten").status_code == 200
    denied = api.post("/klanten", klant_body(subject_url))
    assert denied.status_code == 403 and denied.json()["code"] == "permission_denied"
    req = ac_requests(httpserver)[0]
    assert req.args["clientIds"] == "remote"
    claims = jwt.decode(req.headers["Authorization"].split(" ")[1], AC_SECRET, algorithms=["HS256"])
    assert claims["client_id"] == AC_CLIENT


def test_heeft_alle_autorisaties_grants_everything(server_factory, ac_auth_config, httpserver, subject_url):
    httpserver.expect_request("/ac/api/v1/applicaties").respond_with_json(ac_answer(alles=True))
    srv = ac_server(server_factory, ac_auth_config, httpserver.url_for("/ac/api/v1/"))
    api = Api(srv.url, "remote")
    created = api.post("/klanten", klant_body(subject_url))
    assert created.status_code == 201
    assert api.get(f"{created.json()['url']}/audittrail").status_code == 200


def test_answers_are_cached_for_a_bounded_time(server_factory, ac_auth_config, httpserver):
    httpserver.expect_request("/ac/api/v1/applicaties").respond_with_json(ac_answer(
        {"component": "kc", "scopes": ["klanten.lezen"]}))
    srv = ac_server(server_factory, ac_auth_config, httpserver.url_for("/ac/api/v1/"), autorisaties_cache_seconds=0.5)
    api = Api(srv.url, "remote")
    for _ in range(3):
        assert api.get("/klanten").status_code == 200
    assert len(ac_requests(httpserver)) == 1
    time.sleep(0.6)
    assert api.get("/klanten").status_code == 200
    assert len(ac_requests(httpserver)) == 2


def test_local_scopes_do_not_ask_the_autorisaties_api(server_factory, ac_auth_config, httpserver):
    srv = ac_server(server_factory, ac_auth_config, httpserver.url_for("/ac/api/v1/"))
    assert Api(srv.url, "lokaal").get("/klanten").status_code == 200
    assert ac_requests(httpserver) == []


@pytest.mark.parametrize("status", [500, 403, 404])
def test_a_failing_autorisaties_api_means_403(server_factory, ac_auth_config, httpserver, status):
    httpserver.expect_request("/ac/api/v1/applicaties").respond_with_json({"code": "x"}, status=status)
    srv = ac_server(server_factory, ac_auth_config, httpserver.url_for("/ac/api/v1/"))
    resp = Api(srv.url, "remote").get("/klanten")
    assert resp.status_code == 403
    assert resp.json()["code"] == "not_authenticated_for_ac"


def test_an_unreachable_or_hanging_autorisaties_api_means_403_within_its_timeout(server_factory, ac_auth_config):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    closed_port = sock.getsockname()[1]
    sock.close()
    srv = ac_server(server_factory, ac_auth_config, f"http://127.0.0.1:{closed_port}/api/v1/")
    assert Api(srv.url, "remote").get("/klanten").status_code == 403

    hanging = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    hanging.expect_request("/api/v1/applicaties").respond_with_handler(
        lambda request: (time.sleep(3), Response("{}", status=200))[1])
    hanging.start()
    try:
        srv = ac_server(server_factory, ac_auth_config, hanging.url_for("/api/v1/"))
        started = time.perf_counter()
        resp = Api(srv.url, "remote").get("/klanten")
        assert resp.status_code == 403
        assert time.perf_counter() - started < 2.5
    finally:
        hanging.clear()
        hanging.stop()


def test_unknown_client_in_the_autorisaties_api_is_refused(server_factory, ac_auth_config, httpserver):
    httpserver.expect_request("/ac/api/v1/applicaties").respond_with_json(
        {"count": 0, "next": None, "previous": None, "results": []})
    srv = ac_server(server_factory, ac_auth_config, httpserver.url_for("/ac/api/v1/"))
    resp = Api(srv.url, "remote").get("/klanten")
    assert resp.status_code == 403 and resp.json()["code"] == "permission_denied"
