"""Handlers of the Contactmomenten API (spec/contactmomenten.yaml), one function per operationId; Connexion
resolves this API's operations in this module only (its audittrail_list / audittrail_read are the
contactmoment's, not the klant's)."""
from klanten_api.context import diensten, verzoek

JSON = {"Content-Type": "application/json"}


def _service():
    return diensten().contactmomenten


def contactmoment_list():
    """Alle contactmomenten, gefilterd, gesorteerd en gepagineerd (from the query string as sent)."""
    return _service().contactmoment_list(verzoek()), 200, JSON


def contactmoment_create(body=None):
    """Een contactmoment aanmaken."""
    contactmoment = _service().contactmoment_create(body, verzoek())
    return contactmoment, 201, {**JSON, "Location": contactmoment["url"]}


def contactmoment_read(uuid):
    """Een contactmoment opvragen."""
    return _service().contactmoment_read(uuid, verzoek()), 200, JSON


def contactmoment_update(uuid, body=None):
    """Een contactmoment bijwerken (PUT)."""
    return _service().contactmoment_update(uuid, body, verzoek(), gedeeltelijk=False), 200, JSON


def contactmoment_partial_update(uuid, body=None):
    """Een contactmoment deels bijwerken (PATCH)."""
    return _service().contactmoment_update(uuid, body, verzoek(), gedeeltelijk=True), 200, JSON


def contactmoment_delete(uuid):
    """Een contactmoment verwijderen."""
    _service().contactmoment_delete(uuid, verzoek())
    return None, 204, {}


def audittrail_list(contactmoment_uuid):
    """Alle audittrail-regels van een contactmoment."""
    return _service().audittrail_list(contactmoment_uuid, verzoek()), 200, JSON


def audittrail_read(contactmoment_uuid, uuid):
    """Eén audittrail-regel van een contactmoment."""
    return _service().audittrail_read(contactmoment_uuid, uuid, verzoek()), 200, JSON


def klantcontactmoment_list():
    """Alle klantcontactmomenten, gefilterd en gepagineerd."""
    return _service().klantcontactmoment_list(verzoek()), 200, JSON


def klantcontactmoment_create(body=None):
    """Een klantcontactmoment aanmaken."""
    relatie = _service().klantcontactmoment_create(body, verzoek())
    return relatie, 201, {**JSON, "Location": relatie["url"]}


def klantcontactmoment_read(uuid):
    """Een klantcontactmoment opvragen."""
    return _service().klantcontactmoment_read(uuid, verzoek()), 200, JSON


def klantcontactmoment_delete(uuid):
    """Een klantcontactmoment verwijderen."""
    _service().klantcontactmoment_delete(uuid, verzoek())
    return None, 204, {}


def objectcontactmoment_list():
    """Alle objectcontactmomenten, gefilterd en gepagineerd."""
    return _service().objectcontactmoment_list(verzoek()), 200, JSON


def objectcontactmoment_create(body=None):
    """Een objectcontactmoment aanmaken (cm-005, cm-006)."""
    relatie = _service().objectcontactmoment_create(body, verzoek())
    return relatie, 201, {**JSON, "Location": relatie["url"]}


def objectcontactmoment_read(uuid):
    """Een objectcontactmoment opvragen."""
    return _service().objectcontactmoment_read(uuid, verzoek()), 200, JSON


def objectcontactmoment_delete(uuid):
    """Een objectcontactmoment verwijderen (cm-006)."""
    _service().objectcontactmoment_delete(uuid, verzoek())
    return None, 204, {}
