"""schemathesis adaptations for the Contactmomenten API 1.0 document (spec/contactmomenten.yaml).

Not hooks themselves: st_hooks.py registers the hooks once (schemathesis keeps one global registry) and hands
the Contactmomenten document and its cases to these functions. Each adaptation is narrow and says why.

The server under test is described by the environment (set by conformance/run_schemathesis.py or the test):
- KLANTEN_ST_CM_URL: its Contactmomenten API root (…/contactmomenten/api/v1);
- KLANTEN_ST_KLANTEN_URL: a Klanten API root whose klanten that server accepts in a klantcontactmoment (cm-004);
- KLANTEN_ST_ZAAK_URL: a zaak URL the server can fetch (cm-005); `{uuid}` in it is replaced by a fresh uuid
  per case, since (contactmoment, object) is unique;
- KLANTEN_TOKEN: the bearer token.
"""
from __future__ import annotations

import copy
import os
import uuid

import requests

CM_PATHS = ("/contactmomenten", "/klantcontactmomenten", "/objectcontactmomenten")
VALID_RSIN = "123456782"
MEDEWERKER = "https://medewerkers.example.com/medewerkers/1"
MEDEWERKER_VELDEN = ("identificatie", "achternaam", "voorletters", "voorvoegselAchternaam")
ONDERWERP = "https://zaken.example.com/zaken/1"


def is_cm_document(raw_schema) -> bool:
    return "/contactmomenten" in raw_schema.get("paths", {})


def is_cm_case(case) -> bool:
    return case.path.startswith(CM_PATHS)


def _location(resource: str) -> str:
    return f"$response.header.Location#regex:/{resource}/([0-9a-fA-F-]+)$"


def before_load_schema(raw_schema) -> None:
    paths = raw_schema.get("paths", {})
    not_found = {"description": "Niet gevonden", "content": {"application/problem+json": {
        "schema": {"$ref": "#/components/schemas/Fout"}}}}
    # Answers the standard (and the reference) give that the contract leaves out:
    #  - the three lists: 404 "Ongeldige pagina." for a page beyond the last (ZGW/DRF pagination);
    #  - audittrail_list: 404 for an unknown contactmoment (as the Klanten audit trail);
    #  - the four reads: 304 for a matching If-None-Match (the standard's HTTP caching, DECISIONS #24).
    extra = {("/contactmomenten", "get"): {"404": not_found},
             ("/klantcontactmomenten", "get"): {"404": not_found},
             ("/objectcontactmomenten", "get"): {"404": not_found},
             ("/contactmomenten/{contactmoment_uuid}/audittrail", "get"): {"404": not_found}}
    for path in ("/contactmomenten/{uuid}", "/klantcontactmomenten/{uuid}", "/objectcontactmomenten/{uuid}",
                 "/contactmomenten/{contactmoment_uuid}/audittrail/{uuid}"):
        extra[(path, "get")] = {"304": {"description": "Niet gewijzigd"}}
    for (path, method), responses in extra.items():
        op = paths.get(path, {}).get(method)
        if op is not None:
            for code, response in responses.items():
                op["responses"].setdefault(code, response)
    # schemathesis' dependency analysis reads the optional X-NLX-Logrecord-ID header (NLX logging; the server
    # ignores it) as a reference to a resource no operation produces, and then never starts a stateful sequence
    # at contactmoment_create (only the relation creates): leave that header out of the tested document.
    for item in paths.values():
        for op in item.values():
            if isinstance(op, dict) and "parameters" in op:
                op["parameters"] = [p for p in op["parameters"]
                                    if not (p.get("in") == "header" and p.get("name") == "X-NLX-Logrecord-ID")]
    schemas = raw_schema.get("components", {}).get("schemas", {})
    # medewerker and initiatiefnemer are optional and "" when not given (the reference's output, and what it
    # accepts as input; the standard's "" for a blank choice): "" there is no malformed URI nor an unknown choice.
    cm = schemas.get("ContactMoment", {}).get("properties", {})
    for naam in ("medewerker", "initiatiefnemer"):
        if naam in cm and "anyOf" not in cm[naam]:
            cm[naam] = {"anyOf": [cm[naam], {"type": "string", "maxLength": 0}]}
    # Empty filter values are no filter, an empty `ordering` the default order (as for Klanten, README
    # "Conformance"; django-filter and DRF's OrderingFilter skip them); only "" is added.
    for path in ("/contactmomenten", "/klantcontactmomenten", "/objectcontactmomenten"):
        for p in paths.get(path, {}).get("get", {}).get("parameters", []):
            s = p.get("schema", {})
            if p.get("in") == "query" and p.get("name") != "page" and s.get("type") == "string" \
                    and any(k in s for k in ("enum", "format", "pattern", "minLength")):
                p["schema"] = {"anyOf": [s, {"type": "string", "maxLength": 0}]}
    # PATCH is a partial update (`{}` is 200): its body is the ContactMoment without the top-level `required`.
    patch = paths.get("/contactmomenten/{uuid}", {}).get("patch")
    if patch is not None and "ContactMoment" in schemas and "PatchedContactMoment" not in schemas:
        schemas["PatchedContactMoment"] = {k: v for k, v in copy.deepcopy(schemas["ContactMoment"]).items()
                                           if k != "required"}
        patch["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/PatchedContactMoment"}}}}
    # Explicit links for the stateful phase (the pytest state machine infers none from Location headers):
    # contactmoment create -> read / update / patch / delete / audit trail / both relations; relation create
    # -> read / delete; audit trail list -> read.
    location = _location("contactmomenten")
    post = paths.get("/contactmomenten", {}).get("post")
    if post is not None:
        links = {op: {"operationId": op, "parameters": {"uuid": location}}
                 for op in ("contactmoment_read", "contactmoment_update", "contactmoment_partial_update",
                            "contactmoment_delete")}
        links["audittrail_list"] = {"operationId": "audittrail_list", "parameters": {"contactmoment_uuid": location}}
        for op in ("klantcontactmoment_create", "objectcontactmoment_create"):
            links[op] = {"operationId": op, "requestBody": {"contactmoment": "$response.header.Location"}}
        post["responses"]["201"]["links"] = links
    for resource in ("klantcontactmomenten", "objectcontactmomenten"):
        post = paths.get(f"/{resource}", {}).get("post")
        if post is not None:
            naam = resource[:-2]
            post["responses"]["201"]["links"] = {
                op: {"operationId": op, "parameters": {"uuid": _location(resource)}}
                for op in (f"{naam}_read", f"{naam}_delete")}
    lijst = paths.get("/contactmomenten/{contactmoment_uuid}/audittrail", {}).get("get")
    if lijst is not None:
        lijst["responses"]["200"]["links"] = {"audittrail_read": {
            "operationId": "audittrail_read",
            "parameters": {"contactmoment_uuid": "$request.path.contactmoment_uuid", "uuid": "$response.body#/0/uuid"}}}


def _cm_prefix() -> str:
    """Where a contactmoment of the server under test starts (a link's value is kept only if it is one: the
    CLI also infers links from every Location header, an objectcontactmoment's included)."""
    base = os.environ.get("KLANTEN_ST_CM_URL")
    return f"{base}/contactmomenten/" if base else "\0"


def _reference_url(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        from service.validatie import is_url
    except ImportError:             # run against another server, without our package: keep the value
        return True
    return is_url(value.strip())


def map_case(case, positive: bool) -> None:
    """Positive (schema-valid) cases are made to satisfy the rules a schema cannot express."""
    if not positive:
        return
    if isinstance(case.query, dict):
        if case.query.get("bronorganisatie"):
            case.query["bronorganisatie"] = VALID_RSIN          # the RSIN 11-proef
        for naam in [n for n in case.query if n.startswith("registratiedatum") and case.query[n]]:
            # a plain string in the contract, a date-time to the standard's filter (invalid -> 400)
            case.query[naam] = "2020-01-01T00:00:00Z"
        for naam in ("vorigContactmoment", "volgendContactmoment", "medewerker", "contactmoment", "klant",
                     "object"):
            if case.query.get(naam) and not _reference_url(case.query[naam]):
                case.query[naam] = "https://example.com/x/1"    # the reference's URL rule for URL filters
    body = case.body
    if not isinstance(body, dict) or case.method.upper() not in ("POST", "PUT", "PATCH"):
        return
    if case.path == "/contactmomenten" or case.path == "/contactmomenten/{uuid}":
        if "bronorganisatie" in body:
            body["bronorganisatie"] = VALID_RSIN
        datum = body.get("registratiedatum")
        if isinstance(datum, str) and datum[:4] in ("0001", "9999"):
            # a date-time at the edge of the calendar that has no UTC equivalent (0001-01-01T00:00+01:00) is
            # refused (400, stored as UTC); any other date-time is kept
            body["registratiedatum"] = "2020-01-01T12:00:00+01:00"
        if "medewerker" in body and body["medewerker"] and not _reference_url(body["medewerker"]):
            body["medewerker"] = MEDEWERKER
        if isinstance(body.get("onderwerpLinks"), list):
            body["onderwerpLinks"] = [w if _reference_url(w) else ONDERWERP for w in body["onderwerpLinks"]]
        # invalid-medewerker: medewerker or medewerkerIdentificatie (a non-empty object) must be there; on an
        # update the stored values count, and the contactmomenten of a run always store a medewerker
        identificatie = body.get("medewerkerIdentificatie")
        if isinstance(identificatie, dict):         # unknown keys are ignored: only the four fields count
            identificatie = {k: w for k, w in identificatie.items() if k in MEDEWERKER_VELDEN}
        if not body.get("medewerker") and not identificatie and (case.method.upper() != "PATCH"
                                                                 or "medewerker" in body):
            body["medewerker"] = MEDEWERKER
        # cm-001: a vorigContactmoment must exist and precede no other one: filled in right before the call
        if body.get("vorigContactmoment") is not None:
            body["vorigContactmoment"] = _VERS
    elif case.path in ("/klantcontactmomenten", "/objectcontactmomenten"):
        # cm-004 / cm-005: a contactmoment of this server (kept when a link put it there) and a klant or zaak the
        # server can resolve, both fresh, since (contactmoment, klant, rol) and (contactmoment, object) are unique
        if not str(body.get("contactmoment", "")).startswith(_cm_prefix()):
            body["contactmoment"] = _VERS
        if case.path == "/klantcontactmomenten":
            body["klant"] = _VERS_KLANT
        else:
            body["object"] = _VERS_ZAAK


# placeholders of map_case, replaced right before the call (hypothesis replays cases while shrinking, and each
# call needs its own fresh resource)
_VERS = "https://vers.placeholder.invalid/contactmoment"
_VERS_KLANT = "https://vers.placeholder.invalid/klant"
_VERS_ZAAK = "https://vers.placeholder.invalid/zaak"


def _headers() -> dict:
    return {"Authorization": f"Bearer {os.environ['KLANTEN_TOKEN']}", "Accept-Crs": "EPSG:4326",
            "Content-Crs": "EPSG:4326"}


def _bestaat(url: str) -> bool:
    return requests.get(url, timeout=30, headers=_headers()).status_code == 200


def _maak(url: str, body: dict) -> str:
    antwoord = requests.post(url, json=body, timeout=30, headers=_headers())
    assert antwoord.status_code == 201, (url, antwoord.status_code, antwoord.text[:500])
    return antwoord.headers["Location"]


_GEMAAKT: set[str] = set()     # the URLs the hooks made: a replayed case gets fresh ones again


def _vers(waarde, placeholder: str) -> bool:
    return isinstance(waarde, str) and (waarde == placeholder or waarde in _GEMAAKT)


def prepare(case, positive: bool) -> None:
    """Right before a call: the fresh resources map_case asked for (placeholders or ones made for an earlier
    call of the same, replayed case)."""
    if not isinstance(case.body, dict):
        return
    body = case.body
    verwijzing = body.get("contactmoment")
    if positive and case.path in ("/klantcontactmomenten", "/objectcontactmomenten") and isinstance(verwijzing, str) \
            and verwijzing.startswith(_cm_prefix()) and not _bestaat(verwijzing):
        # a link's contactmoment that an earlier step of the sequence deleted: 400 does_not_exist is right
        # then, but the case counts as positive, so it gets a contactmoment that exists
        body["contactmoment"] = _VERS
    if positive and case.method.upper() == "POST":
        # also when map_case did not see the final body (a stateful step merges a link's values into a
        # generated body): a positive relation gets a resolvable klant or zaak
        if case.path == "/klantcontactmomenten":
            body["klant"] = _VERS_KLANT
        elif case.path == "/objectcontactmomenten":
            body["object"] = _VERS_ZAAK
        if case.path in ("/klantcontactmomenten", "/objectcontactmomenten") and not (
                isinstance(body.get("contactmoment"), str) and body["contactmoment"].startswith(_cm_prefix())):
            body["contactmoment"] = _VERS
    for naam in ("vorigContactmoment", "contactmoment"):
        if _vers(body.get(naam), _VERS):
            body[naam] = _maak(f"{os.environ['KLANTEN_ST_CM_URL']}/contactmomenten",
                               {"bronorganisatie": VALID_RSIN, "medewerker": MEDEWERKER})
            _GEMAAKT.add(body[naam])
    if _vers(body.get("klant"), _VERS_KLANT):
        body["klant"] = _maak(f"{os.environ['KLANTEN_ST_KLANTEN_URL']}/klanten", {
            "bronorganisatie": VALID_RSIN, "klantnummer": uuid.uuid4().hex[:8],
            "websiteUrl": "https://www.gemeente.example/", "subjectType": "natuurlijk_persoon",
            "subjectIdentificatie": {"geslachtsnaam": "Conformance"}})
        _GEMAAKT.add(body["klant"])
    if _vers(body.get("object"), _VERS_ZAAK):
        body["object"] = os.environ["KLANTEN_ST_ZAAK_URL"].replace("{uuid}", str(uuid.uuid4()))
        _GEMAAKT.add(body["object"])
