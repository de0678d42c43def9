"""`klanten-api register-kanaal` registers kanaal `klanten` once, as the reference's command does."""
import json
import subprocess
from pathlib import Path

CLI = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "klanten-api")


def run(httpserver, *args):
    env = {"PATH": "/usr/bin:/bin", "KLANTEN_NOTIFICATIONS_API_URL": httpserver.url_for("/api/v1/"),
           "KLANTEN_NOTIFICATIONS_CLIENT_ID": "klanten-api", "KLANTEN_NOTIFICATIONS_SECRET": "s" * 32,
           "KLANTEN_BASE_URL": "https://klanten.gemeente.example"}
    return subprocess.run([CLI, "register-kanaal", *args], env=env, capture_output=True, text=True, timeout=60)


def test_registers_the_kanaal_when_it_does_not_exist(httpserver):
    httpserver.expect_request("/api/v1/kanaal", method="GET", query_string="naam=klanten").respond_with_json([])
    httpserver.expect_request("/api/v1/kanaal", method="POST").respond_with_json({}, status=201)
    result = run(httpserver)
    assert result.returncode == 0, result.stderr
    assert "kanaal 'klanten' registered" in result.stdout
    posts = [req for req, _ in httpserver.log if req.method == "POST"]
    assert len(posts) == 1
    assert json.loads(posts[0].get_data()) == {
        "naam": "klanten", "documentatieLink": "https://klanten.gemeente.example/ref/kanalen/#klanten",
        "filters": ["subject_type"]}
    assert posts[0].headers["Authorization"].startswith("Bearer ")


def test_does_nothing_when_the_kanaal_exists(httpserver):
    httpserver.expect_request("/api/v1/kanaal", method="GET").respond_with_json(
        {"count": 1, "results": [{"naam": "klanten"}]})
    result = run(httpserver)
    assert result.returncode == 0
    assert "already exists" in result.stdout
    assert [req.method for req, _ in httpserver.log] == ["GET"]


def test_a_failing_notificaties_api_is_a_non_zero_exit(httpserver):
    httpserver.expect_request("/api/v1/kanaal", method="GET").respond_with_json([])
    httpserver.expect_request("/api/v1/kanaal", method="POST").respond_with_json({"code": "x"}, status=400)
    result = run(httpserver)
    assert result.returncode == 1
    assert "HTTP 400" in result.stderr
