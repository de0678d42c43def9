"""schemathesis hooks for the Klanten API, shared by `make conformance` (CLI) and tests/test_schemathesis.py.

Each hook is a narrow, documented adaptation where the contract cannot express a rule the standard
(or the reference's behaviour) demands; no check is switched off globally.
"""
from __future__ import annotations

import copy
import os
import uuid
from collections import Counter

import schemathesis

import st_hooks_cm      # the Contactmomenten document's adaptations (one global hook registry: dispatched here)

# bronorganisatie must pass the 11-proef (the standard's RSIN rule); the schema can only say "string of
# at most 9 characters", so positive (schema-valid) cases get a valid RSIN.
VALID_RSIN = "123456782"
SUBJECT_PLACEHOLDER = "https://subject.placeholder.invalid/"   # replaced by the runner with a URL answering 200
UUID_FROM_LOCATION = "$response.header.Location#regex:/klanten/([0-9a-fA-F-]+)$"


@schemathesis.hook
def before_load_schema(context, raw_schema):
    for item in raw_schema.get("paths", {}).values():
        for op in item.values():
            if isinstance(op, dict) and "parameters" in op:
                # The required `Content-Type` header *parameter* describes the body's media type. schemathesis
                # drops it in negative cases but its transport re-adds it for the JSON body, so the server
                # (rightly) accepts the request: a false "negative data accepted". Media-type negatives are
                # still generated for the request body (-> 415).
                op["parameters"] = [p for p in op["parameters"]
                                    if not (p.get("in") == "header" and p.get("name", "").lower() == "content-type")]
    if st_hooks_cm.is_cm_document(raw_schema):
        st_hooks_cm.before_load_schema(raw_schema)
    # Answers the reference gives (and the standard asks for) that its contract leaves out:
    #  - klant_list: 404 "Ongeldige pagina." for a page beyond the last (ZGW/DRF pagination);
    #  - audittrail_list: 404 for an unknown klant;
    #  - klant_read / audittrail_read: 304 for a matching If-None-Match (the standard's HTTP caching).
    not_found = {"description": "Niet gevonden", "content": {"application/problem+json": {
        "schema": {"$ref": "#/components/schemas/Fout"}}}}
    extra = {("/klanten", "get"): {"404": not_found},
             ("/klanten/{klant_uuid}/audittrail", "get"): {"404": not_found},
             ("/klanten/{uuid}", "get"): {"304": {"description": "Niet gewijzigd"}},
             ("/klanten/{klant_uuid}/audittrail/{uuid}", "get"): {"304": {"description": "Niet gewijzigd"}}}
    for (path, method), responses in extra.items():
        op = raw_schema.get("paths", {}).get(path, {}).get(method)
        if op is not None:
            for code, response in responses.items():
                op["responses"].setdefault(code, response)
    # A klant's emailadres and subject are optional and "" when not given (the reference's output, and
    # what it accepts as input): "" is a blank value there, not a malformed e-mail address or URI.
    klant = raw_schema.get("components", {}).get("schemas", {}).get("Klant", {}).get("properties", {})
    for naam in ("emailadres", "subject"):
        if naam in klant and "anyOf" not in klant[naam]:
            klant[naam] = {"anyOf": [klant[naam], {"type": "string", "maxLength": 0}]}
    # The audit trail's wijzigingen.oud is null for a create (the reference; the standard's audit-trail text).
    wijzigingen = raw_schema.get("components", {}).get("schemas", {}).get("Wijzigingen", {}).get("properties", {})
    for naam in ("oud", "nieuw"):
        if naam in wijzigingen:
            wijzigingen[naam]["nullable"] = True
    # klant_list: an empty filter value means "no filter" (the reference, probed: `?subjectType=` returns the
    # unfiltered list; django-filter skips empty values), so `subject=` and `subjectType=` are valid input even
    # though "" is neither a uri nor one of the enum's values. Only "" is added: any other value outside
    # the enum or format must still be refused (400). `page` is left alone: `page=` is 404, as the reference.
    lijst = raw_schema.get("paths", {}).get("/klanten", {}).get("get", {})
    for p in lijst.get("parameters", []):
        schema = p.get("schema", {})
        if p.get("in") == "query" and p.get("name") != "page" and schema.get("type") == "string" \
                and any(k in schema for k in ("enum", "format", "pattern", "minLength")):
            p["schema"] = {"anyOf": [schema, {"type": "string", "maxLength": 0}]}
    # PATCH is a partial update: it changes only the fields it sends, so the Klant's top-level `required`
    # (bronorganisatie, websiteUrl) does not apply to its body (the reference: `{}` -> 200; DRF's partial=True;
    # our service/validatie.py). The contract reuses the PUT body for PATCH; give PATCH a copy of Klant
    # without the top-level `required`, as newer DRF schemas do ("PatchedKlant"). Nested objects keep theirs
    # (the server still requires them), and every other negative case (types, lengths, enums) stays.
    schemas = raw_schema.get("components", {}).get("schemas", {})
    patch = raw_schema.get("paths", {}).get("/klanten/{uuid}", {}).get("patch")
    if patch is not None and "Klant" in schemas and "PatchedKlant" not in schemas:
        schemas["PatchedKlant"] = {k: v for k, v in copy.deepcopy(schemas["Klant"]).items() if k != "required"}
        patch["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/PatchedKlant"}}}}
    # Explicit links for the stateful phase: create -> read / update / patch / delete / audit trail.
    post = raw_schema.get("paths", {}).get("/klanten", {}).get("post")
    if post is not None:
        links = {op: {"operationId": op, "parameters": {"uuid": UUID_FROM_LOCATION}}
                 for op in ("klant_read", "klant_update", "klant_partial_update", "klant_delete")}
        links["audittrail_list"] = {"operationId": "audittrail_list", "parameters": {"klant_uuid": UUID_FROM_LOCATION}}
        post["responses"]["201"]["links"] = links
    lijst = raw_schema.get("paths", {}).get("/klanten/{klant_uuid}/audittrail", {}).get("get")
    if lijst is not None:
        lijst["responses"]["200"]["links"] = {"audittrail_read": {
            "operationId": "audittrail_read",
            "parameters": {"klant_uuid": "$request.path.klant_uuid", "uuid": "$response.body#/0/uuid"}}}


def _zonder_nul(node):
    """NUL characters are refused in every text field (null_characters_not_allowed, as the reference)."""
    if isinstance(node, dict):
        for key, value in node.items():
            node[key] = value.replace("\x00", "") if isinstance(value, str) else _zonder_nul(value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            node[i] = value.replace("\x00", "") if isinstance(value, str) else _zonder_nul(value)
    return node


def _reference_url(value: str) -> bool:
    try:
        from service.validatie import is_url
    except ImportError:             # run against another server, without our package: keep the value
        return True
    return is_url(value.strip())


def _positive(case) -> bool:
    meta = getattr(case, "meta", None)
    generation = getattr(meta, "generation", None)
    mode = getattr(generation, "mode", None)
    return mode is not None and getattr(mode, "value", mode) == "positive"


@schemathesis.hook
def map_case(context, case):
    """Positive (schema-valid) bodies are made to satisfy the rules a schema cannot express."""
    if st_hooks_cm.is_cm_case(case):
        st_hooks_cm.map_case(case, _positive(case))
        if _positive(case) and isinstance(case.body, dict):
            _zonder_nul(case.body)
        return case
    if _positive(case) and isinstance(case.query, dict):
        # the list's known filters are validated as the reference does (RSIN 11-proef, URL rules)
        if case.query.get("bronorganisatie"):
            case.query["bronorganisatie"] = VALID_RSIN
        if case.query.get("subject"):
            case.query["subject"] = "https://subject.example.com/1"
    if _positive(case) and isinstance(case.body, dict):
        body = case.body
        if "bronorganisatie" in body:
            body["bronorganisatie"] = VALID_RSIN
        _zonder_nul(body)
        website = body.get("websiteUrl")
        if isinstance(website, str) and not _reference_url(website):
            # the reference's URL rule is stricter than RFC 3986 `uri` (scheme http(s)/ftp(s), a host with a
            # top-level domain, at most 253 characters): keep schema-valid cases valid under it
            body["websiteUrl"] = "https://www.gemeente.example/"
        if "klantnummer" in body:
            # kla-001: (bronorganisatie, klantnummer) is unique; generated examples repeat "0" and the like
            body["klantnummer"] = uuid.uuid4().hex[:8]
        # kla-002 / "subject or subjectIdentificatie must be provided": a subject that answers 200
        body["subject"] = os.environ.get("KLANTEN_ST_SUBJECT_URL") or SUBJECT_PLACEHOLDER
        if case.method.upper() in ("PUT", "PATCH"):
            # subjectType may not change after creation (wijzigen-niet-toegelaten)
            body.pop("subjectType", None)
    return case


# (method, path template, status) of every call: proves that the stateful phase really writes
CALLS: Counter = Counter()


@schemathesis.hook
def before_call(context, case, kwargs):
    prepare(case, os.environ.get("KLANTEN_ST_SUBJECT_URL", ""))
    if st_hooks_cm.is_cm_case(case):
        st_hooks_cm.prepare(case, _positive(case))


@schemathesis.hook
def after_call(context, case, response):
    CALLS[(case.method.upper(), case.path, response.status_code)] += 1


# Headers that frame the HTTP/1.1 message itself and belong to the client's transport, not to the API:
# schemathesis' negative cases add undeclared headers with random names, and a random value in one of these
# (`Transfer-Encoding: $0fU;?r(h0`, `Content-Length: 7` on an empty body) breaks the framing, so the HTTP
# server's parser answers 400 "Invalid HTTP request received." (RFC 9112 §6.1, §6.3) before the application
# runs, or waits for a body that never comes. Every other undeclared header name stays in the cases.
TRANSPORT_HEADERS = frozenset({"transfer-encoding", "content-length", "host", "connection", "keep-alive",
                               "te", "trailer", "upgrade", "expect", "proxy-connection"})


def prepare(case, subject_url: str) -> None:
    """Right before a call: the real subject URL (known only once the server runs), and a fresh klantnummer,
    since hypothesis replays an example (when shrinking) and the first call already took its number;
    generated values of the transport's own headers are dropped (TRANSPORT_HEADERS)."""
    if case.headers:
        for naam in [n for n in case.headers if n.lower() in TRANSPORT_HEADERS]:
            del case.headers[naam]
    if isinstance(case.body, dict):
        if case.body.get("subject") == SUBJECT_PLACEHOLDER and subject_url:
            case.body["subject"] = subject_url
        if _positive(case) and "klantnummer" in case.body:
            case.body["klantnummer"] = uuid.uuid4().hex[:8]
