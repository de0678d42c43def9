"""Test harness: a real database (SQLite by default, PostgreSQL when KLANTEN_TEST_DATABASE_URL says so),
migrated by Alembic, and real servers on loopback (uvicorn in a thread) spoken to over HTTP."""
from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import jwt
import pytest
import requests
import sqlalchemy as sa
import uvicorn
import yaml

from klanten_api.app import create_app
from klanten_api.settings import Settings
from klanten_api.transport import uvicorn_opties
from storage.database import make_engine, normaliseer_url
from storage.migrate import upgrade
from storage.tables import metadata

SHARED = Path(__file__).resolve().parents[2] / "shared"

# Test applications (KLANTEN_AUTH_CONFIG of the test servers)
SECRET = "test-secret-for-the-klanten-api-test-suite"
ALLE = "alles"                 # heeftAlleAutorisaties
APPS = {
    ALLE: {"label": "Alles app", "heeftAlleAutorisaties": True},
    "lezer": {"label": "Lezer", "scopes": ["klanten.lezen"]},
    "aanmaker": {"label": "Aanmaker", "scopes": ["klanten.aanmaken"]},
    "bijwerker": {"label": "Bijwerker", "scopes": ["klanten.bijwerken"]},
    "verwijderaar": {"label": "Verwijderaar", "scopes": ["klanten.verwijderen"]},
    "auditlezer": {"label": "Auditlezer", "scopes": ["audittrails.lezen"]},
    "niets": {"label": "Niets", "scopes": []},
    "cm-lezer": {"label": "CM lezer", "scopes": ["contactmomenten.lezen"]},
    "cm-aanmaker": {"label": "CM aanmaker", "scopes": ["contactmomenten.aanmaken"]},
    "cm-bijwerker": {"label": "CM bijwerker", "scopes": ["contactmomenten.bijwerken"]},
    "cm-verwijderaar": {"label": "CM verwijderaar", "scopes": ["contactmomenten.verwijderen"]},
}


def token(client_id: str = ALLE, secret: str = SECRET, **claims) -> str:
    payload = {"iss": client_id, "iat": int(time.time()), "client_id": client_id,
               "user_id": "test-gebruiker", "user_representation": "Test Gebruiker", **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


# ---------- database ----------
def _admin_url(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/postgres"


@contextmanager
def eigen_postgres_database(voorvoegsel: str):
    """A new, empty database on the PostgreSQL server of KLANTEN_TEST_DATABASE_URL: yields (its URL, an
    AUTOCOMMIT engine on the server); afterwards its connections are cut and it is dropped."""
    base = normaliseer_url(os.environ["KLANTEN_TEST_DATABASE_URL"])
    naam = f"{voorvoegsel}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{naam}"')
    try:
        yield base.rsplit("/", 1)[0] + f"/{naam}", admin
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{naam}' "
                                 "AND pid <> pg_backend_pid()")
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{naam}"')
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url = os.environ.get("KLANTEN_TEST_DATABASE_URL", "").strip()
    if not url or url.startswith("sqlite"):
        url = url or f"sqlite:///{tmp_path_factory.mktemp('db') / 'klanten.sqlite3'}"
        upgrade(url)
        yield url
        return
    # PostgreSQL: a database of our own on that server, dropped afterwards
    with eigen_postgres_database("klanten_test") as (test_url, _admin):
        upgrade(test_url)
        yield test_url


@pytest.fixture(scope="session")
def engine(database_url):
    eng = make_engine(database_url, pool_size=5, max_overflow=20)
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True)
def _schone_database(request):
    """Every test starts from empty tables (only when it uses the database)."""
    yield
    if "engine" in request.fixturenames or "api" in request.fixturenames or "server" in request.fixturenames:
        leeg_register(request.getfixturevalue("engine"))


def leeg_register(engine) -> None:
    """Delete every row; klant_telling, klant_pagina and contactmoment_pagina are left to the triggers that keep them
    (deleting the klanten and contactmomenten brings them to 0)."""
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table.name not in ("klant_telling", "klant_pagina", "contactmoment_pagina"):
                conn.execute(table.delete())


# ---------- servers ----------
@pytest.fixture(scope="session")
def auth_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("auth") / "applicaties.yaml"
    apps = [{"clientIds": [cid], "secret": SECRET, **spec} for cid, spec in APPS.items()]
    path.write_text(yaml.safe_dump({"applicaties": apps}))
    return path


class Server:
    def __init__(self, app, url: str, uvicorn_server, thread):
        self.app, self.url, self._server, self._thread = app, url, uvicorn_server, thread

    def stop(self):
        if getattr(self.app, "relay", None) is not None:
            self.app.relay.stop()
        self._server.should_exit = True
        self._thread.join(10)


def start_server(settings: Settings, engine=None, **app_kwargs) -> Server:
    app = create_app(settings, engine=engine, **app_kwargs)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # as `klanten-api serve` runs it (protocol with its limits, no uvicorn proxy headers, ...)
    config = uvicorn.Config(app, lifespan="off", **uvicorn_opties(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    return Server(app, f"http://127.0.0.1:{port}", server, thread)


@pytest.fixture(scope="session")
def base_settings(database_url, auth_config) -> Settings:
    # development: the test suite's secrets are recognisable test values (test_secrets.py covers production)
    return Settings(database_url=database_url, auth_config=auth_config, development=True,
                    subject_allowed_hosts=("127.0.0.1", "localhost"), subject_timeout=5.0,
                    validate_responses=True)


@pytest.fixture(scope="session")
def server(base_settings, engine):
    srv = start_server(base_settings, engine)
    yield srv
    srv.stop()


@pytest.fixture
def server_factory(base_settings, engine):
    """Start an extra server with other settings: server_factory(notifications_api_url=...)."""
    started = []

    def make(**overrides) -> Server:
        # another database means another engine (the shared one belongs to the suite's database)
        srv = start_server(replace(base_settings, **overrides), None if "database_url" in overrides else engine)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


# No response body of the whole suite may reveal internals: a traceback, SQL, a driver or a file path.
LEAKS = re.compile(r"Traceback \(most recent call last\)|sqlalchemy\.|psycopg|sqlite3\.|site-packages"
                   r"|File \"/|\bSELECT\b.+\bFROM\b|\bINSERT INTO\b|/(?:work|home|usr|tmp|root)/\S*\.py")
DOCUMENT_PATHS = ("/openapi.yaml", "/openapi.json", "/schema/", "/schema/ui")


def assert_no_leak(response) -> None:
    if any(p in response.url for p in DOCUMENT_PATHS):
        return
    text = response.content.decode("utf-8", "replace")
    found = LEAKS.search(text)
    assert found is None, f"response of {response.request.method} {response.url} reveals internals: {found.group(0)!r}"


class Api:
    """A requests session against a test server, authenticated as `client_id` unless told otherwise."""

    def __init__(self, base: str, client_id: str = ALLE):
        self.base = base
        self.root = f"{base}/api/v1"
        self.session = requests.Session()
        self.session.trust_env = False
        self.client_id = client_id

    def headers(self, extra=None, auth=True):
        h = {"Authorization": f"Bearer {token(self.client_id)}"} if auth else {}
        h.update(extra or {})
        return h

    def request(self, method, path, *, json=None, headers=None, auth=True, **kw):
        url = path if path.startswith("http") else f"{self.root}{path}"
        response = self.session.request(method, url, json=json, headers=self.headers(headers, auth), timeout=30, **kw)
        assert_no_leak(response)
        return response

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def patch(self, path, json=None, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def as_client(self, client_id: str) -> "Api":
        return Api(self.base, client_id)


@pytest.fixture
def api(server) -> Api:
    return Api(server.url)


# ---------- data ----------
def geldig_rsin(seed: int) -> str:
    """A synthetic 9-digit number that passes the 11-proef (for BSN and RSIN fields)."""
    for n in range(seed * 10, seed * 10 + 1000):
        digits = f"{n % 10**8:08d}"
        total = sum(int(c) * w for c, w in zip(digits, (9, 8, 7, 6, 5, 4, 3, 2)))
        last = total % 11
        if last < 10:
            return digits + str(last)
    raise AssertionError("unreachable")


BRONORGANISATIE = "950428139"


@pytest.fixture
def subject_url(httpserver) -> str:
    """A loopback URL that answers 200 (kla-002)."""
    httpserver.expect_request("/subject/200").respond_with_data("ok", status=200)
    return httpserver.url_for("/subject/200")


def klant_body(subject: str | None = None, **overrides) -> dict:
    body = {"bronorganisatie": BRONORGANISATIE, "klantnummer": "1111", "websiteUrl": "http://some.website.com",
            "subjectType": "natuurlijk_persoon"}
    if subject is not None:
        body["subject"] = subject
    else:
        body["subjectIdentificatie"] = {"geslachtsnaam": "Testpersoon"}
    body.update(overrides)
    return body


def wait_for(condition, timeout: float = 10.0, wat: str = "condition"):
    """Poll `condition` every 50 ms until it returns something true (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"{wat}: not met within {timeout} s")


def zonder_nummer(**overrides) -> dict:
    """klant_body without klantnummer: kla-001 generates one."""
    body = klant_body(**overrides)
    del body["klantnummer"]
    return body
