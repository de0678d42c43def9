"""kla-002: a non-blank `subject` must answer HTTP 200 to a GET, checked on create, PUT and PATCH
(reference §3.5, DECISIONS #14, README "Differences" 12): with a timeout, and no requests to loopback or private
addresses unless the host is explicitly allowed (also not via a redirect)."""
from __future__ import annotations

import re
import socket
import threading
import time

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from werkzeug import Response

from conftest import Api, klant_body
from storage.tables import audittrail, klant

# README "Differences" 3: never empty; the text itself is not fixed by the documents (pinned here)
VALIDATIE_DETAIL = "Er is een validatiefout opgetreden."
OPERATIES = ["create", "PUT", "PATCH"]
# what a reason may never show: exception classes, library internals, resolved addresses
INTERNALS = re.compile(r"Error|Exception|Errno|errno|HTTPConnection|urllib3|Max retries|Traceback|object at|"
                       r"\d+\.\d+\.\d+\.\d+|::1|refused|Timeout\(", re.I)


def fout_400(base: str, invalid_params: list) -> dict:
    return {"type": f"{base}/ref/fouten/ValidationError/", "code": "invalid", "title": "Invalid input.",
            "status": 400, "detail": VALIDATIE_DETAIL, "invalidParams": invalid_params}


def status_reden(url: str, status: int) -> str:
    return f"De URL {url} gaf als antwoord HTTP {status}. Geef een geldige URL op."


def assert_subject_fout(resp, base: str, reden: str | None = None) -> str:
    """A 400 with exactly one `subject`/`bad-url` entry; returns its reason (checked exactly when given)."""
    assert resp.status_code == 400, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"] == "application/problem+json"
    body = resp.json()
    assert body.pop("instance").startswith("urn:uuid:")
    [param] = body["invalidParams"]
    if reden is None:
        reden = param["reason"]
    assert body == fout_400(base, [{"name": "subject", "code": "bad-url", "reason": reden}])
    return reden


def assert_ophaalfout(resp, base: str, url: str) -> None:
    """bad-url of the exception kind: fixed prefix, then a short text without internals."""
    reden = assert_subject_fout(resp, base)
    prefix = f"De URL {url} kon niet opgehaald worden. Foutmelding: "
    assert reden.startswith(prefix), reden
    rest = reden[len(prefix):]
    assert rest.strip(), reden
    assert not INTERNALS.search(rest), reden


def tel(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


class Klanten:
    """Runs the same subject through create, PUT or PATCH and checks that a rejection changed nothing."""

    def __init__(self, api: Api, engine):
        self.api, self.engine = api, engine
        self.bestaand = None

    def voorbereiden(self, operatie: str):
        if operatie != "create":
            resp = self.api.post("/klanten", klant_body(klantnummer="1000", voornaam="Voor"))
            assert resp.status_code == 201, resp.text
            self.bestaand = resp.json()

    def stuur(self, operatie: str, subject: str, api: Api | None = None):
        api = api or self.api
        if operatie == "create":
            return api.post("/klanten", klant_body(subject, klantnummer="2000", voornaam="Na"))
        if operatie == "PUT":
            return api.put(self.bestaand["url"], klant_body(subject, klantnummer="1000", voornaam="Na"))
        return api.patch(self.bestaand["url"], {"subject": subject, "voornaam": "Na"})

    def succes(self, operatie: str, resp, subject: str):
        assert resp.status_code == (201 if operatie == "create" else 200), resp.text
        assert resp.json()["subject"] == subject
        assert resp.json()["voornaam"] == "Na"

    def niets_veranderd(self):
        if self.bestaand is None:
            assert tel(self.engine, klant) == 0
            assert tel(self.engine, audittrail) == 0
            assert self.api.get("/klanten").json()["count"] == 0
        else:
            assert self.api.get(self.bestaand["url"]).json() == self.bestaand
            assert tel(self.engine, klant) == 1
            assert tel(self.engine, audittrail) == 1


@pytest.fixture
def klanten(api, engine) -> Klanten:
    return Klanten(api, engine)


def gesloten_poort() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def paden(httpserver) -> list[str]:
    return [req.path for req, _ in httpserver.log]


# ---------- answers ----------
@pytest.mark.parametrize("operatie", OPERATIES)
def test_subject_dat_200_geeft_wordt_geaccepteerd(klanten, httpserver, operatie):
    klanten.voorbereiden(operatie)
    httpserver.expect_request("/personen/1", method="GET").respond_with_data("ok")
    url = httpserver.url_for("/personen/1")
    resp = klanten.stuur(operatie, url)
    klanten.succes(operatie, resp, url)
    assert paden(httpserver) == ["/personen/1"]
    verzoek = httpserver.log[0][0]
    assert verzoek.method == "GET"
    assert "Authorization" not in verzoek.headers     # the caller's token never leaves the server


def test_put_haalt_ook_een_ongewijzigd_subject_opnieuw_op(api, httpserver):
    httpserver.expect_request("/personen/1").respond_with_data("ok")
    url = httpserver.url_for("/personen/1")
    created = api.post("/klanten", klant_body(url))
    assert created.status_code == 201, created.text
    assert api.put(created.json()["url"], klant_body(url)).status_code == 200
    assert api.patch(created.json()["url"], {"subject": url}).status_code == 200
    assert paden(httpserver) == ["/personen/1"] * 3


@pytest.mark.parametrize("status", [404, 500, 201, 204])
@pytest.mark.parametrize("operatie", OPERATIES)
def test_subject_dat_geen_200_geeft_wordt_geweigerd(klanten, httpserver, operatie, status):
    klanten.voorbereiden(operatie)
    httpserver.expect_request("/personen/1").respond_with_data("", status=status)
    url = httpserver.url_for("/personen/1")
    resp = klanten.stuur(operatie, url)
    assert_subject_fout(resp, klanten.api.base, status_reden(url, status))
    klanten.niets_veranderd()
    assert paden(httpserver) == ["/personen/1"]


@pytest.mark.parametrize("operatie", OPERATIES)
def test_redirect_naar_200_wordt_geaccepteerd(klanten, httpserver, operatie):
    klanten.voorbereiden(operatie)
    httpserver.expect_request("/oud").respond_with_response(
        Response(status=302, headers={"Location": httpserver.url_for("/nieuw")}))
    httpserver.expect_request("/nieuw").respond_with_data("ok")
    url = httpserver.url_for("/oud")
    klanten.succes(operatie, klanten.stuur(operatie, url), url)
    assert paden(httpserver) == ["/oud", "/nieuw"]


@pytest.mark.parametrize("operatie", OPERATIES)
def test_redirect_naar_404_wordt_geweigerd(klanten, httpserver, operatie):
    klanten.voorbereiden(operatie)
    httpserver.expect_request("/oud").respond_with_response(Response(status=302, headers={"Location": "/weg"}))
    httpserver.expect_request("/weg").respond_with_data("", status=404)
    url = httpserver.url_for("/oud")
    assert_subject_fout(klanten.stuur(operatie, url), klanten.api.base, status_reden(url, 404))
    klanten.niets_veranderd()
    assert paden(httpserver) == ["/oud", "/weg"]


def test_eindeloze_redirects_worden_geweigerd(klanten, httpserver):
    httpserver.expect_request("/rond").respond_with_response(Response(status=302, headers={"Location": "/rond"}))
    url = httpserver.url_for("/rond")
    started = time.monotonic()
    assert_ophaalfout(klanten.stuur("create", url), klanten.api.base, url)
    assert time.monotonic() - started < 5
    assert 1 <= len(httpserver.log) <= 31
    klanten.niets_veranderd()


# ---------- failures to fetch ----------
@pytest.mark.parametrize("operatie", OPERATIES)
def test_verbinding_geweigerd(klanten, operatie):
    klanten.voorbereiden(operatie)
    url = f"http://127.0.0.1:{gesloten_poort()}/personen/1"
    assert_ophaalfout(klanten.stuur(operatie, url), klanten.api.base, url)
    klanten.niets_veranderd()


def test_onbekende_host(klanten):
    url = "http://bestaat-niet.invalid/personen/1"
    assert_ophaalfout(klanten.stuur("create", url), klanten.api.base, url)
    klanten.niets_veranderd()


@pytest.mark.parametrize("operatie", OPERATIES)
def test_trage_subject_loopt_af_op_de_timeout(server_factory, engine, httpserver, operatie):
    srv = server_factory(subject_timeout=0.5)
    klanten = Klanten(Api(srv.url), engine)
    klanten.voorbereiden(operatie)
    vrij = threading.Event()

    def traag(request):
        vrij.wait(10)
        return Response("te laat", status=200)

    httpserver.expect_request("/traag").respond_with_handler(traag)
    url = httpserver.url_for("/traag")
    try:
        started = time.monotonic()
        resp = klanten.stuur(operatie, url)
        duur = time.monotonic() - started
    finally:
        vrij.set()
    assert_ophaalfout(resp, klanten.api.base, url)
    assert duur < 3, duur
    klanten.niets_veranderd()


# ---------- server-side request forgery ----------
@pytest.fixture(scope="module")
def httpserver_ipv6():
    """A second test server on the IPv6 loopback address (skipped where the machine has none)."""
    try:
        srv = HTTPServer(host="::1", port=0)
        srv.start()
    except OSError:
        pytest.skip("no IPv6 loopback")
    yield srv
    srv.clear()
    if srv.is_running():
        srv.stop()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0.0.0.0", "[::1]"])
@pytest.mark.parametrize("operatie", OPERATIES)
def test_loopback_geweigerd_zonder_toegestane_hosts(server_factory, engine, request, operatie, host):
    doel = request.getfixturevalue("httpserver_ipv6" if host == "[::1]" else "httpserver")
    doel.clear()
    srv = server_factory(subject_allowed_hosts=())
    klanten = Klanten(Api(srv.url), engine)
    klanten.voorbereiden(operatie)
    doel.expect_request("/personen/1").respond_with_data("ok")
    url = f"http://{host}:{doel.port}/personen/1"
    assert_ophaalfout(klanten.stuur(operatie, url), klanten.api.base, url)
    assert doel.log == []
    klanten.niets_veranderd()


@pytest.mark.parametrize("operatie", OPERATIES)
def test_redirect_naar_niet_toegestane_host_geweigerd(server_factory, engine, httpserver, operatie):
    """Only `localhost` is allowed; it redirects to 127.0.0.1 (the same machine under another name): refused."""
    srv = server_factory(subject_allowed_hosts=("localhost",))
    klanten = Klanten(Api(srv.url), engine)
    klanten.voorbereiden(operatie)
    httpserver.expect_request("/geheim").respond_with_data("interne data")
    httpserver.expect_request("/doorsturen").respond_with_response(
        Response(status=302, headers={"Location": f"http://127.0.0.1:{httpserver.port}/geheim"}))
    url = f"http://localhost:{httpserver.port}/doorsturen"
    assert_ophaalfout(klanten.stuur(operatie, url), klanten.api.base, url)
    assert paden(httpserver) == ["/doorsturen"]
    klanten.niets_veranderd()
    # the allowed host itself does work
    httpserver.expect_request("/ok").respond_with_data("ok")
    ok = f"http://localhost:{httpserver.port}/ok"
    klanten.succes(operatie, klanten.stuur(operatie, ok), ok)


# ---------- blank subject ----------
def test_leeg_subject_wordt_niet_gecontroleerd(api, httpserver):
    created = api.post("/klanten", klant_body("", subjectIdentificatie={"geslachtsnaam": "Jansen"}))
    assert created.status_code == 201, created.text
    assert created.json()["subject"] == ""
    url = created.json()["url"]
    put = api.put(url, klant_body("", subjectIdentificatie={"geslachtsnaam": "Jansen"}))
    assert put.status_code == 200, put.text
    patch = api.patch(url, {"subject": ""})
    assert patch.status_code == 200, patch.text
    assert httpserver.log == []


# ---------- a rejected write leaves everything as it was ----------
def test_geweigerde_aanmaak_slaat_niets_op(klanten, httpserver):
    httpserver.expect_request("/personen/1").respond_with_data("", status=404)
    url = httpserver.url_for("/personen/1")
    assert_subject_fout(klanten.stuur("create", url), klanten.api.base, status_reden(url, 404))
    klanten.niets_veranderd()
    # and the klantnummer was not taken
    httpserver.expect_request("/personen/2").respond_with_data("ok")
    assert klanten.stuur("create", httpserver.url_for("/personen/2")).status_code == 201


def test_patch_met_slecht_subject_laat_klant_ongemoeid(api, engine, httpserver):
    httpserver.expect_request("/goed").respond_with_data("ok")
    httpserver.expect_request("/slecht").respond_with_data("", status=404)
    goed, slecht = httpserver.url_for("/goed"), httpserver.url_for("/slecht")
    created = api.post("/klanten", klant_body(goed, voornaam="Voor", adres={"straatnaam": "Laan"}))
    assert created.status_code == 201, created.text
    resp = api.patch(created.json()["url"], {"subject": slecht, "voornaam": "Na", "adres": {"straatnaam": "Weg"}})
    assert_subject_fout(resp, api.base, status_reden(slecht, 404))
    assert api.get(created.json()["url"]).json() == created.json()
    assert tel(engine, audittrail) == 1
