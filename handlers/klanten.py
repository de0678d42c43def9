"""Handlers for /klanten and /klanten/{uuid}: parse, one service call, HTTP shape."""
from klanten_api.context import diensten, verzoek

JSON = {"Content-Type": "application/json"}


def klant_list():
    """Alle klanten, gefilterd en gepagineerd (filters and page come from the query string as sent)."""
    return diensten().klanten.klant_list(verzoek()), 200, JSON


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
