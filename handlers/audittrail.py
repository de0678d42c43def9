"""Handlers for /klanten/{klant_uuid}/audittrail[/{uuid}]."""
from klanten_api.context import diensten, verzoek

JSON = {"Content-Type": "application/json"}


def audittrail_list(klant_uuid):
    """Alle audittrail-regels van een klant."""
    return diensten().klanten.audittrail_list(klant_uuid, verzoek()), 200, JSON


def audittrail_read(klant_uuid, uuid):
    """Eén audittrail-regel van een klant."""
    return diensten().klanten.audittrail_read(klant_uuid, uuid, verzoek()), 200, JSON
