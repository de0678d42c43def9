"""Contactmoment create, read, update (PUT/PATCH), delete: the reference's bodies and codes, cm-001, cm-002,
invalid-medewerker, and the 500s of the reference that are 4xx here (DECISIONS #20)."""
from __future__ import annotations

import re
import uuid

import pytest

from cm_hulp import BRON, CmApi, cm_body, fout, invalid_params

UUID_URL = re.compile(r"^http://127\.0\.0\.1:\d+/contactmomenten/api/v1/contactmomenten/[0-9a-f-]{36}$")
MAX_1000 = "Zorg ervoor dat dit veld niet meer dan 1000 karakters bevat."


@pytest.fixture
def cm(server) -> CmApi:
    return CmApi(server.url)


def maak(cm: CmApi, **overrides) -> dict:
    r = cm.post("/contactmomenten", cm_body(**overrides))
    assert r.status_code == 201, r.text
    return r.json()


# ---------- create ----------
def test_create_answers_the_reference_representation(cm):
    r = cm.post("/contactmomenten", {"bronorganisatie": BRON, "medewerkerIdentificatie": {
        "identificatie": "m1", "achternaam": "Buurman"}})
    assert r.status_code == 201
    body = r.json()
    assert r.headers["Location"] == body["url"] and UUID_URL.match(body["url"])
    assert list(body) == ["url", "vorigContactmoment", "volgendContactmoment", "bronorganisatie", "registratiedatum",
                          "kanaal", "voorkeurskanaal", "voorkeurstaal", "tekst", "onderwerpLinks", "initiatiefnemer",
                          "medewerker", "medewerkerIdentificatie"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", body["registratiedatum"])
    assert {k: w for k, w in body.items() if k not in ("url", "registratiedatum")} == {
        "vorigContactmoment": None, "volgendContactmoment": None, "bronorganisatie": BRON, "kanaal": "",
        "voorkeurskanaal": "", "voorkeurstaal": "", "tekst": "", "onderwerpLinks": [], "initiatiefnemer": "",
        "medewerker": "", "medewerkerIdentificatie": {"identificatie": "m1", "achternaam": "Buurman",
                                                      "voorletters": "", "voorvoegselAchternaam": ""}}
    assert cm.get(body["url"]).json() == body


def test_create_with_every_field_and_a_naive_registratiedatum(cm):
    body = maak(cm, registratiedatum="2020-01-01T12:00:00", kanaal="email", voorkeurskanaal="telefoon",
                voorkeurstaal="xyz", tekst=12, onderwerpLinks=["https://zaken.example.com/zaak/1"],
                initiatiefnemer="klant", medewerker="https://medewerkers.example.com/404",
                medewerkerIdentificatie=None, klant="http://pre-1.0.0.example.com/ignored", url="http://x/ignored",
                volgendContactmoment="http://x/ignored")
    assert body["registratiedatum"] == "2020-01-01T12:00:00Z"
    assert body["tekst"] == "12"                     # a number is read as a string
    assert body["voorkeurstaal"] == "xyz" and body["initiatiefnemer"] == "klant"
    assert body["medewerker"] == "https://medewerkers.example.com/404"      # cm-003: not fetched
    assert body["medewerkerIdentificatie"] is None and body["volgendContactmoment"] is None
    assert maak(cm, registratiedatum="2020-01-01 13:30+02:00")["registratiedatum"] == "2020-01-01T11:30:00Z"


def test_required_and_the_medewerker_rule_after_the_fields(cm):
    assert invalid_params(cm.post("/contactmomenten", {})) == [fout("bronorganisatie", "required",
                                                                     "Dit veld is vereist.")]
    for body in ({"bronorganisatie": BRON}, {"bronorganisatie": BRON, "medewerker": ""},
                 {"bronorganisatie": BRON, "medewerkerIdentificatie": {}},
                 {"bronorganisatie": BRON, "medewerkerIdentificatie": None}):
        assert invalid_params(cm.post("/contactmomenten", body)) == [fout(
            "nonFieldErrors", "invalid-medewerker", "medewerker or medewerkerIdentificatie must be provided")]


def test_field_errors_are_collected_in_field_order(cm):
    r = cm.post("/contactmomenten", {
        "bronorganisatie": "1234567890", "registratiedatum": "2020-01-01", "kanaal": "x" * 51,
        "voorkeurstaal": "nederlands", "onderwerpLinks": ["not a url", "https://ok.example.com", ""],
        "initiatiefnemer": "foo", "medewerker": "geen url", "medewerkerIdentificatie": {"identificatie": "i" * 25},
        "vorigContactmoment": "http://mock/404"})
    assert invalid_params(r) == [
        fout("vorigContactmoment", "no_match", "Ongeldige hyperlink - Geen overeenkomende URL."),
        fout("bronorganisatie", "invalid-length", "RSIN moet 9 tekens lang zijn."),
        fout("bronorganisatie", "max_length", "Zorg ervoor dat dit veld niet meer dan 9 karakters bevat."),
        fout("registratiedatum", "invalid", "Datetime heeft een ongeldig formaat, gebruik 1 van de volgende "
                                            "formaten: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."),
        fout("kanaal", "max_length", "Zorg ervoor dat dit veld niet meer dan 50 karakters bevat."),
        fout("voorkeurstaal", "max_length", "Zorg ervoor dat dit veld niet meer dan 3 karakters bevat."),
        fout("onderwerpLinks.0", "invalid", "Voer een geldige URL in."),
        fout("onderwerpLinks.2", "blank", "Dit veld mag niet leeg zijn."),
        fout("initiatiefnemer", "invalid_choice", '"foo" is een ongeldige keuze.'),
        fout("medewerker", "invalid", "Voer een geldige URL in."),
        fout("medewerkerIdentificatie.identificatie", "max_length",
             "Zorg ervoor dat dit veld niet meer dan 24 karakters bevat."),
    ]


def test_body_shapes(cm):
    assert invalid_params(cm.post("/contactmomenten", [1, 2])) == [fout(
        "nonFieldErrors", "invalid", "Ongeldige data. Verwacht een dictionary, kreeg een list.")]
    assert invalid_params(cm.post("/contactmomenten", cm_body(tekst={"a": 1}, kanaal=True))) == [
        fout("kanaal", "invalid", "Not a valid string."), fout("tekst", "invalid", "Not a valid string.")]
    assert invalid_params(cm.post("/contactmomenten", cm_body(onderwerpLinks="x", medewerkerIdentificatie="x"))) == [
        fout("onderwerpLinks", "not_a_list", 'Verwachtte een lijst met items, maar kreeg type "str".'),
        fout("medewerkerIdentificatie.nonFieldErrors", "invalid",
             "Ongeldige data. Verwacht een dictionary, kreeg een str.")]
    assert invalid_params(cm.post("/contactmomenten", cm_body(bronorganisatie="123456789"))) == [
        fout("bronorganisatie", "invalid", "Onjuist RSIN nummer.")]
    assert invalid_params(cm.post("/contactmomenten", cm_body(registratiedatum=None))) == [
        fout("registratiedatum", "null", "Dit veld mag niet leeg zijn.")]


# ---------- cm-001 / cm-002 ----------
def test_cm_001_resolution_of_vorig_contactmoment(cm):
    a = maak(cm)
    pad = a["url"].split("127.0.0.1", 1)[1].split("/", 1)[1]
    # another host with the right path, and a bare path, resolve to our contactmoment
    b = maak(cm, vorigContactmoment=f"http://other-host.example.com/{pad}")
    assert b["vorigContactmoment"] == a["url"]
    c = maak(cm)
    d = maak(cm, vorigContactmoment=f"/{c['url'].split('/', 3)[3]}")
    assert d["vorigContactmoment"] == c["url"]
    base = a["url"].rsplit("/contactmomenten/api/v1/", 1)[0]
    onbekend = f"{base}/contactmomenten/api/v1/contactmomenten/{uuid.uuid4()}"
    gevallen = [
        ("not a url", "no_match", "Ongeldige hyperlink - Geen overeenkomende URL."),
        (f"{base}/contactmomenten/api/v1/contactmomenten/", "no_match",
         "Ongeldige hyperlink - Geen overeenkomende URL."),
        (f"{base}/contactmomenten/api/v1/klantcontactmomenten/{uuid.uuid4()}", "incorrect_match",
         "Ongeldige hyperlink - Ongeldige URL"),
        (f"{base}/api/v1/klanten/{uuid.uuid4()}", "incorrect_match", "Ongeldige hyperlink - Ongeldige URL"),
        (onbekend, "does_not_exist", "Ongeldige hyperlink - Object bestaat niet."),
        (f"{base}/contactmomenten/api/v1/contactmomenten/abc", "invalid", "'abc' is geen geldige UUID."),
        ([a["url"]], "incorrect_type", "Ongeldig type. Verwacht een URL, ontving list."),
        ({"url": a["url"]}, "incorrect_type", "Ongeldig type. Verwacht een URL, ontving dict."),
        (12, "incorrect_type", "Ongeldig type. Verwacht een URL, ontving int."),        # the reference: 500
        (True, "incorrect_type", "Ongeldig type. Verwacht een URL, ontving bool."),     # the reference: 500
        ("http://x.nl/" + "a" * 1000, "max_length", MAX_1000),
        (a["url"], "unique", "Dit veld moet uniek zijn."),          # already b's vorigContactmoment
    ]
    for waarde, code, reden in gevallen:
        r = cm.post("/contactmomenten", cm_body(vorigContactmoment=waarde))
        assert invalid_params(r) == [fout("vorigContactmoment", code, reden)], waarde
    assert cm.get("/contactmomenten").json()["count"] == 4        # nothing written by the refusals


def test_cm_002_volgend_follows_repointing_and_clearing(cm):
    a, d = maak(cm), maak(cm)
    b = maak(cm, vorigContactmoment=a["url"])
    assert cm.get(a["url"]).json()["volgendContactmoment"] == b["url"]
    r = cm.patch(b["url"], {"vorigContactmoment": d["url"]})
    assert r.status_code == 200 and r.json()["vorigContactmoment"] == d["url"]
    assert cm.get(a["url"]).json()["volgendContactmoment"] is None
    assert cm.get(d["url"]).json()["volgendContactmoment"] == b["url"]
    # on update the contactmoment itself does not count against uniqueness
    assert cm.patch(b["url"], {"vorigContactmoment": d["url"]}).status_code == 200
    assert cm.patch(b["url"], {"vorigContactmoment": None}).json()["vorigContactmoment"] is None
    assert cm.get(d["url"]).json()["volgendContactmoment"] is None
    zelf = cm.patch(b["url"], {"vorigContactmoment": b["url"]}).json()       # allowed, as the reference
    assert zelf["vorigContactmoment"] == zelf["volgendContactmoment"] == b["url"]
    assert cm.get(b["url"]).json() == zelf


# ---------- update ----------
def test_put_and_patch_merge(cm):
    a = maak(cm, tekst="eerst", onderwerpLinks=["https://a.example.com/1"], medewerker="https://m.example.com/m/7")
    r = cm.put(a["url"], {"bronorganisatie": BRON})
    assert r.status_code == 200 and r.json() == a                       # omitted fields keep their values
    assert invalid_params(cm.put(a["url"], {"tekst": "x"})) == [fout("bronorganisatie", "required",
                                                                       "Dit veld is vereist.")]
    assert cm.put(a["url"], {k: w for k, w in a.items()}).json() == a   # a GET body can be PUT back
    r = cm.patch(a["url"], {"medewerkerIdentificatie": {"achternaam": "Nieuw"}, "onderwerpLinks": []})
    assert r.json()["medewerkerIdentificatie"] == {"identificatie": "m1", "achternaam": "Nieuw", "voorletters": "",
                                                   "voorvoegselAchternaam": ""}
    assert r.json()["onderwerpLinks"] == []
    assert cm.patch(a["url"], {"medewerkerIdentificatie": None}).json() == r.json()    # null changes nothing
    assert cm.patch(a["url"], {}).status_code == 200
    assert invalid_params(cm.patch(a["url"], [1])) == [fout(
        "nonFieldErrors", "invalid", "Ongeldige data. Verwacht een dictionary, kreeg een list.")]


def test_invalid_medewerker_on_update_uses_the_stored_values(cm):
    a = maak(cm, medewerker="https://m.example.com/1", medewerkerIdentificatie=None)
    # as the reference: `new or stored` per field, so this succeeds and leaves neither
    r = cm.patch(a["url"], {"medewerker": ""})
    assert r.status_code == 200 and r.json()["medewerker"] == "" and r.json()["medewerkerIdentificatie"] is None
    assert invalid_params(cm.patch(a["url"], {"tekst": "x"})) == [fout(
        "nonFieldErrors", "invalid-medewerker", "medewerker or medewerkerIdentificatie must be provided")]
    assert cm.patch(a["url"], {"medewerker": "", "medewerkerIdentificatie": {"identificatie": "m2"}}).status_code == 200


def test_unknown_and_malformed_uuids_are_404(cm):
    for pad in (f"/contactmomenten/{uuid.uuid4()}", "/contactmomenten/not-a-uuid"):
        for methode in ("GET", "PUT", "PATCH", "DELETE"):
            r = cm.request(methode, pad, json=cm_body())
            assert r.status_code == 404, (methode, pad, r.text)
            assert r.json()["code"] == "not_found"


# ---------- delete ----------
def test_delete_cascades_and_the_later_one_clears(cm, server):
    a = maak(cm)
    b = maak(cm, vorigContactmoment=a["url"])
    r = cm.delete(a["url"])          # named by b: refused, nothing written (the reference answers 500)
    assert r.status_code == 409
    assert r.headers["Content-Type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "volgend-contactmoment-bestaat" and body["status"] == 409
    assert body["title"] == "Er is een conflict" and "vorigContactmoment" in body["detail"]
    assert cm.get(a["url"]).status_code == 200
    assert cm.delete(b["url"]).status_code == 204
    assert cm.get(a["url"]).json()["volgendContactmoment"] is None
    assert cm.get(b["url"]).status_code == 404
    assert cm.get(f"{b['url']}/audittrail").status_code == 404
    zelf = maak(cm)
    cm.patch(zelf["url"], {"vorigContactmoment": zelf["url"]})
    assert cm.delete(zelf["url"]).status_code == 204          # naming itself does not block its own delete
    assert cm.delete(a["url"]).status_code == 204


# ---------- authorisation ----------
@pytest.mark.parametrize("client_id, methode, pad, status", [
    ("cm-lezer", "GET", "/contactmomenten", 200), ("cm-lezer", "POST", "/contactmomenten", 403),
    ("cm-aanmaker", "POST", "/contactmomenten", 201), ("cm-aanmaker", "GET", "/contactmomenten", 403),
    ("lezer", "GET", "/contactmomenten", 403),                 # klanten.lezen is not contactmomenten.lezen
    ("niets", "GET", "/contactmomenten", 403),
])
def test_scopes(cm, client_id, methode, pad, status):
    r = cm.as_client(client_id).request(methode, pad, json=cm_body() if methode == "POST" else None)
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["code"] == "permission_denied"


def test_scopes_per_operation_on_one_contactmoment(cm):
    a = maak(cm)
    assert cm.as_client("cm-lezer").get(a["url"]).status_code == 200
    assert cm.as_client("cm-lezer").patch(a["url"], {}).status_code == 403
    assert cm.as_client("cm-bijwerker").patch(a["url"], {}).status_code == 200
    assert cm.as_client("cm-bijwerker").delete(a["url"]).status_code == 403
    assert cm.as_client("cm-lezer").get(f"{a['url']}/audittrail").status_code == 403
    assert cm.as_client("auditlezer").get(f"{a['url']}/audittrail").status_code == 200
    assert cm.get(a["url"], auth=False).status_code == 403
    assert cm.as_client("cm-verwijderaar").delete(a["url"]).status_code == 204


def test_relations_have_no_put_or_patch(cm):
    for pad in (f"/klantcontactmomenten/{uuid.uuid4()}", f"/objectcontactmomenten/{uuid.uuid4()}"):
        for methode in ("PUT", "PATCH"):
            r = cm.request(methode, pad, json={})
            assert r.status_code == 405
            assert r.headers["Allow"] == "GET, DELETE, HEAD"
            assert r.json()["detail"] == f'Methode "{methode}" niet toegestaan.'
