"""`klanten-api register-kanaal` registers kanalen `klanten` and `contactmomenten` once each, as the
reference's commands do."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "klanten_api.cli"]          # this checkout's own code


def run(httpserver, *args):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
           "KLANTEN_NOTIFICATIONS_API_URL": httpserver.url_for("/api/v1/"),
           "KLANTEN_NOTIFICATIONS_CLIENT_ID": "klanten-api", "KLANTEN_NOTIFICATIONS_SECRET": "s" * 32,
           "KLANTEN_BASE_URL": "https://klanten.gemeente.example"}
    return subprocess.run([*CLI, "register-kanaal", *args], env=env, capture_output=True, text=True, timeout=60)


def test_registers_the_kanalen_when_they_do_not_exist(httpserver):
    httpserver.expect_request("/api/v1/kanaal", method="GET").respond_with_json([])
    httpserver.expect_request("/api/v1/kanaal", method="POST").respond_with_json({}, status=201)
    result = run(httpserver)
    assert result.returncode == 0, result.stderr
    assert "kanaal 'klanten' registered" in result.stdout
    assert "kanaal 'contactmomenten' registered" in result.stdout
    assert [req.args["naam"] for req, _ in httpserver.log if req.method == "GET"] == ["klanten", "contactmomenten"]
    posts = [req for req, _ in httpserver.log if req.method == "POST"]
    assert [json.loads(p.get_data()) for p in posts] == [
        {"naam": "klanten", "documentatieLink": "https://klanten.gemeente.example/ref/kanalen/#klanten",
         "filters": ["subject_type"]},
        {"naam": "contactmomenten", "documentatieLink": "https://klanten.gemeente.example/ref/kanalen/#contactmomenten",
         "filters": ["bronorganisatie", "kanaal"]}]
    assert all(p.headers["Authorization"].startswith("Bearer ") for p in posts)


def test_registers_only_the_named_kanaal(httpserver):
    httpserver.expect_request("/api/v1/kanaal", method="GET").respond_with_json([])
    httpserver.expect_request("/api/v1/kanaal", method="POST").respond_with_json({}, status=201)
    result = run(httpserver, "contactmomenten")
    assert result.returncode == 0, result.stderr
    assert [json.loads(req.get_data())["filters"] for req, _ in httpserver.log if req.method == "POST"] == [
        ["bronorganisatie", "kanaal"]]
    assert invalid_kanaal(httpserver).returncode != 0


def invalid_kanaal(httpserver):
    return run(httpserver, "zaken")


def test_does_nothing_when_the_kanalen_exist(httpserver):
    httpserver.expect_request("/api/v1/kanaal", method="GET", query_string="naam=klanten").respond_with_json(
        {"count": 1, "results": [{"naam": "klanten"}]})
    httpserver.expect_request("/api/v1/kanaal", method="GET", query_string="naam=contactmomenten").respond_with_json(
        [{"naam": "contactmomenten"}])
    result = run(httpserver)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("already exists") == 2
    assert [req.method for req, _ in httpserver.log] == ["GET", "GET"]


def test_a_failing_notificaties_api_is_a_non_zero_exit(httpserver):
    httpserver.expect_request("/api/v1/kanaal", method="GET").respond_with_json([])
    httpserver.expect_request("/api/v1/kanaal", method="POST").respond_with_json({"code": "x"}, status=400)
    result = run(httpserver)
    assert result.returncode == 1
    assert "HTTP 400" in result.stderr
