"""klant_read (GET /api/v1/klanten/{uuid}) and klant_delete (DELETE) over HTTP: exact bodies for every subject
type, 404s as problem documents, and a delete that leaves nothing behind (reference-behaviour.md §3.9, §3.11,
§6.3, §9.1; DECISIONS #3, #6, #11)."""
from __future__ import annotations

import uuid

import pytest

from conftest import geldig_rsin, klant_body
from klant_verwacht import (  # noqa: F401
    klant,
    PROBLEM_JSON,
    assert_exact,
    create,
    ADRES,
    VERBLIJFSADRES,
    BUITENLAND,
)


def assert_niet_gevonden(api, resp) -> None:
    assert resp.status_code == 404, resp.text
    assert resp.headers["Content-Type"] == PROBLEM_JSON
    assert resp.headers["API-version"] == "1.0.0"
    body = resp.json()
    assert list(body) == ["type", "code", "title", "status", "detail", "instance"], body
    assert body.pop("instance").startswith("urn:uuid:")
    assert body == {"type": f"{api.base}/ref/fouten/NotFound/", "code": "not_found", "title": "Niet gevonden.",
                    "status": 404, "detail": "Niet gevonden."}


BSN = geldig_rsin(31415)

SUBJECT_IDENTIFICATIES = {
    "natuurlijk_persoon": {"inpBsn": BSN, "anpIdentificatie": "anp-1", "inpANummer": "1234567890",
                           "geslachtsnaam": "Testpersoon", "voorvoegselGeslachtsnaam": "van", "voorletters": "T.",
                           "voornamen": "Test", "geslachtsaanduiding": "v", "geboortedatum": "1970-01-01",
                           "verblijfsadres": VERBLIJFSADRES, "subVerblijfBuitenland": BUITENLAND},
    "niet_natuurlijk_persoon": {"innNnpId": "314273268", "annIdentificatie": "ann-1", "statutaireNaam": "Stichting X",
                                "innRechtsvorm": "stichting", "bezoekadres": "Keizersgracht 117",
                                "subVerblijfBuitenland": BUITENLAND},
    "vestiging": {"vestigingsNummer": "000012345678", "handelsnaam": ["Voorbeeld", "Voorbeeld BV"],
                  "verblijfsadres": VERBLIJFSADRES, "subVerblijfBuitenland": BUITENLAND},
}


# ---------- klant_read ----------
def test_read_geeft_exact_de_representatie(api, subject_url):
    """Reference test_read_klant_url: subject, type natuurlijk_persoon, an adres, subjectIdentificatie null."""
    body = klant_body(subject_url, voornaam="Samuel", achternaam="Jackson", emailadres="samuel@example.com",
                      telefoonnummer="0612345678", adres=ADRES)
    url = create(api, body)["url"]
    resp = api.get(url)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["API-version"] == "1.0.0"
    assert "Location" not in resp.headers
    assert_exact(resp.json(), klant(url, subject=subject_url, voornaam="Samuel", achternaam="Jackson",
                                    emailadres="samuel@example.com", telefoonnummer="0612345678", adres=ADRES))


def test_read_met_relatief_pad_en_uuid_in_hoofdletters(api):
    url = create(api, klant_body())["url"]
    klant_uuid = url.rsplit("/", 1)[1]
    resp = api.get(f"/klanten/{klant_uuid}")
    assert resp.status_code == 200
    assert resp.json()["url"] == url
    resp = api.get(f"/klanten/{klant_uuid.upper()}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["url"] == url


@pytest.mark.parametrize("subject_type", list(SUBJECT_IDENTIFICATIES))
def test_read_per_subject_type(api, subject_type):
    """Reference test_read_klant_natuurlijkpersoon / _nietnatuurlijkpersoon / _vestiging."""
    sid = SUBJECT_IDENTIFICATIES[subject_type]
    created = create(api, klant_body(subjectType=subject_type, subjectIdentificatie=sid))
    resp = api.get(created["url"])
    assert resp.status_code == 200, resp.text
    verwacht = klant(created["url"], subjectType=subject_type, subjectIdentificatie=sid)
    assert_exact(resp.json(), verwacht)
    assert_exact(created, verwacht)


@pytest.mark.parametrize("subject_type", list(SUBJECT_IDENTIFICATIES))
def test_read_subject_type_zonder_identificatie(api, subject_url, subject_type):
    url = create(api, klant_body(subject_url, subjectType=subject_type))["url"]
    assert_exact(api.get(url).json(), klant(url, subject=subject_url, subjectType=subject_type,
                                            subjectIdentificatie=None))


def test_read_zonder_subject_type_laat_subject_identificatie_weg(api, subject_url):
    """DECISIONS #6: a klant without subjectType has no subjectIdentificatie key at all."""
    body = klant_body(subject_url)
    del body["subjectType"]
    url = create(api, body)["url"]
    got = api.get(url).json()
    assert "subjectIdentificatie" not in got
    assert_exact(got, klant(url, subject=subject_url, subjectType=None))


def test_read_onbekende_uuid(api):
    create(api, klant_body())
    assert_niet_gevonden(api, api.get(f"/klanten/{uuid.uuid4()}"))


@pytest.mark.parametrize("pad", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g", "%20"])
def test_read_geen_uuid(api, pad):
    assert_niet_gevonden(api, api.get(f"/klanten/{pad}"))


def test_read_van_de_ene_klant_geeft_niet_de_andere(api):
    eerste = create(api, klant_body(klantnummer="1"))
    tweede = create(api, klant_body(klantnummer="2", voornaam="Twee"))
    assert api.get(eerste["url"]).json() == eerste
    assert api.get(tweede["url"]).json() == tweede
    assert tweede["voornaam"] == "Twee" and eerste["voornaam"] == ""


# ---------- klant_delete ----------
def test_delete(api, subject_url):
    url = create(api, klant_body(subject_url, adres=ADRES))["url"]
    resp = api.delete(url)
    assert resp.status_code == 204, resp.text
    assert resp.content == b""
    assert "Content-Type" not in resp.headers
    assert resp.headers.get("Content-Length", "0") == "0"
    assert resp.headers["API-version"] == "1.0.0"


@pytest.mark.parametrize("subject_type", list(SUBJECT_IDENTIFICATIES))
def test_delete_verwijdert_de_klant_met_alles_erbij(api, subject_type):
    url = create(api, klant_body(subjectType=subject_type, subjectIdentificatie=SUBJECT_IDENTIFICATIES[subject_type],
                                 adres=ADRES))["url"]
    assert api.delete(url).status_code == 204
    assert_niet_gevonden(api, api.get(url))
    lijst = api.get("/klanten")
    assert lijst.status_code == 200
    assert lijst.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_tweede_delete_geeft_404(api):
    url = create(api, klant_body())["url"]
    assert api.delete(url).status_code == 204
    assert_niet_gevonden(api, api.delete(url))


def test_audittrail_na_delete_geeft_404(api):
    """Reference test_delete_klant_cascade_audittrails; with DECISIONS #11 the 404 means: no such klant."""
    url = create(api, klant_body())["url"]
    audit = api.get(f"{url}/audittrail")
    assert audit.status_code == 200, audit.text
    assert len(audit.json()) == 1
    audit_url = f"{url}/audittrail/{audit.json()[0]['uuid']}"
    assert api.get(audit_url).status_code == 200
    assert api.delete(url).status_code == 204
    assert_niet_gevonden(api, api.get(f"{url}/audittrail"))
    assert_niet_gevonden(api, api.get(audit_url))


def test_delete_raakt_andere_klanten_niet(api):
    weg = create(api, klant_body(klantnummer="1"))
    blijft = create(api, klant_body(klantnummer="2", subjectType="vestiging",
                                    subjectIdentificatie=SUBJECT_IDENTIFICATIES["vestiging"]))
    assert api.delete(weg["url"]).status_code == 204
    assert_exact(api.get(blijft["url"]).json(), blijft)
    assert api.get("/klanten").json()["count"] == 1
    assert len(api.get(f"{blijft['url']}/audittrail").json()) == 1


def test_na_delete_is_het_klantnummer_weer_vrij(api):
    url = create(api, klant_body())["url"]
    assert api.delete(url).status_code == 204
    nieuw = create(api, klant_body())
    assert nieuw["klantnummer"] == "1111"
    assert nieuw["url"] != url


def test_delete_onbekende_uuid(api):
    url = create(api, klant_body())["url"]
    assert_niet_gevonden(api, api.delete(f"/klanten/{uuid.uuid4()}"))
    assert api.get(url).status_code == 200


@pytest.mark.parametrize("pad", ["not-a-uuid", "123"])
def test_delete_geen_uuid(api, pad):
    assert_niet_gevonden(api, api.delete(f"/klanten/{pad}"))
