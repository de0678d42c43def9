"""klantcontactmoment (cm-004): contactmoment resolved locally, a klant of this server looked up in our own
database, a foreign klant fetched with the credentials of a configured service (DECISIONS #21); the triple
unique, also under concurrent requests."""
from __future__ import annotations

import threading
import uuid

import jwt
import pytest
import yaml
from werkzeug import Response

from cm_hulp import CmApi, cm_body, fout, invalid_params
from conftest import Api, klant_body

GEEN_LEEG = "Dit veld mag niet leeg zijn."


@pytest.fixture
def cm(server) -> CmApi:
    return CmApi(server.url)


@pytest.fixture
def contactmoment(cm) -> dict:
    return cm.post("/contactmomenten", cm_body()).json()


@pytest.fixture
def klant(server) -> dict:
    r = Api(server.url).post("/klanten", klant_body())
    assert r.status_code == 201, r.text
    return r.json()


def test_create_read_list_delete(cm, contactmoment, klant):
    r = cm.post("/klantcontactmomenten", {"contactmoment": contactmoment["url"], "klant": klant["url"],
                                          "rol": "belanghebbende"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert list(body) == ["url", "contactmoment", "klant", "rol"]
    assert r.headers["Location"] == body["url"] and "/contactmomenten/api/v1/klantcontactmomenten/" in body["url"]
    assert body == {"url": body["url"], "contactmoment": contactmoment["url"], "klant": klant["url"],
                    "rol": "belanghebbende"}
    assert cm.get(body["url"]).json() == body
    # the same klant in the other rol is another relation
    tweede = cm.post("/klantcontactmomenten", {"contactmoment": contactmoment["url"], "klant": klant["url"],
                                               "rol": "gesprekspartner"}).json()
    lijst = cm.get("/klantcontactmomenten").json()
    assert lijst == {"count": 2, "next": None, "previous": None, "results": [body, tweede]}
    assert cm.get("/klantcontactmomenten", params={"klant": klant["url"], "rol": "gesprekspartner"}).json()[
        "results"] == [tweede]
    assert cm.get("/klantcontactmomenten", params={"contactmoment": contactmoment["url"]}).json()["count"] == 2
    assert cm.get("/klantcontactmomenten", params={
        "contactmoment": contactmoment["url"].replace("127.0.0.1", "localhost")}).json()["count"] == 0
    assert invalid_params(cm.get("/klantcontactmomenten?rol=x&klant=y")) == [
        fout("klant", "invalid", "Voer een geldige URL in."),
        fout("rol", "invalid_choice", "Selecteer een geldige keuze. x is geen beschikbare keuze.")]
    assert cm.delete(body["url"]).status_code == 204
    assert cm.get(body["url"]).status_code == 404
    assert cm.delete(body["url"]).status_code == 404
    # deleting the contactmoment takes its relations along
    assert cm.delete(contactmoment["url"]).status_code == 204
    assert cm.get(tweede["url"]).status_code == 404


def test_field_errors_and_a_klant_of_ours_that_does_not_exist(cm, contactmoment, server):
    onbekend = f"{server.url}/api/v1/klanten/{uuid.uuid4()}"
    r = cm.post("/klantcontactmomenten", {"contactmoment": "http://mock/404", "klant": onbekend, "rol": "wrong_value"})
    assert invalid_params(r) == [
        fout("contactmoment", "no_match", "Ongeldige hyperlink - Geen overeenkomende URL."),
        fout("klant", "bad-url", f"De URL {onbekend} gaf als antwoord HTTP 404. Geef een geldige URL op."),
        fout("rol", "invalid_choice", '"wrong_value" is een ongeldige keuze.')]
    assert invalid_params(cm.post("/klantcontactmomenten", {})) == [
        fout("contactmoment", "required", "Dit veld is vereist."), fout("klant", "required", "Dit veld is vereist."),
        fout("rol", "required", "Dit veld is vereist.")]
    assert invalid_params(cm.post("/klantcontactmomenten", {"contactmoment": "", "klant": "", "rol": ""})) == [
        fout("contactmoment", "null", GEEN_LEEG), fout("klant", "blank", GEEN_LEEG),
        fout("rol", "invalid_choice", '"" is een ongeldige keuze.')]
    # the alias path of the Klanten API counts as ours too
    alias = f"{server.url}/klanten/api/v1/klanten/{uuid.uuid4()}"
    assert invalid_params(cm.post("/klantcontactmomenten", {"contactmoment": contactmoment["url"], "klant": alias,
                                                            "rol": "belanghebbende"})) == [
        fout("klant", "bad-url", f"De URL {alias} gaf als antwoord HTTP 404. Geef een geldige URL op.")]
    assert invalid_params(cm.post("/klantcontactmomenten", {"contactmoment": 5, "klant": "not a url",
                                                            "rol": "belanghebbende"})) == [
        fout("contactmoment", "incorrect_type", "Ongeldig type. Verwacht een URL, ontving int."),
        fout("klant", "bad-url", "De URL not a url kon niet opgehaald worden. Foutmelding: de URL is ongeldig of "
                                 "niet eenduidig"),
        fout("klant", "invalid", "Voer een geldige URL in.")]
    assert cm.get("/klantcontactmomenten").json()["count"] == 0


def test_the_klant_alias_path_resolves_locally(cm, contactmoment, klant):
    alias = klant["url"].replace("/api/v1/klanten/", "/klanten/api/v1/klanten/")
    r = cm.post("/klantcontactmomenten", {"contactmoment": contactmoment["url"], "klant": alias, "rol": "belanghebbende"})
    assert r.status_code == 201 and r.json()["klant"] == alias


def test_duplicate_triple_is_400(cm, contactmoment, klant):
    body = {"contactmoment": contactmoment["url"], "klant": klant["url"], "rol": "belanghebbende"}
    assert cm.post("/klantcontactmomenten", body).status_code == 201
    assert invalid_params(cm.post("/klantcontactmomenten", body)) == [fout(
        "nonFieldErrors", "unique", "De velden contactmoment, klant, rol moeten een unieke set zijn.")]


def test_concurrent_duplicates_give_one_201_and_400s(cm, contactmoment, klant):
    body = {"contactmoment": contactmoment["url"], "klant": klant["url"], "rol": "belanghebbende"}
    statussen, start = [], threading.Barrier(6)

    def maak():
        api = CmApi(cm.base)
        start.wait()
        r = api.post("/klantcontactmomenten", body)
        statussen.append((r.status_code, r.json().get("invalidParams")))
    threads = [threading.Thread(target=maak) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(s for s, _ in statussen) == [201, 400, 400, 400, 400, 400]
    assert all(p == [fout("nonFieldErrors", "unique", "De velden contactmoment, klant, rol moeten een unieke set "
                                                      "zijn.")] for s, p in statussen if s == 400)
    assert cm.get("/klantcontactmomenten").json()["count"] == 1


def test_deleting_the_klant_keeps_the_relation(cm, contactmoment, klant, server):
    """Our choice (README): as with two separate services, the relation keeps the klant's URL."""
    r = cm.post("/klantcontactmomenten", {"contactmoment": contactmoment["url"], "klant": klant["url"],
                                          "rol": "belanghebbende"}).json()
    assert Api(server.url).delete(klant["url"]).status_code == 204
    assert cm.get(r["url"]).json() == r


# ---------- a foreign klant (DECISIONS #21) ----------
DIENST_SECRET = "dienst-secret-for-the-foreign-klanten-api-test"


@pytest.fixture
def vreemde_klanten_api(httpserver):
    """A Klanten API elsewhere that answers only with a token of our configured client id."""
    def antwoord(request):
        auth = request.headers.get("Authorization", "")
        try:
            claims = jwt.decode(auth.removeprefix("Bearer "), DIENST_SECRET, algorithms=["HS256"])
        except jwt.PyJWTError:
            return Response("{}", status=403, content_type="application/json")
        if claims.get("client_id") != "wij":
            return Response("{}", status=403, content_type="application/json")
        return Response('{"url": "x"}', status=200 if request.path.endswith("/bestaat") else 404,
                        content_type="application/json")
    httpserver.expect_request("/ander/api/v1/klanten/bestaat").respond_with_handler(antwoord)
    httpserver.expect_request("/ander/api/v1/klanten/weg").respond_with_handler(antwoord)
    httpserver.expect_request("/niet-geconfigureerd/klanten/1").respond_with_handler(antwoord)
    return httpserver


def test_a_foreign_klant_is_fetched_with_configured_credentials(server_factory, vreemde_klanten_api, tmp_path):
    pad = tmp_path / "diensten.yaml"
    pad.write_text(yaml.safe_dump({"diensten": [{"apiRoot": vreemde_klanten_api.url_for("/ander/api/v1/"),
                                                 "clientId": "wij", "secret": DIENST_SECRET}]}))
    srv = server_factory(services_config=pad)
    cm = CmApi(srv.url)
    contactmoment = cm.post("/contactmomenten", cm_body()).json()
    bestaat = vreemde_klanten_api.url_for("/ander/api/v1/klanten/bestaat")
    r = cm.post("/klantcontactmomenten", {"contactmoment": contactmoment["url"], "klant": bestaat,
                                          "rol": "belanghebbende"})
    assert r.status_code == 201, r.text
    weg = vreemde_klanten_api.url_for("/ander/api/v1/klanten/weg")
    assert invalid_params(cm.post("/klantcontactmomenten", {"contactmoment": contactmoment["url"], "klant": weg,
                                                            "rol": "belanghebbende"})) == [
        fout("klant", "bad-url", f"De URL {weg} gaf als antwoord HTTP 404. Geef een geldige URL op.")]
    # a URL outside every configured service is fetched without credentials (as the reference)
    anders = vreemde_klanten_api.url_for("/niet-geconfigureerd/klanten/1")
    assert invalid_params(cm.post("/klantcontactmomenten", {"contactmoment": contactmoment["url"], "klant": anders,
                                                            "rol": "belanghebbende"})) == [
        fout("klant", "bad-url", f"De URL {anders} gaf als antwoord HTTP 403. Geef een geldige URL op.")]
    verzoeken = [req for req, _ in vreemde_klanten_api.log]
    assert verzoeken[0].headers["Authorization"].startswith("Bearer ")
    assert "Authorization" not in verzoeken[-1].headers


def test_a_foreign_klant_on_an_internal_address_is_refused(server_factory, contactmoment):
    srv = server_factory(subject_allowed_hosts=())
    cm = CmApi(srv.url)
    contactmoment = cm.post("/contactmomenten", cm_body()).json()
    url = "http://127.0.0.2:9/klanten/1"
    assert invalid_params(cm.post("/klantcontactmomenten", {"contactmoment": contactmoment["url"], "klant": url,
                                                            "rol": "belanghebbende"})) == [
        fout("klant", "bad-url", f"De URL {url} kon niet opgehaald worden. Foutmelding: het adres is niet "
                                 "toegestaan")]
