"""klant_create (POST /api/v1/klanten) over HTTP: exact bodies, defaults, the three subject types and the
validation matrix with the reference implementation's codes, Dutch reasons and order
(reference-behaviour.md §2.3, §2.6, §3.1-3.4, §3.5.1, §3.8; DECISIONS #1, #6, #14, #16, #17)."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from conftest import BRONORGANISATIE, geldig_rsin, klant_body
from klant_verwacht import (  # noqa: F401
    klant,
    PROBLEM_JSON,
    VALIDATIE_DETAIL,
    WEBSITE,
    REQUIRED,
    BLANK,
    NULL,
    INVALID_SUBJECT,
    INVALID_EMAIL,
    UNIQUE,
    MIN_VALUE,
    ELFPROEF,
    invalid_choice,
    not_a_dict,
    assert_exact,
    create,
    adres,
    natuurlijk_persoon,
    niet_natuurlijk_persoon,
    vestiging,
    verblijfsadres,
    buitenland,
)


NOT_A_STRING = ("invalid", "Not a valid string.")
NUL = ("null_characters_not_allowed", "Null-tekens zijn niet toegestaan.")
ONLY_DIGITS = ("only-digits", "Waarde moet numeriek zijn.")
INVALID_LENGTH = ("invalid-length", "RSIN moet 9 tekens lang zijn.")
A_NUMMER = ("a-nummer-incorrect-format", "inpA_nummer must consist of 10 digits")
INVALID_URL = ("invalid", "Voer een geldige URL in.")
INVALID_INTEGER = ("invalid", "Een geldig getal is vereist.")
MAX_VALUE = ("max_value", "Zorg ervoor dat deze waarde kleiner is dan of gelijk is aan 99999.")


def max_length(n):
    return "max_length", f"Zorg ervoor dat dit veld niet meer dan {n} karakters bevat."


NOT_A_LIST = ("not_a_list", 'Verwachtte een lijst met items, maar kreeg type "str".')


# ---------- helpers ----------


def assert_validatiefout(api, resp, *params) -> None:
    """400 ValidatieFout with exactly these invalidParams (name, code, reason), in this order."""
    assert resp.status_code == 400, resp.text
    assert resp.headers["Content-Type"] == PROBLEM_JSON
    assert resp.headers["API-version"] == "1.0.0"
    body = resp.json()
    assert list(body) == ["type", "code", "title", "status", "detail", "instance", "invalidParams"], body
    assert body["instance"].startswith("urn:uuid:"), body["instance"]
    del body["instance"]
    assert body == {
        "type": f"{api.base}/ref/fouten/ValidationError/", "code": "invalid", "title": "Invalid input.",
        "status": 400, "detail": VALIDATIE_DETAIL,
        "invalidParams": [{"name": name, "code": code, "reason": reason} for name, code, reason in params],
    }
    for param in body["invalidParams"]:
        assert list(param) == ["name", "code", "reason"]


def aantal_klanten(api) -> int:
    resp = api.get("/klanten")
    assert resp.status_code == 200, resp.text
    return resp.json()["count"]


def assert_afgewezen(api, body, *params) -> None:
    """The create is refused with exactly these errors and leaves nothing behind."""
    resp = api.post("/klanten", body)
    assert_validatiefout(api, resp, *params)
    assert aantal_klanten(api) == 0


def assert_klant_url(api, url: str) -> None:
    assert re.fullmatch(rf"{re.escape(api.root)}/klanten/[0-9a-f]{{8}}-[0-9a-f]{{4}}-4[0-9a-f]{{3}}-"
                        rf"[89ab][0-9a-f]{{3}}-[0-9a-f]{{12}}", url), url


def body_sid(subject_type: str, sid) -> dict:
    """A body without subject whose subjectIdentificatie is `sid`."""
    return klant_body(subjectType=subject_type, subjectIdentificatie=sid)


# ---------- the happy path ----------
def test_minimale_create_geeft_exact_de_representatie(api, subject_url):
    resp = api.post("/klanten", klant_body(subject_url))
    assert resp.status_code == 201, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["API-version"] == "1.0.0"
    body = resp.json()
    assert_klant_url(api, body["url"])
    assert resp.headers["Location"] == body["url"]
    assert_exact(body, klant(body["url"], subject=subject_url))
    assert aantal_klanten(api) == 1


def test_defaults_van_een_klant_met_alleen_subject_identificatie(api):
    body = create(api, klant_body())
    assert_exact(body, klant(body["url"], subjectIdentificatie=natuurlijk_persoon(geslachtsnaam="Testpersoon")))


def test_url_in_de_body_en_onbekende_sleutels_worden_genegeerd(api, subject_url):
    eigen_url = f"{api.root}/klanten/00000000-0000-4000-8000-000000000000"
    body = create(api, klant_body(subject_url, url=eigen_url, onbekend="x", adres={"straatnaam": "A", "extra": 1}))
    assert body["url"] != eigen_url
    assert_exact(body, klant(body["url"], subject=subject_url, adres=adres(straatnaam="A")))


def test_snake_case_sleutels_zijn_onbekende_sleutels(api):
    """DECISIONS #16: input keys are camelCase only."""
    body = klant_body()
    del body["websiteUrl"]
    body["website_url"] = WEBSITE
    assert_afgewezen(api, body, ("websiteUrl", *REQUIRED))


def test_zonder_klantnummer_genereert_de_server_er_een(api):
    """DECISIONS #1 (kla-001)."""
    body = klant_body()
    del body["klantnummer"]
    resp = api.post("/klanten", body)
    assert resp.status_code == 201, resp.text
    got = resp.json()
    nummer = got["klantnummer"]
    assert isinstance(nummer, str) and 1 <= len(nummer) <= 8
    assert_exact(got, klant(got["url"], klantnummer=nummer,
                            subjectIdentificatie=natuurlijk_persoon(geslachtsnaam="Testpersoon")))


def test_alle_velden_en_adres(api, subject_url):
    """Reference test_create_klant_url: huisnummer "117" (a string) is accepted as 117."""
    body = klant_body(subject_url, bedrijfsnaam="Voorbeeld BV", functie="inkoper", voornaam="Samuel",
                      voorvoegselAchternaam="van der", achternaam="Jackson", telefoonnummer="0612345678",
                      emailadres="samuel.jackson@example.com",
                      adres={"straatnaam": "Keizersgracht", "huisnummer": "117", "huisletter": "A",
                             "huisnummertoevoeging": "bis", "postcode": "1015CJ", "woonplaatsnaam": "Amsterdam",
                             "landcode": "6030"})
    got = create(api, body)
    verwacht = klant(got["url"], subject=subject_url, bedrijfsnaam="Voorbeeld BV", functie="inkoper",
                     voornaam="Samuel", voorvoegselAchternaam="van der", achternaam="Jackson",
                     telefoonnummer="0612345678", emailadres="samuel.jackson@example.com",
                     adres=adres(straatnaam="Keizersgracht", huisnummer=117, huisletter="A",
                                 huisnummertoevoeging="bis", postcode="1015CJ", woonplaatsnaam="Amsterdam",
                                 landcode="6030"))
    assert_exact(got, verwacht)
    read = api.get(got["url"])
    assert read.status_code == 200
    assert_exact(read.json(), verwacht)


def test_adres_leeg_object_geeft_een_leeg_adres_en_null_geen_adres(api):
    got = create(api, klant_body(adres={}))
    assert got["adres"] == adres()
    got = create(api, klant_body(klantnummer="2222", adres=None))
    assert got["adres"] is None


# ---------- the three subject types ----------
VOLLEDIG_VERBLIJFSADRES = {"aoaIdentificatie": "0363200000218908", "wplWoonplaatsNaam": "Amsterdam",
                           "gorOpenbareRuimteNaam": "Keizersgracht", "aoaPostcode": "1015CJ", "aoaHuisnummer": 117,
                           "aoaHuisletter": "A", "aoaHuisnummertoevoeging": "bis",
                           "inpLocatiebeschrijving": "achterom"}
VOLLEDIG_BUITENLAND = {"lndLandcode": "5010", "lndLandnaam": "Belgie", "subAdresBuitenland1": "Rue 1",
                       "subAdresBuitenland2": "1000 Brussel", "subAdresBuitenland3": "Brabant"}


def test_natuurlijk_persoon_volledig(api):
    bsn = geldig_rsin(4242)
    sid = {"inpBsn": bsn, "anpIdentificatie": "anp-1", "inpANummer": "1234567890", "geslachtsnaam": "Testpersoon",
           "voorvoegselGeslachtsnaam": "van", "voorletters": "T.P.", "voornamen": "Test Persoon",
           "geslachtsaanduiding": "o", "geboortedatum": "1970-01-01",
           "verblijfsadres": VOLLEDIG_VERBLIJFSADRES, "subVerblijfBuitenland": VOLLEDIG_BUITENLAND}
    got = create(api, body_sid("natuurlijk_persoon", sid))
    verwacht = klant(got["url"], subjectIdentificatie=natuurlijk_persoon(
        inpBsn=bsn, anpIdentificatie="anp-1", inpANummer="1234567890", geslachtsnaam="Testpersoon",
        voorvoegselGeslachtsnaam="van", voorletters="T.P.", voornamen="Test Persoon", geslachtsaanduiding="o",
        geboortedatum="1970-01-01", verblijfsadres=verblijfsadres(**VOLLEDIG_VERBLIJFSADRES),
        subVerblijfBuitenland=buitenland(**VOLLEDIG_BUITENLAND)))
    assert_exact(got, verwacht)
    assert_exact(api.get(got["url"]).json(), verwacht)


def test_natuurlijk_persoon_als_in_de_referentietest(api):
    """Reference test_create_klant_natuurlijkpersoon: no subject; nested defaults are filled in."""
    sid = {"anpIdentificatie": "123", "geslachtsnaam": "Jackson", "voornamen": "Samuel",
           "geboortedatum": "1948-12-21",
           "verblijfsadres": {"aoaIdentificatie": "1234", "wplWoonplaatsNaam": "East Meaganchester",
                              "gorOpenbareRuimteNaam": "New Amsterdam", "aoaHuisnummer": 21},
           "subVerblijfBuitenland": {"lndLandcode": "ABCD", "lndLandnaam": "Hollywood"}}
    got = create(api, body_sid("natuurlijk_persoon", sid))
    assert_exact(got, klant(got["url"], subjectIdentificatie=natuurlijk_persoon(
        anpIdentificatie="123", geslachtsnaam="Jackson", voornamen="Samuel", geboortedatum="1948-12-21",
        verblijfsadres=verblijfsadres(aoaIdentificatie="1234", wplWoonplaatsNaam="East Meaganchester",
                                      gorOpenbareRuimteNaam="New Amsterdam", aoaHuisnummer=21),
        subVerblijfBuitenland=buitenland(lndLandcode="ABCD", lndLandnaam="Hollywood"))))


def test_niet_natuurlijk_persoon(api):
    """Reference test_create_klant_nietnatuurlijkpersoon."""
    sid = {"innNnpId": "314273268", "annIdentificatie": "", "statutaireNaam": "Voorbeeld Stichting",
           "innRechtsvorm": "europese_naamloze_vennootschap", "bezoekadres": "Keizersgracht 117, Amsterdam",
           "subVerblijfBuitenland": {"lndLandcode": "ABCD", "lndLandnaam": "Hollywood"}}
    got = create(api, body_sid("niet_natuurlijk_persoon", sid))
    verwacht = klant(got["url"], subjectType="niet_natuurlijk_persoon", subjectIdentificatie=niet_natuurlijk_persoon(
        innNnpId="314273268", statutaireNaam="Voorbeeld Stichting", innRechtsvorm="europese_naamloze_vennootschap",
        bezoekadres="Keizersgracht 117, Amsterdam",
        subVerblijfBuitenland=buitenland(lndLandcode="ABCD", lndLandnaam="Hollywood")))
    assert_exact(got, verwacht)
    assert_exact(api.get(got["url"]).json(), verwacht)


def test_vestiging(api):
    """The reference's probe example (§3.2), subject "" and a handelsnaam list."""
    body = klant_body(klantnummer="n21", subject="", subjectType="vestiging", subjectIdentificatie={
        "vestigingsNummer": "123", "handelsnaam": ["WB", "WB2"],
        "verblijfsadres": {"aoaIdentificatie": "1", "gorOpenbareRuimteNaam": "x"},
        "subVerblijfBuitenland": {"lndLandcode": "6030", "lndLandnaam": "NL"}})
    got = create(api, body)
    verwacht = klant(got["url"], klantnummer="n21", subjectType="vestiging", subjectIdentificatie=vestiging(
        vestigingsNummer="123", handelsnaam=["WB", "WB2"],
        verblijfsadres=verblijfsadres(aoaIdentificatie="1", gorOpenbareRuimteNaam="x"),
        subVerblijfBuitenland=buitenland(lndLandcode="6030", lndLandnaam="NL")))
    assert_exact(got, verwacht)
    assert_exact(api.get(got["url"]).json(), verwacht)


def test_vestiging_zonder_handelsnaam_geeft_lege_lijst_en_lege_items_mogen(api):
    got = create(api, body_sid("vestiging", {"vestigingsNummer": "1"}))
    assert got["subjectIdentificatie"] == vestiging(vestigingsNummer="1")
    got = create(api, klant_body(klantnummer="2", subjectType="vestiging",
                                 subjectIdentificatie={"handelsnaam": ["", "WB"]}))
    assert got["subjectIdentificatie"] == vestiging(handelsnaam=["", "WB"])


def test_subject_type_met_subject_zonder_identificatie_geeft_null(api, subject_url):
    for nummer, soort in enumerate(("natuurlijk_persoon", "niet_natuurlijk_persoon", "vestiging")):
        got = create(api, klant_body(subject_url, klantnummer=str(nummer), subjectType=soort))
        assert_exact(got, klant(got["url"], klantnummer=str(nummer), subject=subject_url, subjectType=soort,
                                subjectIdentificatie=None))


# ---------- subjectType absent or null (DECISIONS #6) ----------
def test_subject_type_afwezig_is_null_en_subject_identificatie_ontbreekt(api, subject_url):
    body = klant_body(subject_url)
    del body["subjectType"]
    resp = api.post("/klanten", body)
    assert resp.status_code == 201, resp.text
    got = resp.json()
    assert "subjectIdentificatie" not in got
    assert_exact(got, klant(got["url"], subject=subject_url, subjectType=None))
    read = api.get(got["url"])
    assert read.status_code == 200
    assert_exact(read.json(), klant(got["url"], subject=subject_url, subjectType=None))


def test_subject_type_null_is_als_afwezig(api, subject_url):
    got = create(api, klant_body(subject_url, subjectType=None))
    assert_exact(got, klant(got["url"], subject=subject_url, subjectType=None))


def test_subject_identificatie_zonder_subject_type_wordt_niet_opgeslagen(api, subject_url):
    body = klant_body(subject_url, subjectIdentificatie={"geslachtsnaam": "Testpersoon"})
    del body["subjectType"]
    got = create(api, body)
    assert_exact(got, klant(got["url"], subject=subject_url, subjectType=None))


def test_subject_identificatie_zonder_subject_type_en_zonder_subject_is_invalid_subject(api):
    body = klant_body()
    del body["subjectType"]
    assert_afgewezen(api, body, ("nonFieldErrors", *INVALID_SUBJECT))


# ---------- required, blank, null ----------
def test_lege_body_geeft_required(api):
    """klantnummer is not required in our spec (DECISIONS #1)."""
    assert_afgewezen(api, {}, ("bronorganisatie", *REQUIRED), ("websiteUrl", *REQUIRED))


def test_lege_request_body_is_een_leeg_object(api):
    resp = api.post("/klanten", headers={"Content-Type": "application/json"}, data=b"")
    assert_validatiefout(api, resp, ("bronorganisatie", *REQUIRED), ("websiteUrl", *REQUIRED))
    assert aantal_klanten(api) == 0


@pytest.mark.parametrize("veld", ["bronorganisatie", "websiteUrl"])
def test_ontbrekend_verplicht_veld(api, veld):
    body = klant_body()
    del body[veld]
    assert_afgewezen(api, body, (veld, *REQUIRED))


@pytest.mark.parametrize("veld, waarde", [("bronorganisatie", ""), ("bronorganisatie", "   "),
                                          ("klantnummer", ""), ("klantnummer", "  "), ("websiteUrl", ""),
                                          ("websiteUrl", " \t ")])
def test_blank(api, veld, waarde):
    assert_afgewezen(api, klant_body(**{veld: waarde}), (veld, *BLANK))


@pytest.mark.parametrize("veld", ["bronorganisatie", "klantnummer", "bedrijfsnaam", "functie", "websiteUrl",
                                  "voornaam", "voorvoegselAchternaam", "achternaam", "telefoonnummer",
                                  "emailadres", "subject"])
def test_null_voor_een_tekstveld(api, veld):
    body = klant_body()
    body[veld] = None          # (klant_body's own `subject` parameter means "no subject" for None)
    assert_afgewezen(api, body, (veld, *NULL))


@pytest.mark.parametrize("veld", ["straatnaam", "huisletter", "postcode"])
def test_null_voor_een_tekstveld_in_adres(api, veld):
    assert_afgewezen(api, klant_body(adres={veld: None}), (f"adres.{veld}", *NULL))


def test_null_voor_subject_identificatie_bij_create(api, subject_url):
    """reference-behaviour §3.1: `subjectIdentificatie: null` is 400 `null`. DECISIONS #7 (null removes the
    part) is about PUT/PATCH only; on create there is nothing to remove, so the reference applies."""
    assert_afgewezen(api, klant_body(subject_url, subjectIdentificatie=None), ("subjectIdentificatie", *NULL))


def test_witruimte_wordt_weggehaald(api):
    body = klant_body(bronorganisatie=f" {BRONORGANISATIE} ", voornaam="  Jan  ", achternaam="   ",
                      klantnummer=" 77 ", subjectType="vestiging",
                      subjectIdentificatie={"vestigingsNummer": "  12 ", "handelsnaam": ["  WB  ", " "]},
                      adres={"straatnaam": "\tDorpsstraat\n"})
    got = create(api, body)
    assert_exact(got, klant(got["url"], klantnummer="77", voornaam="Jan", adres=adres(straatnaam="Dorpsstraat"),
                            subjectType="vestiging",
                            subjectIdentificatie=vestiging(vestigingsNummer="12", handelsnaam=["WB", ""])))


def test_witruimte_in_natuurlijk_persoon(api):
    got = create(api, body_sid("natuurlijk_persoon", {"geslachtsnaam": "  Testpersoon  ",
                                                      "verblijfsadres": {"aoaIdentificatie": " 1 ",
                                                                         "gorOpenbareRuimteNaam": " Straat "}}))
    assert got["subjectIdentificatie"] == natuurlijk_persoon(
        geslachtsnaam="Testpersoon", verblijfsadres=verblijfsadres(aoaIdentificatie="1",
                                                                   gorOpenbareRuimteNaam="Straat"))


# ---------- max_length ----------
TOP_MAX = {"klantnummer": 8, "bedrijfsnaam": 200, "functie": 200, "voornaam": 200, "voorvoegselAchternaam": 10,
           "achternaam": 200, "telefoonnummer": 20}
ADRES_MAX = {"straatnaam": 100, "huisletter": 1, "huisnummertoevoeging": 4, "postcode": 7, "woonplaatsnaam": 80,
             "landcode": 4}


def lange_url(lengte: int, begin: str = "http://example.com/") -> str:
    return begin + "a" * (lengte - len(begin))


def lang_emailadres(lengte: int) -> str:
    """A syntactically valid e-mail address of exactly `lengte` characters (labels of at most 63)."""
    rest = lengte - len("a" * 64 + "@") - len(".nl")
    labels = []
    while rest > 63:
        labels.append("b" * 63)
        rest -= 64
    labels.append("b" * rest)
    waarde = "a" * 64 + "@" + ".".join(labels) + ".nl"
    assert len(waarde) == lengte, len(waarde)
    return waarde


def lang_subject(httpserver, lengte: int) -> str:
    """A subject URL of `lengte` characters that answers 200 (the reference fetches it anyway)."""
    url = lange_url(lengte, httpserver.url_for("/subject/"))
    httpserver.expect_request(urlsplit(url).path).respond_with_data("ok")
    return url


@pytest.mark.parametrize("veld", list(TOP_MAX))
def test_max_length_tekstveld(api, veld):
    n = TOP_MAX[veld]
    assert_afgewezen(api, klant_body(**{veld: "x" * (n + 1)}), (veld, *max_length(n)))


@pytest.mark.parametrize("veld", list(TOP_MAX))
def test_max_length_precies_op_de_grens_mag(api, veld):
    n = TOP_MAX[veld]
    got = create(api, klant_body(**{veld: "x" * n}))
    assert got[veld] == "x" * n


def test_max_length_website_url(api):
    assert_afgewezen(api, klant_body(websiteUrl=lange_url(1001)), ("websiteUrl", *max_length(1000)))


def test_max_length_emailadres(api):
    assert_afgewezen(api, klant_body(emailadres=lang_emailadres(255)), ("emailadres", *max_length(254)))


def test_emailadres_en_website_url_precies_op_de_grens_mogen(api):
    got = create(api, klant_body(emailadres=lang_emailadres(254), websiteUrl=lange_url(1000)))
    assert (got["emailadres"], got["websiteUrl"]) == (lang_emailadres(254), lange_url(1000))


def test_max_length_subject(api, httpserver):
    assert_afgewezen(api, klant_body(lang_subject(httpserver, 1001)), ("subject", *max_length(1000)))


@pytest.mark.parametrize("veld", list(ADRES_MAX))
def test_max_length_adres(api, veld):
    n = ADRES_MAX[veld]
    assert_afgewezen(api, klant_body(adres={veld: "x" * (n + 1)}), (f"adres.{veld}", *max_length(n)))


def test_alle_topniveau_fouten_in_veldvolgorde(api, httpserver):
    """All top-level errors are collected, in the serializer's field order (§2.3)."""
    body = {"bronorganisatie": "1234567890", "subject": lang_subject(httpserver, 1001),
            "subjectType": "natuurlijk_persoon",
            "websiteUrl": lange_url(1001), "emailadres": lang_emailadres(255),
            "adres": {k: "x" * (n + 1) for k, n in ADRES_MAX.items()} | {"huisnummer": 100000},
            **{k: "x" * (n + 1) for k, n in TOP_MAX.items()}}
    assert_afgewezen(
        api, body,
        ("bronorganisatie", *INVALID_LENGTH), ("bronorganisatie", *max_length(9)),
        ("klantnummer", *max_length(8)), ("bedrijfsnaam", *max_length(200)), ("functie", *max_length(200)),
        ("websiteUrl", *max_length(1000)), ("voornaam", *max_length(200)),
        ("voorvoegselAchternaam", *max_length(10)), ("achternaam", *max_length(200)),
        ("telefoonnummer", *max_length(20)), ("emailadres", *max_length(254)),
        ("adres.straatnaam", *max_length(100)), ("adres.huisnummer", *MAX_VALUE),
        ("adres.huisletter", *max_length(1)), ("adres.huisnummertoevoeging", *max_length(4)),
        ("adres.postcode", *max_length(7)), ("adres.woonplaatsnaam", *max_length(80)),
        ("adres.landcode", *max_length(4)), ("subject", *max_length(1000)))


TE_LANG_VERBLIJFSADRES = {"aoaIdentificatie": "x" * 101, "wplWoonplaatsNaam": "x" * 81,
                          "gorOpenbareRuimteNaam": "x" * 81, "aoaPostcode": "x" * 8, "aoaHuisnummer": 100000,
                          "aoaHuisletter": "xx", "aoaHuisnummertoevoeging": "x" * 5,
                          "inpLocatiebeschrijving": "x" * 1001}
TE_LANG_BUITENLAND = {"lndLandcode": "x" * 5, "lndLandnaam": "x" * 41, "subAdresBuitenland1": "x" * 36,
                      "subAdresBuitenland2": "x" * 36, "subAdresBuitenland3": "x" * 36}


def verblijfsadres_fouten(pad):
    return [(f"{pad}.aoaIdentificatie", *max_length(100)), (f"{pad}.wplWoonplaatsNaam", *max_length(80)),
            (f"{pad}.gorOpenbareRuimteNaam", *max_length(80)), (f"{pad}.aoaPostcode", *max_length(7)),
            (f"{pad}.aoaHuisnummer", *MAX_VALUE), (f"{pad}.aoaHuisletter", *max_length(1)),
            (f"{pad}.aoaHuisnummertoevoeging", *max_length(4)), (f"{pad}.inpLocatiebeschrijving", *max_length(1000))]


def buitenland_fouten(pad):
    return [(f"{pad}.lndLandcode", *max_length(4)), (f"{pad}.lndLandnaam", *max_length(40)),
            (f"{pad}.subAdresBuitenland1", *max_length(35)), (f"{pad}.subAdresBuitenland2", *max_length(35)),
            (f"{pad}.subAdresBuitenland3", *max_length(35))]


def test_max_length_natuurlijk_persoon_in_veldvolgorde(api):
    sid = {"inpBsn": "1234567890", "anpIdentificatie": "x" * 18, "inpANummer": "12345678901",
           "geslachtsnaam": "x" * 201, "voorvoegselGeslachtsnaam": "x" * 81, "voorletters": "x" * 21,
           "voornamen": "x" * 201, "geslachtsaanduiding": "v", "geboortedatum": "x" * 19,
           "verblijfsadres": TE_LANG_VERBLIJFSADRES, "subVerblijfBuitenland": TE_LANG_BUITENLAND}
    p = "subjectIdentificatie"
    assert_afgewezen(
        api, body_sid("natuurlijk_persoon", sid),
        (f"{p}.inpBsn", *INVALID_LENGTH), (f"{p}.inpBsn", *max_length(9)),
        (f"{p}.anpIdentificatie", *max_length(17)),
        (f"{p}.inpANummer", *A_NUMMER), (f"{p}.inpANummer", *max_length(10)),
        (f"{p}.geslachtsnaam", *max_length(200)), (f"{p}.voorvoegselGeslachtsnaam", *max_length(80)),
        (f"{p}.voorletters", *max_length(20)), (f"{p}.voornamen", *max_length(200)),
        (f"{p}.geboortedatum", *max_length(18)),
        *verblijfsadres_fouten(f"{p}.verblijfsadres"), *buitenland_fouten(f"{p}.subVerblijfBuitenland"))


def test_max_length_niet_natuurlijk_persoon_in_veldvolgorde(api):
    sid = {"innNnpId": "1234567890", "annIdentificatie": "x" * 18, "statutaireNaam": "x" * 501,
           "innRechtsvorm": "stichting", "bezoekadres": "x" * 1001, "subVerblijfBuitenland": TE_LANG_BUITENLAND}
    p = "subjectIdentificatie"
    assert_afgewezen(
        api, body_sid("niet_natuurlijk_persoon", sid),
        (f"{p}.innNnpId", *INVALID_LENGTH), (f"{p}.innNnpId", *max_length(9)),
        (f"{p}.annIdentificatie", *max_length(17)), (f"{p}.statutaireNaam", *max_length(500)),
        (f"{p}.bezoekadres", *max_length(1000)), *buitenland_fouten(f"{p}.subVerblijfBuitenland"))


def test_max_length_vestiging_in_veldvolgorde(api):
    sid = {"vestigingsNummer": "x" * 25, "handelsnaam": ["x" * 625, "x" * 626],
           "verblijfsadres": TE_LANG_VERBLIJFSADRES, "subVerblijfBuitenland": TE_LANG_BUITENLAND}
    p = "subjectIdentificatie"
    assert_afgewezen(
        api, body_sid("vestiging", sid),
        (f"{p}.vestigingsNummer", *max_length(24)), (f"{p}.handelsnaam.1", *max_length(625)),
        *verblijfsadres_fouten(f"{p}.verblijfsadres"), *buitenland_fouten(f"{p}.subVerblijfBuitenland"))


def test_fouten_op_topniveau_slaan_de_subject_identificatie_over(api):
    """§3.2 step 1: with top-level errors, subjectIdentificatie is not validated."""
    body = body_sid("natuurlijk_persoon", {"inpBsn": "123456789"})
    body["klantnummer"] = "123456789"
    assert_afgewezen(api, body, ("klantnummer", *max_length(8)))


# ---------- values of the wrong JSON type ----------
@pytest.mark.parametrize("veld, waarde", [
    ("voornaam", 12345), ("klantnummer", 1234), ("bronorganisatie", 950428139), ("functie", True),
    ("achternaam", {}), ("bedrijfsnaam", []), ("emailadres", 1.5), ("websiteUrl", ["http://example.com"]),
    ("telefoonnummer", False)])
def test_geen_string(api, veld, waarde):
    """DECISIONS #14 / README 14: string fields take JSON strings only."""
    assert_afgewezen(api, klant_body(**{veld: waarde}), (veld, *NOT_A_STRING))


def test_geen_string_in_geneste_velden(api):
    assert_afgewezen(api, klant_body(adres={"straatnaam": 5}), ("adres.straatnaam", *NOT_A_STRING))
    assert_afgewezen(api, body_sid("natuurlijk_persoon", {"geslachtsnaam": ["a"]}),
                     ("subjectIdentificatie.geslachtsnaam", *NOT_A_STRING))
    assert_afgewezen(api, body_sid("vestiging", {"handelsnaam": ["WB", 7]}),
                     ("subjectIdentificatie.handelsnaam.1", *NOT_A_STRING))


# ---------- NUL characters ----------
def test_nul_teken(api):
    assert_afgewezen(api, klant_body(voornaam="Ja\x00n"), ("voornaam", *NUL))
    assert_afgewezen(api, body_sid("natuurlijk_persoon", {"geslachtsnaam": "a\x00"}),
                     ("subjectIdentificatie.geslachtsnaam", *NUL))


def test_nul_teken_en_te_lang_geven_allebei_een_fout(api):
    """All validators of a field run and are collected (§2.3): DRF's CharField runs max_length, then the NUL
    check."""
    assert_afgewezen(api, klant_body(voorvoegselAchternaam="a" * 10 + "\x00"),
                     ("voorvoegselAchternaam", *max_length(10)), ("voorvoegselAchternaam", *NUL))


def test_nul_teken_in_bronorganisatie_geeft_ook_de_elfproef_fout(api):
    assert_afgewezen(api, klant_body(bronorganisatie="95042813\x00"),
                     ("bronorganisatie", *ONLY_DIGITS), ("bronorganisatie", *NUL))


# ---------- RSIN / BSN 11-proef ----------
@pytest.mark.parametrize("waarde, fouten", [
    ("12345678a", [ONLY_DIGITS]), ("-12345678", [ONLY_DIGITS]), ("12345678", [INVALID_LENGTH]),
    ("123456789", [ELFPROEF]), ("950428138", [ELFPROEF]),
    ("1234567890", [INVALID_LENGTH, max_length(9)])])
def test_bronorganisatie_elfproef(api, waarde, fouten):
    assert_afgewezen(api, klant_body(bronorganisatie=waarde), *[("bronorganisatie", *f) for f in fouten])


@pytest.mark.parametrize("waarde", ["950428139", "123456782", "314273268", geldig_rsin(1), geldig_rsin(987)])
def test_bronorganisatie_geldig(api, waarde):
    assert create(api, klant_body(bronorganisatie=waarde))["bronorganisatie"] == waarde


@pytest.mark.parametrize("soort, veld", [("natuurlijk_persoon", "inpBsn"), ("niet_natuurlijk_persoon", "innNnpId")])
@pytest.mark.parametrize("waarde, fouten", [
    ("12a", [ONLY_DIGITS]), ("1234", [INVALID_LENGTH]), ("123456789", [ELFPROEF]),
    ("1234567890", [INVALID_LENGTH, max_length(9)])])
def test_bsn_en_inn_nnp_id_elfproef(api, soort, veld, waarde, fouten):
    assert_afgewezen(api, body_sid(soort, {veld: waarde, "anpIdentificatie": "1", "annIdentificatie": "1"}),
                     *[(f"subjectIdentificatie.{veld}", *f) for f in fouten])


@pytest.mark.parametrize("soort, veld", [("natuurlijk_persoon", "inpBsn"), ("niet_natuurlijk_persoon", "innNnpId")])
@pytest.mark.parametrize("waarde", ["", "123456782", "314273268"])
def test_bsn_en_inn_nnp_id_geldig_of_leeg(api, soort, veld, waarde):
    got = create(api, body_sid(soort, {veld: waarde, "anpIdentificatie": "1", "annIdentificatie": "1"}))
    assert got["subjectIdentificatie"][veld] == waarde


# ---------- A-nummer (DECISIONS #17) ----------
@pytest.mark.parametrize("waarde, fouten", [
    ("0123456789", [A_NUMMER]), ("123", [A_NUMMER]), ("123456789a", [A_NUMMER]),
    ("12345678901", [A_NUMMER, max_length(10)])])
def test_a_nummer_ongeldig(api, waarde, fouten):
    assert_afgewezen(api, body_sid("natuurlijk_persoon", {"inpANummer": waarde}),
                     *[("subjectIdentificatie.inpANummer", *f) for f in fouten])


@pytest.mark.parametrize("waarde", ["1234567890", "9999999999", ""])
def test_a_nummer_geldig(api, waarde):
    got = create(api, body_sid("natuurlijk_persoon", {"inpANummer": waarde, "geslachtsnaam": "x"}))
    assert got["subjectIdentificatie"]["inpANummer"] == waarde


def test_fouten_in_de_natuurlijk_persoon_als_in_de_referentie(api):
    """reference-behaviour Appendix B, with our name for the A-nummer (DECISIONS #17)."""
    sid = {"inpBsn": "123456789", "inpANummer": "123", "geslachtsaanduiding": "x", "verblijfsadres": {},
           "subVerblijfBuitenland": {}}
    p = "subjectIdentificatie"
    assert_afgewezen(
        api, body_sid("natuurlijk_persoon", sid),
        (f"{p}.inpBsn", *ELFPROEF), (f"{p}.inpANummer", *A_NUMMER),
        (f"{p}.geslachtsaanduiding", *invalid_choice("x")),
        (f"{p}.verblijfsadres.aoaIdentificatie", *REQUIRED), (f"{p}.verblijfsadres.gorOpenbareRuimteNaam", *REQUIRED),
        (f"{p}.subVerblijfBuitenland.lndLandcode", *REQUIRED), (f"{p}.subVerblijfBuitenland.lndLandnaam", *REQUIRED))


# ---------- e-mail and URL ----------
@pytest.mark.parametrize("waarde", ["geen-email", "jan@", "@example.com", "jan@example", "jan example@example.com"])
def test_emailadres_ongeldig(api, waarde):
    assert_afgewezen(api, klant_body(emailadres=waarde), ("emailadres", *INVALID_EMAIL))


@pytest.mark.parametrize("waarde", ["jan@example.com", "j.a.n+test@sub.example.nl", ""])
def test_emailadres_geldig(api, waarde):
    assert create(api, klant_body(emailadres=waarde))["emailadres"] == waarde


@pytest.mark.parametrize("waarde", ["http://a", "www.example.com", "example.com", "mailto:jan@example.com",
                                    "http://", "http://exa mple.com", "gopher://example.com"])
def test_website_url_ongeldig(api, waarde):
    assert_afgewezen(api, klant_body(websiteUrl=waarde), ("websiteUrl", *INVALID_URL))


@pytest.mark.parametrize("waarde", ["http://example.com", "https://www.example.com/pad?q=1#x", "ftp://example.com",
                                    "http://localhost:8000/", "http://127.0.0.1", "http://[::1]:80/"])
def test_website_url_geldig(api, waarde):
    assert create(api, klant_body(websiteUrl=waarde))["websiteUrl"] == waarde


# ---------- enums ----------
def test_subject_type_ongeldige_keuze(api):
    assert_afgewezen(api, klant_body(subjectType="foo"), ("subjectType", *invalid_choice("foo")))


def test_subject_type_leeg_is_geen_geldige_keuze(api):
    """README difference 6: "" is not a valid subjectType."""
    assert_afgewezen(api, klant_body(subjectType=""), ("subjectType", *invalid_choice("")))


def test_geslachtsaanduiding(api):
    assert_afgewezen(api, body_sid("natuurlijk_persoon", {"geslachtsaanduiding": "M"}),
                     ("subjectIdentificatie.geslachtsaanduiding", *invalid_choice("M")))
    got = create(api, body_sid("natuurlijk_persoon", {"geslachtsaanduiding": "", "geslachtsnaam": "x"}))
    assert got["subjectIdentificatie"]["geslachtsaanduiding"] == ""
    got = create(api, klant_body(klantnummer="2", subjectIdentificatie={"geslachtsaanduiding": "v"}))
    assert got["subjectIdentificatie"] == natuurlijk_persoon(geslachtsaanduiding="v")


def test_inn_rechtsvorm(api):
    assert_afgewezen(api, body_sid("niet_natuurlijk_persoon", {"innRechtsvorm": "bv"}),
                     ("subjectIdentificatie.innRechtsvorm", *invalid_choice("bv")))
    got = create(api, body_sid("niet_natuurlijk_persoon", {"innRechtsvorm": "", "statutaireNaam": "x"}))
    assert got["subjectIdentificatie"]["innRechtsvorm"] == ""
    got = create(api, klant_body(klantnummer="2", subjectType="niet_natuurlijk_persoon",
                                 subjectIdentificatie={"innRechtsvorm": "europese_cooperatieve_venootschap"}))
    assert got["subjectIdentificatie"]["innRechtsvorm"] == "europese_cooperatieve_venootschap"


# ---------- integers ----------
@pytest.mark.parametrize("waarde, opgeslagen", [("117", 117), (117, 117), (12.0, 12), (0, 0), (99999, 99999),
                                                (None, None)])
def test_huisnummer_geldig(api, waarde, opgeslagen):
    got = create(api, klant_body(adres={"huisnummer": waarde}))
    assert got["adres"] == adres(huisnummer=opgeslagen)


@pytest.mark.parametrize("waarde, fout", [(1.5, INVALID_INTEGER), ("abc", INVALID_INTEGER), (True, INVALID_INTEGER),
                                          ([1], INVALID_INTEGER), (100000, MAX_VALUE), (-1, MIN_VALUE)])
def test_huisnummer_ongeldig(api, waarde, fout):
    assert_afgewezen(api, klant_body(adres={"huisnummer": waarde}), ("adres.huisnummer", *fout))


@pytest.mark.parametrize("waarde, fout", [("abc", INVALID_INTEGER), (100000, MAX_VALUE), (-1, MIN_VALUE)])
def test_aoa_huisnummer_ongeldig(api, waarde, fout):
    sid = {"verblijfsadres": {"aoaIdentificatie": "1", "gorOpenbareRuimteNaam": "x", "aoaHuisnummer": waarde}}
    assert_afgewezen(api, body_sid("natuurlijk_persoon", sid),
                     ("subjectIdentificatie.verblijfsadres.aoaHuisnummer", *fout))


def test_aoa_huisnummer_als_tekst(api):
    sid = {"verblijfsadres": {"aoaIdentificatie": "1", "gorOpenbareRuimteNaam": "x", "aoaHuisnummer": "5"}}
    got = create(api, body_sid("vestiging", sid))
    assert got["subjectIdentificatie"]["verblijfsadres"]["aoaHuisnummer"] == 5


# ---------- nested objects and lists ----------
@pytest.mark.parametrize("waarde, typenaam", [("x", "str"), ([], "list"), (5, "int"), (True, "bool")])
def test_adres_geen_object(api, waarde, typenaam):
    assert_afgewezen(api, klant_body(adres=waarde), ("adres.nonFieldErrors", *not_a_dict(typenaam)))


def test_geneste_waarden_die_geen_object_zijn(api):
    assert_afgewezen(api, body_sid("natuurlijk_persoon", "x"),
                     ("subjectIdentificatie.nonFieldErrors", *not_a_dict("str")))
    assert_afgewezen(api, body_sid("natuurlijk_persoon", {"verblijfsadres": "x"}),
                     ("subjectIdentificatie.verblijfsadres.nonFieldErrors", *not_a_dict("str")))
    assert_afgewezen(api, body_sid("vestiging", {"subVerblijfBuitenland": [1]}),
                     ("subjectIdentificatie.subVerblijfBuitenland.nonFieldErrors", *not_a_dict("list")))


def test_handelsnaam_geen_lijst(api):
    assert_afgewezen(api, body_sid("vestiging", {"handelsnaam": "WB"}),
                     ("subjectIdentificatie.handelsnaam", *NOT_A_LIST))


def test_handelsnaam_item_null(api):
    assert_afgewezen(api, body_sid("vestiging", {"handelsnaam": ["WB", None]}),
                     ("subjectIdentificatie.handelsnaam.1", *NULL))


def test_handelsnaam_null(api):
    assert_afgewezen(api, body_sid("vestiging", {"handelsnaam": None}), ("subjectIdentificatie.handelsnaam", *NULL))


def test_verblijfsadres_zonder_aoa_identificatie(api):
    sid = {"verblijfsadres": {"gorOpenbareRuimteNaam": "Keizersgracht"}}
    assert_afgewezen(api, body_sid("natuurlijk_persoon", sid),
                     ("subjectIdentificatie.verblijfsadres.aoaIdentificatie", *REQUIRED))


def test_verblijfsadres_blanco_verplichte_velden(api):
    sid = {"verblijfsadres": {"aoaIdentificatie": "", "gorOpenbareRuimteNaam": "  "}}
    assert_afgewezen(api, body_sid("vestiging", sid),
                     ("subjectIdentificatie.verblijfsadres.aoaIdentificatie", *BLANK),
                     ("subjectIdentificatie.verblijfsadres.gorOpenbareRuimteNaam", *BLANK))


def test_sub_verblijf_buitenland_verplichte_velden(api):
    sid = {"subVerblijfBuitenland": {"lndLandcode": "6030"}}
    assert_afgewezen(api, body_sid("niet_natuurlijk_persoon", sid),
                     ("subjectIdentificatie.subVerblijfBuitenland.lndLandnaam", *REQUIRED))


def test_verblijfsadres_en_buitenland_null_bij_create(api):
    got = create(api, body_sid("natuurlijk_persoon", {"geslachtsnaam": "x", "verblijfsadres": None,
                                                      "subVerblijfBuitenland": None}))
    assert got["subjectIdentificatie"] == natuurlijk_persoon(geslachtsnaam="x")


# ---------- subject or subjectIdentificatie (invalid-subject) ----------
@pytest.mark.parametrize("extra", [{}, {"subject": ""}, {"subject": "  "}, {"subjectIdentificatie": {}},
                                   {"subjectIdentificatie": {"vestigingsNummer": "1", "onbekend": "x"}},
                                   {"subject": "", "subjectIdentificatie": {}}])
def test_zonder_subject_en_subject_identificatie(api, extra):
    body = {"bronorganisatie": BRONORGANISATIE, "klantnummer": "1111", "websiteUrl": WEBSITE,
            "subjectType": "natuurlijk_persoon", **extra}
    assert_afgewezen(api, body, ("nonFieldErrors", *INVALID_SUBJECT))


# ---------- bodies that are not an object ----------
@pytest.mark.parametrize("ruw, typenaam", [(b"[]", "list"), (b'[{"bronorganisatie": "950428139"}]', "list"),
                                           (b'"tekst"', "str"), (b"5", "int")])
def test_body_geen_object(api, ruw, typenaam):
    resp = api.post("/klanten", data=ruw, headers={"Content-Type": "application/json"})
    assert_validatiefout(api, resp, ("nonFieldErrors", *not_a_dict(typenaam)))
    assert aantal_klanten(api) == 0


# ---------- uniqueness (kla-001) ----------
def test_dubbel_klantnummer(api):
    create(api, klant_body())
    resp = api.post("/klanten", klant_body())
    assert_validatiefout(api, resp, ("nonFieldErrors", *UNIQUE))
    assert aantal_klanten(api) == 1
    # the same klantnummer in another bronorganisatie is fine
    assert create(api, klant_body(bronorganisatie="123456782"))["klantnummer"] == "1111"
