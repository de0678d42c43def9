"""Handlers for /klanten and /klanten/{uuid}: parse, one service call, HTTP shape."""
from klanten_api.context import diensten, verzoek

JSON = {"Content-Type": "application/json"}


def klant_list(page=None, bronorganisatie=None, klantnummer=None, bedrijfsnaam=None, functie=None, achternaam=None,
               telefoonnummer=None, emailadres=None, adres__straatnaam=None, adres__postcode=None,
               adres__woonplaatsNaam=None, adres__landcode=None, subject=None, subjectType=None,
               subjectNatuurlijkPersoon__inpBsn=None, subjectNatuurlijkPersoon__anpIdentificatie=None,
               subjectNatuurlijkPersoon__inpA_nummer=None, subjectNietNatuurlijkPersoon__innNnpId=None,
               subjectNietNatuurlijkPersoon__annIdentificatie=None, subjectVestiging__vestigingsNummer=None):
    """Alle klanten, gefilterd en gepagineerd."""
    filters = {k: w for k, w in locals().items() if k != "page" and w is not None}
    return diensten().klanten.klant_list(filters, page, verzoek()), 200, JSON


def klant_create(body=None):
    """Een klant aanmaken."""
    klant = diensten().klanten.klant_create(body, verzoek())
    return klant, 201, {**JSON, "Location": klant["url"]}


def klant_read(uuid):
    """Een klant opvragen."""
    return diensten().klanten.klant_read(uuid, verzoek()), 200, JSON


def klant_update(uuid, body=None):
    """Een klant bijwerken (PUT)."""
    return diensten().klanten.klant_update(uuid, body, verzoek(), gedeeltelijk=False), 200, JSON


def klant_partial_update(uuid, body=None):
    """Een klant deels bijwerken (PATCH)."""
    return diensten().klanten.klant_update(uuid, body, verzoek(), gedeeltelijk=True), 200, JSON


def klant_delete(uuid):
    """Een klant verwijderen."""
    diensten().klanten.klant_delete(uuid, verzoek())
    return None, 204, {}
