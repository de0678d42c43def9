"""The Host header may not write our identifiers (issue #13, item 3).

Without KLANTEN_BASE_URL the URLs the server stores and publishes (the audit trail's hoofdObject and
resourceUrl, the notification's hoofdObject, the `url` of a klant) are built from the request's Host. Outside
development a Host is therefore only used when KLANTEN_ALLOWED_HOSTS lists it (another Host: 400, nothing
written), or never (KLANTEN_BASE_URL set); with neither, `serve` and create_app refuse to start.

The servers here run outside development (strong secrets of their own), over real HTTP, with the outbox of a
Notificaties API that is never reached (nothing listens; the relay is off) so every message stays readable.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import jwt
import pytest
import requests
import sqlalchemy as sa
import yaml

from conftest import klant_body
from klanten_api.app import create_app
from klanten_api.http import host_toegestaan
from klanten_api.settings import ConfigError
from processen import KLANTEN_API, ROOT, ServeProces, vrije_poort
from storage.tables import audittrail, klant, notificatie

AANVALLER = "attacker.example"
PUBLIEK = "https://klanten.gemeente.example"
GEHEIM = secrets.token_urlsafe(48)
NRC = "http://127.0.0.1:9/api/v1/"          # nothing listens: the outbox keeps every message


@pytest.fixture(scope="module")
def sterke_auth(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("auth-productie") / "applicaties.yaml"
    path.write_text(yaml.safe_dump({"applicaties": [
        {"label": "Zaaksysteem", "clientIds": ["zaaksysteem"], "secret": GEHEIM, "heeftAlleAutorisaties": True}]}))
    return path


def kop(**extra) -> dict:
    tok = jwt.encode({"iss": "zaaksysteem", "iat": int(time.time()), "client_id": "zaaksysteem",
                      "user_id": "u", "user_representation": "U"}, GEHEIM, algorithm="HS256")
    return {"Authorization": f"Bearer {tok}", **extra}


@pytest.fixture
def productie(server_factory, sterke_auth, engine):
    """A server outside development; start it with allowed_hosts=... or base_url=..."""
    def make(**overrides):
        return server_factory(development=False, auth_config=sterke_auth, notifications_api_url=NRC,
                              notifications_relay=False, **overrides)
    return make


def sessie() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def opgeslagen(engine) -> str:
    """Every stored klant, audit row and outbox message, as one text."""
    with engine.connect() as conn:
        rijen = [*conn.execute(sa.select(klant)), *conn.execute(sa.select(audittrail)),
                 *conn.execute(sa.select(notificatie))]
    return "\n".join(repr(tuple(r)) for r in rijen)


def test_a_write_with_a_foreign_host_is_refused_and_leaves_no_trace(productie, engine):
    srv = productie(allowed_hosts=("127.0.0.1", "klanten.gemeente.example"))
    s = sessie()
    root = f"{srv.url}/api/v1"
    vreemd = {"Host": AANVALLER}

    aangemaakt = s.post(f"{root}/klanten", json=klant_body(klantnummer="7001"), headers=kop(**vreemd), timeout=10)
    assert aangemaakt.status_code == 400, aangemaakt.text
    assert aangemaakt.headers["Content-Type"] == "application/problem+json"
    assert aangemaakt.json()["code"] == "disallowed_host"
    assert AANVALLER not in aangemaakt.text
    assert opgeslagen(engine) == "", "a refused write stored something"

    # a klant made under an allowed name; a foreign Host may not change it nor read it under its own name
    goed = s.post(f"{root}/klanten", json=klant_body(klantnummer="7002"), headers=kop(), timeout=10)
    assert goed.status_code == 201, goed.text
    url = goed.json()["url"]
    assert url.startswith(f"{srv.url}/api/v1/klanten/")
    for methode, body in (("PATCH", {"functie": "x"}), ("PUT", klant_body(klantnummer="7002")), ("DELETE", None),
                          ("GET", None)):
        r = s.request(methode, url, json=body, headers=kop(**vreemd), timeout=10)
        assert r.status_code == 400, (methode, r.status_code, r.text)
        assert AANVALLER not in r.text + str(r.headers)

    # the allowed name with another port, and in other letters, is that name
    anders = s.get(url, headers=kop(Host="KLANTEN.gemeente.example:8443"), timeout=10)
    assert anders.status_code == 200 and anders.json()["url"].startswith("http://klanten.gemeente.example:8443/")

    audit = s.get(f"{url}/audittrail", headers=kop(), timeout=10)
    assert audit.status_code == 200 and len(audit.json()) == 1, audit.text
    assert AANVALLER not in audit.text
    opslag = opgeslagen(engine)
    assert "/api/v1/klanten/" in opslag and AANVALLER not in opslag
    with engine.connect() as conn:
        berichten = [r.bericht for r in conn.execute(sa.select(notificatie))]
    assert len(berichten) == 1 and f'"hoofdObject":"{url}"' in berichten[0].replace(" ", ""), berichten


def test_with_a_base_url_the_host_is_never_used(productie, engine):
    srv = productie(base_url=PUBLIEK)
    s = sessie()
    r = s.post(f"{srv.url}/api/v1/klanten", json=klant_body(klantnummer="7003"), headers=kop(Host=AANVALLER),
               timeout=10)
    assert r.status_code == 201, r.text
    assert r.json()["url"].startswith(f"{PUBLIEK}/api/v1/klanten/")
    assert AANVALLER not in r.text + str(r.headers) + opgeslagen(engine)


def test_a_forwarded_host_must_be_allowed_too(productie, engine):
    srv = productie(allowed_hosts=("klanten.gemeente.example",), trusted_proxies=("127.0.0.1",))
    s = sessie()
    root = f"{srv.url}/api/v1"
    vreemd = s.post(f"{root}/klanten", json=klant_body(klantnummer="7004"), timeout=10,
                    headers=kop(**{"X-Forwarded-Host": AANVALLER, "X-Forwarded-Proto": "https"}))
    assert vreemd.status_code == 400, vreemd.text
    assert vreemd.json()["type"].startswith("https://klanten.gemeente.example/ref/fouten/")
    goed = s.post(f"{root}/klanten", json=klant_body(klantnummer="7004"), timeout=10,
                  headers=kop(**{"X-Forwarded-Host": "klanten.gemeente.example", "X-Forwarded-Proto": "https"}))
    assert goed.status_code == 201, goed.text
    assert goed.json()["url"].startswith(f"{PUBLIEK}/api/v1/klanten/")
    assert AANVALLER not in opgeslagen(engine)


def test_health_checks_answer_under_any_host(productie):
    """A load balancer asks by IP address: the operations endpoints build no URL and write nothing."""
    srv = productie(allowed_hosts=("klanten.gemeente.example",))
    for pad in ("/_health/live", "/_health/ready"):
        assert sessie().get(f"{srv.url}{pad}", headers={"Host": "10.0.0.7:8000"}, timeout=10).status_code == 200


@pytest.mark.parametrize("host, toegestaan", [
    ("klanten.gemeente.example", True), ("klanten.gemeente.example:8443", True), ("Klanten.Gemeente.Example", True),
    ("intern:8000", True), ("intern:8001", False), ("intern", False), ("[::1]:8000", True),
    ("attacker.example", False), ("klanten.gemeente.example.attacker.example", False),
    ("klanten.gemeente.example@attacker.example", False), ("", False), (None, False),
])
def test_host_toegestaan(host, toegestaan):
    assert host_toegestaan(host, ("klanten.gemeente.example", "intern:8000", "[::1]")) is toegestaan


def test_create_app_refuses_to_start_outside_development_without_a_public_url(base_settings, sterke_auth):
    from dataclasses import replace
    with pytest.raises(ConfigError, match="KLANTEN_BASE_URL.*KLANTEN_ALLOWED_HOSTS"):
        create_app(replace(base_settings, development=False, auth_config=sterke_auth))


def test_serve_refuses_to_start_outside_development_without_a_public_url(sterke_auth, tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT),
           "KLANTEN_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}", "KLANTEN_AUTH_CONFIG": str(sterke_auth)}
    try:
        result = subprocess.run([*KLANTEN_API, "serve", "--port", str(vrije_poort())], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("`klanten-api serve` started without KLANTEN_BASE_URL or KLANTEN_ALLOWED_HOSTS")
    assert result.returncode == 2, result
    assert "configuration error" in result.stderr and "KLANTEN_ALLOWED_HOSTS" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "serve.sqlite3").exists(), "serve migrated a database before refusing"


def test_serve_with_allowed_hosts_refuses_another_host(sterke_auth, tmp_path):
    env = {"KLANTEN_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}", "KLANTEN_AUTH_CONFIG": str(sterke_auth),
           "KLANTEN_ALLOWED_HOSTS": "127.0.0.1"}
    srv = ServeProces(env, tmp_path / "serve.log", workers=2)
    try:
        srv.wacht_tot_klaar()
        s = sessie()
        assert s.get(f"{srv.root}/klanten", headers=kop(), timeout=10).status_code == 200
        vreemd = s.post(f"{srv.root}/klanten", json=klant_body(), headers=kop(Host=AANVALLER), timeout=10)
        assert vreemd.status_code == 400 and vreemd.json()["code"] == "disallowed_host", vreemd.text
    finally:
        srv.stop()
