"""Secrets outside development: short or placeholder secrets stop start-up (klanten_api.auth.controleer_geheimen).

create_app(Settings(...)) is called for real (no mocks); `klanten-api serve` is run as a real process.
The rest of the suite runs with development=True because its secrets are recognisable test values.
"""
from __future__ import annotations

import os
import random
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import base64

import pytest
import requests
import yaml
from hypothesis import given, settings as hypothesis_settings
from hypothesis import strategies as st

from conftest import Api, token
from klanten_api.app import create_app
from klanten_api.settings import DEV_AUTH_CONFIG, PLACEHOLDER_MARKERS, PROJECT_ROOT, ConfigError, Settings, zwak_geheim
from test_privacy_logging import teksten, vang_logs

LABEL = "Zaaksysteem Gemeente"
NRC = "http://127.0.0.1:9/api/v1/"


def sterk() -> str:
    """A strong random secret of 40 bytes (hex: never contains a placeholder marker)."""
    geheim = secrets.token_hex(20)
    assert len(geheim.encode()) == 40
    return geheim


def auth_file(tmp_path: Path, secret: str, label: str = LABEL) -> Path:
    path = tmp_path / f"applicaties-{secrets.token_hex(4)}.yaml"
    path.write_text(yaml.safe_dump({"applicaties": [
        {"label": label, "clientIds": ["zaaksysteem"], "secret": secret, "heeftAlleAutorisaties": True},
        {"label": "Sterk", "clientIds": ["sterk"], "secret": sterk(), "scopes": ["klanten.lezen"]}]}))
    return path


def production(tmp_path: Path, **overrides) -> Settings:
    # outside development the public URL must be configured too (test_host_header.py)
    values = dict(database_url=f"sqlite:///{tmp_path / 'klanten.sqlite3'}", development=False,
                  base_url="https://klanten.gemeente.example")
    values.update(overrides)
    return Settings(**values)


def build(settings: Settings):
    app = create_app(settings)
    if app.relay is not None:
        app.relay.stop()
    app.engine.dispose()
    return app


ZWAK = {
    "kort": "Zq7#pL2!vR9x",                                        # 12 bytes
    "31 bytes": "Zq7#pL2!vR9xK4@mW8$tY1%nB6^cD3&",
    "changeme": "changeme-changeme-Zq7pL2vR9xK4mW8tY1nB",
    "not-for-production": "dev-secret-klanten-api-not-for-production",
    "example": "Zq7pL2vR9xK4mW8tY1nB6cD3-example-secret",
    "weinig tekens": "ab12" * 10,                                  # 40 bytes, 4 distinct characters
}


# ---------------------------------------------------------------- create_app
@pytest.mark.parametrize("soort", list(ZWAK))
def test_weak_application_secret_is_refused(tmp_path, soort):
    geheim = ZWAK[soort]
    with pytest.raises(ConfigError) as info:
        create_app(production(tmp_path, auth_config=auth_file(tmp_path, geheim)))
    message = str(info.value)
    assert LABEL in message, message
    assert geheim not in message
    assert "32" in message
    assert "acceptWeakSecret" in message           # the way out for a secret that cannot change yet


def test_strong_random_secret_is_accepted(tmp_path):
    app = build(production(tmp_path, auth_config=auth_file(tmp_path, sterk())))
    assert app.settings.development is False


def test_the_first_weak_application_among_strong_ones_is_named(tmp_path):
    path = tmp_path / "gemengd.yaml"
    path.write_text(yaml.safe_dump({"applicaties": [
        {"label": "Eerste", "clientIds": ["een"], "secret": sterk(), "heeftAlleAutorisaties": True},
        {"label": "Zwakke app", "clientIds": ["twee", "drie"], "secret": "changeme", "scopes": ["klanten.lezen"]},
        {"label": "Laatste", "clientIds": ["vier"], "secret": sterk(), "scopes": []}]}))
    with pytest.raises(ConfigError) as info:
        create_app(production(tmp_path, auth_config=path))
    assert "Zwakke app" in str(info.value)
    assert "Eerste" not in str(info.value) and "Laatste" not in str(info.value)


@pytest.mark.parametrize("soort", ["kort", "changeme", "not-for-production"])
def test_weak_notifications_secret_is_refused_when_notifications_are_configured(tmp_path, soort):
    geheim = ZWAK[soort]
    settings = production(tmp_path, auth_config=auth_file(tmp_path, sterk()), notifications_api_url=NRC,
                          notifications_client_id="klanten-api", notifications_secret=geheim,
                          notifications_relay=False)
    with pytest.raises(ConfigError) as info:
        create_app(settings)
    assert "KLANTEN_NOTIFICATIONS_SECRET" in str(info.value)
    assert geheim not in str(info.value)


def test_strong_notifications_secret_is_accepted(tmp_path):
    build(production(tmp_path, auth_config=auth_file(tmp_path, sterk()), notifications_api_url=NRC,
                     notifications_client_id="klanten-api", notifications_secret=sterk(),
                     notifications_relay=False))


def test_weak_autorisaties_secret_is_refused(tmp_path):
    geheim = ZWAK["changeme"]
    settings = production(tmp_path, auth_config=auth_file(tmp_path, sterk()),
                          autorisaties_api_url="http://127.0.0.1:9/api/v1/", autorisaties_client_id="klanten-api",
                          autorisaties_secret=geheim)
    with pytest.raises(ConfigError) as info:
        create_app(settings)
    assert "KLANTEN_AUTORISATIES_SECRET" in str(info.value)
    assert geheim not in str(info.value)


def test_development_allows_the_dev_config(tmp_path):
    with pytest.raises(ConfigError):
        create_app(production(tmp_path, auth_config=DEV_AUTH_CONFIG))
    build(production(tmp_path, auth_config=DEV_AUTH_CONFIG, development=True))


# ---------------------------------------------------------------- strength, not spelling (issue #12)
def test_random_secrets_of_32_bytes_are_never_refused():
    """Before: a marker anywhere refused the secret, about 1 in 800 `token_urlsafe(32)` secrets (e.g. `xxx`)."""
    refused = [g for g in (secrets.token_urlsafe(32) for _ in range(20_000)) if zwak_geheim(g)]
    assert refused == [], f"{len(refused)} random secrets refused"


@hypothesis_settings(max_examples=500, deadline=None)
@given(lengte=st.integers(min_value=32, max_value=64), marker=st.sampled_from(PLACEHOLDER_MARKERS),
       where=st.floats(min_value=0, max_value=1), upper=st.booleans())
def test_a_random_secret_that_happens_to_contain_a_marker_is_accepted(lengte, marker, where, upper):
    """32+ random bytes (base64url, as token_urlsafe) with any marker word written over some of its characters.
    The bytes come from `secrets` (hypothesis' own binaries shrink to zeros, which are not a random secret)."""
    random = secrets.token_bytes(lengte)
    geheim = base64.urlsafe_b64encode(random).decode().rstrip("=")
    if len(geheim) - len(marker) < 32:       # the marker may cover only what goes beyond 32 random characters
        geheim += base64.urlsafe_b64encode(random[:len(marker)]).decode()
    pos = int(where * (len(geheim) - len(marker)))
    geheim = geheim[:pos] + (marker.upper() if upper else marker) + geheim[pos + len(marker):]
    assert zwak_geheim(geheim) is None, geheim


@pytest.mark.parametrize("geheim", [
    "changeme-changeme-changeme-changeme", "placeholder-placeholder-placeholder",
    "PASSWORD-password-PASSWORD-password-1", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "secret-secret-secret-secret-secret-secret-x", "dev-secret-klanten-api-not-for-production",
    "conformance-secret-not-for-production", "todo-todo-todo-todo-todo-todo-todo-todo-todo",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "0123456" * 6,
])
def test_placeholders_stay_refused(geheim):
    assert len(geheim.encode()) >= 32
    assert zwak_geheim(geheim) == "a placeholder"


def test_server_with_a_random_secret_containing_xxx_starts_and_answers(server_factory, tmp_path):
    """Over HTTP, outside development: the secret that today's check refused serves requests."""
    geheim = next(g for g in iter(lambda: secrets.token_urlsafe(32), None) if "xxx" not in g.lower())
    geheim = geheim[:20] + "xxx" + geheim[23:]
    srv = server_factory(development=False, base_url="https://klanten.gemeente.example",
                         auth_config=auth_file(tmp_path, geheim))
    r = Api(srv.url).get("/klanten", headers={"Authorization": f"Bearer {token('zaaksysteem', geheim)}"}, auth=False)
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------- acceptWeakSecret (issue #12)
def auth_file_accepting(tmp_path: Path, secret: str, accept) -> Path:
    path = tmp_path / f"applicaties-{secrets.token_hex(4)}.yaml"
    path.write_text(yaml.safe_dump({"applicaties": [
        {"label": LABEL, "clientIds": ["zaaksysteem"], "secret": secret, "heeftAlleAutorisaties": True,
         "acceptWeakSecret": accept},
        {"label": "Sterk", "clientIds": ["sterk"], "secret": sterk(), "scopes": ["klanten.lezen"]}]}))
    return path


@pytest.mark.parametrize("soort", ["kort", "changeme", "not-for-production"])
def test_accept_weak_secret_starts_with_a_warning_naming_the_label(server_factory, tmp_path, soort):
    """A municipality cannot change the secrets its applications already use: the operator says so per
    application; the server starts outside development, warns (label, never the secret) and serves."""
    geheim = ZWAK[soort]
    with vang_logs() as vanger:
        srv = server_factory(development=False, base_url="https://klanten.gemeente.example",
                             auth_config=auth_file_accepting(tmp_path, geheim, True))
    waarschuwingen = vanger.events("weak_secret_accepted")
    assert [(w["level"], w["applicatie"]) for w in waarschuwingen] == [("WARNING", LABEL)], waarschuwingen
    assert "acceptWeakSecret" in waarschuwingen[0]["message"]
    assert not [t for r in vanger.records for t in teksten(r) if geheim in t], "the secret was logged"
    r = Api(srv.url).get("/klanten", headers={"Authorization": f"Bearer {token('zaaksysteem', geheim)}"}, auth=False)
    assert r.status_code == 200, r.text


def test_accept_weak_secret_is_per_application(tmp_path):
    """The key on one application does not cover another weak one."""
    path = tmp_path / "twee.yaml"
    path.write_text(yaml.safe_dump({"applicaties": [
        {"label": "Oud zaaksysteem", "clientIds": ["oud"], "secret": ZWAK["changeme"], "scopes": [],
         "acceptWeakSecret": True},
        {"label": "Nieuw", "clientIds": ["nieuw"], "secret": ZWAK["example"], "scopes": []}]}))
    with pytest.raises(ConfigError) as info:
        create_app(production(tmp_path, auth_config=path))
    assert "'Nieuw'" in str(info.value) and "Oud zaaksysteem" not in str(info.value)


@pytest.mark.parametrize("waarde", ["true", "ja", 1, None])
def test_accept_weak_secret_must_be_a_boolean(tmp_path, waarde):
    with pytest.raises(ConfigError) as info:
        create_app(production(tmp_path, auth_config=auth_file_accepting(tmp_path, sterk(), waarde)))
    assert "'acceptWeakSecret' must be true or false" in str(info.value)


def test_accept_weak_secret_false_is_the_default_refusal(tmp_path):
    with pytest.raises(ConfigError):
        create_app(production(tmp_path, auth_config=auth_file_accepting(tmp_path, ZWAK["changeme"], False)))


# ---------------------------------------------------------------- `klanten-api serve`
def cli() -> list[str]:
    script = Path(sys.executable).with_name("klanten-api")
    return [str(script)] if script.exists() else [sys.executable, "-m", "klanten_api.cli"]


def env_zonder_klanten(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLANTEN_")}
    env.update(extra)
    return env


def free_port() -> int:
    """A free port *below* the ephemeral range: bind(0) elsewhere (other test servers, outgoing
    connections) cannot take it between our check and the server's own bind."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    kandidaten = [random.randrange(10_000, low) for _ in range(50)] if low > 11_000 else [0]
    for kandidaat in kandidaten:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", kandidaat))
            return s.getsockname()[1]
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port")


def run_serve(env: dict, port: int, timeout: float = 20) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([*cli(), "serve", "--port", str(port)], env=env, cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail("`klanten-api serve` started serving with a weak secret instead of refusing")


@pytest.mark.parametrize("config", ["dev-auth.yaml", "short secret"])
def test_serve_refuses_weak_secrets_outside_development(tmp_path, config):
    if config == "dev-auth.yaml":
        path, label = DEV_AUTH_CONFIG, "Ontwikkelaar"
        geheimen = [a["secret"] for a in yaml.safe_load(DEV_AUTH_CONFIG.read_text())["applicaties"]]
    else:
        geheim = ZWAK["kort"]
        path, label, geheimen = auth_file(tmp_path, geheim), LABEL, [geheim]
    env = env_zonder_klanten(KLANTEN_AUTH_CONFIG=str(path),
                             KLANTEN_DATABASE_URL=f"sqlite:///{tmp_path / 'serve.sqlite3'}")
    port = free_port()
    result = run_serve(env, port)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert label in output, output
    for geheim in geheimen:
        assert geheim not in output, "the secret itself was printed"
    assert "Traceback" not in output, output


def test_serve_accepts_the_dev_config_in_development(tmp_path):
    env = env_zonder_klanten(KLANTEN_DEVELOPMENT="true", KLANTEN_AUTH_CONFIG=str(DEV_AUTH_CONFIG),
                             KLANTEN_DATABASE_URL=f"sqlite:///{tmp_path / 'dev.sqlite3'}")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([*cli(), "serve", "--port", str(port)], env=env, cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    def get(path: str, **headers) -> requests.Response:
        # a fresh connection each time: no keep-alive connection the server may be closing meanwhile
        with requests.Session() as s:
            s.trust_env = False
            return s.get(f"{base}{path}", timeout=10, headers={"Connection": "close", **headers})

    try:
        deadline = time.time() + 25
        while True:
            assert proc.poll() is None, f"serve exited with {proc.returncode}: {proc.stdout.read()}"
            try:
                if get("/_health/ready").status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.time() < deadline, "serve did not become ready"
            time.sleep(0.1)
        dev = next(a for a in yaml.safe_load(DEV_AUTH_CONFIG.read_text())["applicaties"]
                   if "klanten-dev" in a["clientIds"])
        r = get("/api/v1/klanten", Authorization=f"Bearer {token('klanten-dev', dev['secret'])}")
        assert r.status_code == 200, r.text
        assert proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
