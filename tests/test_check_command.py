"""`klanten-api check` (README "Running in production"): one line per check, exit 0 only when every
configured part works, exit 1 naming the part that does not, and never a secret in what it prints.

Run as a subprocess against real loopback servers: pytest-httpserver for the Notificaties and
Autorisaties APIs, the suite's migrated database, Redis on 127.0.0.1:6379, closed ports for failures.
"""
from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
import yaml
from werkzeug import Response

PROJECT = Path(__file__).resolve().parents[1]
CLI = PROJECT / ".venv" / "bin" / "klanten-api"
COMMAND = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "klanten_api.cli"]

# distinctive, strong secrets: none of them may ever appear in the output
APP_SECRET = "Vq3kZ8rT1mW6yB0nHc5xLp2sDf7gJa9e"
REMOTE_SECRET = "Rb6Ny1Qw8Ek3Tz0Mv5Ux2Io7Pa4Sd9Fg"
NRC_SECRET = "Nc4Hs9Lq2Wy7Bd0Kf5Rt8Zm1Xv6Ge3Ja"
AC_SECRET = "Ac7Jd2Vn5Qk0Tp8Ys3Mh6Wb1Ze4Rx9Lu"
DB_PASSWORD = "Db8Fh3Kw6Pn1Xs4Gq9Vt2Ym7Rc0Lz5Ej"
REDIS_PASSWORD = "Rd5Gk0Wn7Tb2Qx9Hs4Lp1Vm6Zc3Yf8Ja"
SECRETS = (APP_SECRET, REMOTE_SECRET, NRC_SECRET, AC_SECRET, DB_PASSWORD, REDIS_PASSWORD)
NRC_CLIENT = "klanten-api-nrc"
AC_CLIENT = "klanten-api-ac"
REMOTE_CLIENT = "portaal"          # takes its scopes from the Autorisaties API
PARTS = ("auth config", "database", "notificaties api", "autorisaties api", "redis")


def _redis_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def _write_auth(path: Path, apps: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"applicaties": apps}))
    return path


@pytest.fixture
def auth_file(tmp_path) -> Path:
    return _write_auth(tmp_path / "applicaties.yaml", [
        {"label": "Zaaksysteem", "clientIds": ["zaaksysteem"], "secret": APP_SECRET, "heeftAlleAutorisaties": True},
        {"label": "Portaal", "clientIds": [REMOTE_CLIENT], "secret": REMOTE_SECRET},
    ])


@pytest.fixture
def closed_port():
    """A loopback port bound by us but not listening: connecting is refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections (backlog) but never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def _token_ok(request, client_id: str, secret: str) -> bool:
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return False
    try:
        claims = jwt.decode(auth[len("Bearer "):], secret, algorithms=["HS256"])
    except jwt.PyJWTError:
        return False
    return claims.get("client_id") == client_id


def nrc_handler(kanalen=({"naam": "klanten"},)):
    def handle(request):
        if not _token_ok(request, NRC_CLIENT, NRC_SECRET):
            return Response('{"code": "not_authenticated"}', status=403, content_type="application/json")
        wanted = request.args.get("naam")
        found = [k for k in kanalen if wanted is None or k["naam"] == wanted]
        return Response(json.dumps(found), status=200, content_type="application/json")
    return handle


def ac_handler(request):
    if not _token_ok(request, AC_CLIENT, AC_SECRET):
        return Response('{"code": "not_authenticated"}', status=403, content_type="application/json")
    cid = request.args.get("clientIds")
    results = [{"clientIds": [cid], "heeftAlleAutorisaties": False,
                "autorisaties": [{"component": "kc", "scopes": ["klanten.lezen"]}]}] if cid == REMOTE_CLIENT else []
    return Response(json.dumps({"count": len(results), "next": None, "previous": None, "results": results}),
                    status=200, content_type="application/json")


@pytest.fixture
def apis(httpserver):
    """The Notificaties API under /nrc/api/v1/ and the Autorisaties API under /ac/api/v1/, both checking tokens."""
    httpserver.expect_request("/nrc/api/v1/kanaal", method="GET").respond_with_handler(nrc_handler())
    httpserver.expect_request("/ac/api/v1/applicaties", method="GET").respond_with_handler(ac_handler)
    return httpserver


@pytest.fixture
def env(tmp_path, database_url, auth_file, apis) -> dict:
    """A production environment in which every check passes (Redis added by the tests that need it)."""
    return {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
        "PYTHONPATH": str(PROJECT),              # this checkout's code (the script's installed package may be another)
        "KLANTEN_BASE_URL": "https://klanten.gemeente.example",
        "KLANTEN_DATABASE_URL": database_url,
        "KLANTEN_AUTH_CONFIG": str(auth_file),
        "KLANTEN_NOTIFICATIONS_API_URL": apis.url_for("/nrc/api/v1/"),
        "KLANTEN_NOTIFICATIONS_CLIENT_ID": NRC_CLIENT, "KLANTEN_NOTIFICATIONS_SECRET": NRC_SECRET,
        "KLANTEN_NOTIFICATIONS_TIMEOUT": "2",
        "KLANTEN_AUTORISATIES_API_URL": apis.url_for("/ac/api/v1/"),
        "KLANTEN_AUTORISATIES_CLIENT_ID": AC_CLIENT, "KLANTEN_AUTORISATIES_SECRET": AC_SECRET,
        "KLANTEN_AUTORISATIES_TIMEOUT": "2",
    }


class Outcome:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.code = proc.returncode
        self.stdout, self.stderr = proc.stdout, proc.stderr
        self.lines = {}
        for line in proc.stdout.splitlines():
            part, sep, rest = line.partition(": ")
            if sep:
                self.lines[part] = rest

    def status(self, part: str) -> str:
        return self.lines[part]

    def failed(self) -> list[str]:
        return [p for p, rest in self.lines.items() if rest.startswith("FAIL")]

    def __repr__(self):
        return f"exit {self.code}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


def check(env: dict, cwd: Path) -> Outcome:
    proc = subprocess.run([*COMMAND, "check"], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    out = Outcome(proc)
    for secret in SECRETS:
        assert secret not in proc.stdout + proc.stderr, f"a secret was printed:\n{out!r}"
    return out


def assert_only_failure(out: Outcome, part: str, *fragments: str) -> str:
    assert out.code == 1, out
    assert out.failed() == [part], out
    assert part in out.stderr, out
    line = out.status(part)
    for fragment in fragments:
        assert fragment in line, out
    return line


# ---------- all well ----------
def test_everything_configured_and_working_exits_0(env, tmp_path):
    if not _redis_available():
        pytest.skip("no Redis on 127.0.0.1:6379")
    env.update(KLANTEN_REDIS_URL="redis://127.0.0.1:6379/0", KLANTEN_RATE_LIMIT="600/60")
    out = check(env, tmp_path)
    assert out.code == 0, out
    assert out.status("settings") == "ok"
    for part in PARTS:
        assert out.status(part).startswith("ok"), out
    assert "kanaal 'klanten' registered" in out.status("notificaties api")
    assert "all checks passed" in out.stdout


def test_tokens_are_sent_to_both_apis(env, tmp_path, apis):
    out = check(env, tmp_path)
    assert out.code == 0, out
    asked = {req.path: req for req, _ in apis.log}
    assert asked["/nrc/api/v1/kanaal"].args["naam"] == "klanten"
    # the client whose scopes come from the Autorisaties API is the one asked for
    assert asked["/ac/api/v1/applicaties"].args["clientIds"] == REMOTE_CLIENT


def test_unconfigured_optional_parts_are_skipped_not_failed(env, tmp_path):
    for name in ("KLANTEN_NOTIFICATIONS_API_URL", "KLANTEN_AUTORISATIES_API_URL"):
        del env[name]
    out = check(env, tmp_path)
    assert out.code == 0, out
    for part in ("notificaties api", "autorisaties api", "redis"):
        assert out.status(part).startswith("skipped"), out


# ---------- settings and KLANTEN_AUTH_CONFIG ----------
def test_an_unparsable_setting_stops_with_a_clear_message(env, tmp_path):
    env["KLANTEN_RATE_LIMIT"] = "lots"
    out = check(env, tmp_path)
    assert out.code != 0
    assert "KLANTEN_RATE_LIMIT" in out.stderr, out


def test_no_public_url_outside_development_fails(env, tmp_path):
    """Without KLANTEN_BASE_URL or KLANTEN_ALLOWED_HOSTS `serve` refuses to start (test_host_header.py)."""
    del env["KLANTEN_BASE_URL"]
    out = check(env, tmp_path)
    assert_only_failure(out, "settings", "KLANTEN_BASE_URL", "KLANTEN_ALLOWED_HOSTS")
    env["KLANTEN_ALLOWED_HOSTS"] = "klanten.gemeente.example"
    assert check(env, tmp_path).code == 0


def test_no_auth_config_fails(env, tmp_path):
    del env["KLANTEN_AUTH_CONFIG"]
    del env["KLANTEN_AUTORISATIES_API_URL"]      # it would ask for a client id out of the (missing) file
    assert_only_failure(check(env, tmp_path), "auth config", "KLANTEN_AUTH_CONFIG is not set")


def test_a_weak_secret_fails_outside_development_without_being_printed(env, tmp_path):
    weak = "changeme-changeme-changeme-changeme-0123456789"
    _write_auth(Path(env["KLANTEN_AUTH_CONFIG"]), [
        {"label": "Zaaksysteem", "clientIds": ["zaaksysteem"], "secret": weak, "heeftAlleAutorisaties": True},
        {"label": "Portaal", "clientIds": [REMOTE_CLIENT], "secret": REMOTE_SECRET}])
    out = check(env, tmp_path)
    assert_only_failure(out, "auth config", "'Zaaksysteem'", "placeholder")
    assert weak not in out.stdout + out.stderr


def test_development_mode_accepts_a_weak_secret(env, tmp_path):
    _write_auth(Path(env["KLANTEN_AUTH_CONFIG"]), [
        {"label": "Dev", "clientIds": [REMOTE_CLIENT], "secret": "dev"}])
    env["KLANTEN_DEVELOPMENT"] = "true"
    out = check(env, tmp_path)
    assert out.code == 0, out
    assert "KLANTEN_DEVELOPMENT" in out.status("auth config")


def test_invalid_yaml_is_reported_without_quoting_the_secret(env, tmp_path):
    Path(env["KLANTEN_AUTH_CONFIG"]).write_text(
        f'applicaties:\n  - label: Zaaksysteem\n    clientIds: [zaaksysteem]\n    secret: "{APP_SECRET}\n')
    del env["KLANTEN_AUTORISATIES_API_URL"]
    line = assert_only_failure(check(env, tmp_path), "auth config", "not valid YAML", "line 4")
    assert APP_SECRET[:8] not in line


def test_a_wrongly_shaped_auth_config_fails(env, tmp_path):
    Path(env["KLANTEN_AUTH_CONFIG"]).write_text(yaml.safe_dump({"applicaties": [
        {"label": "Zaaksysteem", "clientIds": ["zaaksysteem"], "secret": APP_SECRET, "scopes": ["klanten.alles"]}]}))
    del env["KLANTEN_AUTORISATIES_API_URL"]
    assert_only_failure(check(env, tmp_path), "auth config", "unknown scopes")


# ---------- database ----------
def test_an_unmigrated_database_fails(env, tmp_path):
    leeg = tmp_path / "leeg.sqlite3"
    sqlite3.connect(leeg).execute("CREATE TABLE iets (x INTEGER)").connection.close()
    env["KLANTEN_DATABASE_URL"] = f"sqlite:///{leeg}"
    assert_only_failure(check(env, tmp_path), "database", "not at the newest migration", "klanten-api migrate")


def test_a_missing_sqlite_file_fails_and_is_not_created(env, tmp_path):
    missing = tmp_path / "nergens.sqlite3"
    env["KLANTEN_DATABASE_URL"] = f"sqlite:///{missing}"
    assert_only_failure(check(env, tmp_path), "database", "does not exist")
    assert not missing.exists()


def test_an_unreachable_postgresql_fails_without_printing_the_password(env, tmp_path, closed_port):
    env["KLANTEN_DATABASE_URL"] = f"postgresql://klanten:{DB_PASSWORD}@127.0.0.1:{closed_port}/klanten"
    assert_only_failure(check(env, tmp_path), "database", "cannot connect", f"127.0.0.1:{closed_port}")


# ---------- Notificaties API ----------
def test_notificaties_api_refusing_the_credentials_fails(env, tmp_path):
    env["KLANTEN_NOTIFICATIONS_SECRET"] = "Xy" + NRC_SECRET[2:]      # a strong but wrong secret
    assert_only_failure(check(env, tmp_path), "notificaties api", "credentials refused", "403")


def test_notificaties_api_without_credentials_says_so(env, tmp_path):
    del env["KLANTEN_NOTIFICATIONS_CLIENT_ID"], env["KLANTEN_NOTIFICATIONS_SECRET"]
    assert_only_failure(check(env, tmp_path), "notificaties api", "credentials refused",
                        "KLANTEN_NOTIFICATIONS_CLIENT_ID")


def test_unreachable_notificaties_api_fails(env, tmp_path, closed_port):
    env["KLANTEN_NOTIFICATIONS_API_URL"] = f"http://127.0.0.1:{closed_port}/api/v1/"
    assert_only_failure(check(env, tmp_path), "notificaties api", "cannot connect", str(closed_port))


def test_a_notificaties_api_that_does_not_answer_fails_after_the_timeout(env, tmp_path, silent_port):
    env["KLANTEN_NOTIFICATIONS_API_URL"] = f"http://127.0.0.1:{silent_port}/api/v1/"
    env["KLANTEN_NOTIFICATIONS_TIMEOUT"] = "0.5"
    assert_only_failure(check(env, tmp_path), "notificaties api", "no answer", "KLANTEN_NOTIFICATIONS_TIMEOUT")


def test_a_notificaties_api_server_error_fails(env, tmp_path, httpserver):
    httpserver.expect_request("/kapot/api/v1/kanaal").respond_with_data("oops", status=502)
    env["KLANTEN_NOTIFICATIONS_API_URL"] = httpserver.url_for("/kapot/api/v1/")
    assert_only_failure(check(env, tmp_path), "notificaties api", "HTTP 502")


def test_a_wrong_notificaties_api_root_fails(env, tmp_path, httpserver):
    httpserver.expect_request("/nrc/kanaal").respond_with_data("Not Found", status=404)
    env["KLANTEN_NOTIFICATIONS_API_URL"] = httpserver.url_for("/nrc/")          # not the API root
    assert_only_failure(check(env, tmp_path), "notificaties api", "HTTP 404", "API root")


def test_an_unregistered_kanaal_fails(env, tmp_path, httpserver):
    httpserver.expect_request("/leeg/api/v1/kanaal").respond_with_handler(nrc_handler(kanalen=()))
    env["KLANTEN_NOTIFICATIONS_API_URL"] = httpserver.url_for("/leeg/api/v1/")
    assert_only_failure(check(env, tmp_path), "notificaties api", "not registered", "register-kanaal")


# ---------- Autorisaties API ----------
def test_autorisaties_api_refusing_the_credentials_fails(env, tmp_path):
    env["KLANTEN_AUTORISATIES_SECRET"] = "Zz" + AC_SECRET[2:]
    assert_only_failure(check(env, tmp_path), "autorisaties api", "credentials refused", "403")


def test_unreachable_autorisaties_api_fails(env, tmp_path, closed_port):
    env["KLANTEN_AUTORISATIES_API_URL"] = f"http://127.0.0.1:{closed_port}/api/v1/"
    assert_only_failure(check(env, tmp_path), "autorisaties api", "cannot connect", str(closed_port))


def test_a_remote_client_unknown_to_the_autorisaties_api_fails(env, tmp_path):
    _write_auth(Path(env["KLANTEN_AUTH_CONFIG"]), [
        {"label": "Onbekend", "clientIds": ["onbekend"], "secret": REMOTE_SECRET}])
    assert_only_failure(check(env, tmp_path), "autorisaties api", "'onbekend'", "no application")


# ---------- Redis ----------
def test_unreachable_redis_fails_without_printing_the_password(env, tmp_path, closed_port):
    env.update(KLANTEN_REDIS_URL=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{closed_port}/0", KLANTEN_RATE_LIMIT="600/60")
    assert_only_failure(check(env, tmp_path), "redis", "cannot connect", f"127.0.0.1:{closed_port}")


def test_an_accepted_weak_secret_is_named_by_label_not_shown(tmp_path, env):
    """acceptWeakSecret (issue #12): the check passes and says which application runs on a weak secret."""
    zwak = "changeme-changeme-Zq7pL2vR9xK4mW8tY1nB"
    env["KLANTEN_AUTH_CONFIG"] = str(_write_auth(tmp_path / "zwak.yaml", [
        {"label": "Oud zaaksysteem", "clientIds": ["oud"], "secret": zwak, "heeftAlleAutorisaties": True,
         "acceptWeakSecret": True},
        {"label": "Portaal", "clientIds": [REMOTE_CLIENT], "secret": REMOTE_SECRET}]))
    out = check(env, tmp_path)
    line = out.status("auth config")
    assert line.startswith("ok"), out
    assert "weak secret accepted (acceptWeakSecret) for 'Oud zaaksysteem'" in line, out
    assert zwak not in out.stdout + out.stderr
