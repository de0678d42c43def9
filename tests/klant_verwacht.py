"""Expected klant representations and error bodies, shared by the klant operation tests."""
from __future__ import annotations

from conftest import BRONORGANISATIE

PROBLEM_JSON = "application/problem+json"
VALIDATIE_DETAIL = "Er is een validatiefout opgetreden."   # README difference 3: never empty
WEBSITE = "http://some.website.com"
REQUIRED = ("required", "Dit veld is vereist.")
BLANK = ("blank", "Dit veld mag niet leeg zijn.")
NULL = ("null", "Dit veld mag niet leeg zijn.")
INVALID_SUBJECT = ("invalid-subject", "subject or subjectIdentificatie must be provided")
INVALID_EMAIL = ("invalid", "Voer een geldig e-mailadres in.")
UNIQUE = ("unique", "De velden bronorganisatie, klantnummer moeten een unieke set zijn.")
MIN_VALUE = ("min_value", "Zorg ervoor dat deze waarde groter is dan of gelijk is aan 0.")
ELFPROEF = ("invalid", "Onjuist RSIN nummer.")


def invalid_choice(value):
    return "invalid_choice", f'"{value}" is een ongeldige keuze.'


def not_a_dict(typename):
    return "invalid", f"Ongeldige data. Verwacht een dictionary, kreeg een {typename}."


def geordend(obj):
    """Dicts as lists of (key, value) pairs, so that a comparison also checks key order."""
    if isinstance(obj, dict):
        return [(k, geordend(v)) for k, v in obj.items()]
    if isinstance(obj, list):
        return [geordend(v) for v in obj]
    return obj


def assert_exact(got: dict, expected: dict) -> None:
    assert got == expected
    assert geordend(got) == geordend(expected), "same content, different key order"


def create(api, body) -> dict:
    resp = api.post("/klanten", body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def adres(**velden) -> dict:
    out = {"straatnaam": "", "huisnummer": None, "huisletter": "", "huisnummertoevoeging": "", "postcode": "",
           "woonplaatsnaam": "", "landcode": ""}
    out.update(velden)
    return out


def natuurlijk_persoon(**velden) -> dict:
    out = {"inpBsn": "", "anpIdentificatie": "", "inpANummer": "", "geslachtsnaam": "",
           "voorvoegselGeslachtsnaam": "", "voorletters": "", "voornamen": "", "geslachtsaanduiding": "",
           "geboortedatum": "", "verblijfsadres": None, "subVerblijfBuitenland": None}
    out.update(velden)
    return out


def niet_natuurlijk_persoon(**velden) -> dict:
    out = {"innNnpId": "", "annIdentificatie": "", "statutaireNaam": "", "innRechtsvorm": "", "bezoekadres": "",
           "subVerblijfBuitenland": None}
    out.update(velden)
    return out


def vestiging(**velden) -> dict:
    out = {"vestigingsNummer": "", "handelsnaam": [], "verblijfsadres": None, "subVerblijfBuitenland": None}
    out.update(velden)
    return out


def verblijfsadres(**velden) -> dict:
    out = {"aoaIdentificatie": "", "wplWoonplaatsNaam": "", "gorOpenbareRuimteNaam": "", "aoaPostcode": "",
           "aoaHuisnummer": None, "aoaHuisletter": "", "aoaHuisnummertoevoeging": "", "inpLocatiebeschrijving": ""}
    out.update(velden)
    return out


def buitenland(**velden) -> dict:
    out = {"lndLandcode": "", "lndLandnaam": "", "subAdresBuitenland1": "", "subAdresBuitenland2": "",
           "subAdresBuitenland3": ""}
    out.update(velden)
    return out


ADRES = {"straatnaam": "Keizersgracht", "huisnummer": 117, "huisletter": "A", "huisnummertoevoeging": "bis",
         "postcode": "1015CJ", "woonplaatsnaam": "Amsterdam", "landcode": "6030"}


VERBLIJFSADRES = {"aoaIdentificatie": "0363200000218908", "wplWoonplaatsNaam": "Amsterdam",
                  "gorOpenbareRuimteNaam": "Keizersgracht", "aoaPostcode": "1015CJ", "aoaHuisnummer": 117,
                  "aoaHuisletter": "A", "aoaHuisnummertoevoeging": "bis", "inpLocatiebeschrijving": "achterom"}


BUITENLAND = {"lndLandcode": "5010", "lndLandnaam": "Belgie", "subAdresBuitenland1": "Rue 1",
              "subAdresBuitenland2": "1000 Brussel", "subAdresBuitenland3": "Brabant"}


def klant(url, **velden) -> dict:
    """The expected representation: defaults of the reference, overridden by `velden`."""
    out = {"url": url, "bronorganisatie": BRONORGANISATIE, "klantnummer": "1111", "bedrijfsnaam": "", "functie": "",
           "websiteUrl": WEBSITE, "voornaam": "", "voorvoegselAchternaam": "", "achternaam": "",
           "telefoonnummer": "", "emailadres": "", "adres": None, "subject": "", "subjectType": "natuurlijk_persoon",
           "subjectIdentificatie": None}
    out.update(velden)
    if out["subjectType"] is None:
        del out["subjectIdentificatie"]
    return out
