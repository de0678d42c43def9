"""Connexion validators replaced where the spec and ZGW semantics meet (see design/STACK-NOTES.md).

* parameters: malformed path uuids are 404 (as the reference's URL routing), a bad `page` is 404
  `Ongeldige pagina.`, the required `Content-Type` header parameter means "a JSON body" (415 otherwise,
  charset allowed), query filters are validated by the service (with the reference's messages).
* bodies: only parsed here (400 `parse_error` on bad JSON or bad UTF-8, an empty body counts as `{}`);
  field validation happens in the service, which knows the stored klant (PATCH, subjectType).
"""
from __future__ import annotations

import json
import re
import typing as t

from connexion.datastructures import MediaTypeDict
from connexion.lifecycle import ConnexionRequest
import copy

from connexion.json_schema import Draft4ResponseValidator
from connexion.validators import AbstractRequestBodyValidator, JSONResponseBodyValidator, ParameterValidator
from connexion.validators import TextResponseBodyValidator
from jsonschema import Draft4Validator

from service.validatie import not_a_dict
from .errors import InvalidParam, NietGevonden, OngeldigMediaType, ParseFout, ValidatieFout

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
JSON_MEDIA_TYPE = "application/json"


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _laatste(query_string: bytes, naam: str) -> str | None:
    """The last value of a query parameter, as sent (connexion would already have cast it)."""
    from urllib.parse import parse_qsl
    waarde = None
    for k, w in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if k == naam:
            waarde = w
    return waarde


class ZgwParameterValidator(ParameterValidator):
    def __init__(self, parameters, uri_parser, strict_validation=False, security_query_params=None):
        unique, seen = [], set()
        for p in parameters:          # connexion 3.3 repeats path-level parameters once per middleware
            key = (p["in"], p["name"])
            if key not in seen:
                seen.add(key)
                unique.append(p)
        super().__init__(unique, uri_parser, strict_validation=False, security_query_params=security_query_params)

    def validate_request(self, request: ConnexionRequest) -> None:
        for param in self.parameters.get("path", []):
            value = request.path_params.get(param["name"])
            if param.get("schema", {}).get("format") == "uuid" and not (
                    isinstance(value, str) and UUID_RE.fullmatch(value)):
                raise NietGevonden()
        if any(p["name"] == "page" for p in self.parameters.get("query", [])):
            page = _laatste(request.scope.get("query_string", b""), "page")
            if page is not None and not re.fullmatch(r"[0-9]{1,9}|last", page):
                raise NietGevonden("Ongeldige pagina.")
        for param in self.parameters.get("header", []):
            if param["name"].lower() == "content-type":
                self._content_type(request)

    @staticmethod
    def _content_type(request: ConnexionRequest) -> None:
        headers = request.headers
        content_type = headers.get("content-type")
        if content_type is None:
            has_body = int(headers.get("content-length") or 0) > 0 or "chunked" in headers.get("transfer-encoding", "")
            if has_body:
                # reported as text/plain, the media type the reference's WSGI server assumes for it
                raise OngeldigMediaType("text/plain")
            return
        if media_type(content_type) != JSON_MEDIA_TYPE:
            raise OngeldigMediaType(media_type(content_type) or content_type)


class ZgwBodyValidator(AbstractRequestBodyValidator):
    """Parses the JSON body; all field rules live in the service layer."""

    def __init__(self, *, schema, required=False, nullable=False, encoding, strict_validation, **kwargs):
        super().__init__(schema=schema, required=False, nullable=True, encoding=encoding,
                         strict_validation=strict_validation)

    async def wrap_receive(self, receive, *, scope):
        messages = []
        more = True
        while more:
            message = await receive()
            messages.append(message)
            more = message.get("more_body", False)
            if message["type"] != "http.request":
                break
        raw = b"".join(m.get("body", b"") for m in messages)
        self._check(raw)
        return self._insert_messages(receive, messages=messages), scope

    @staticmethod
    def _check(raw: bytes) -> None:
        if not raw.strip():
            return                       # an empty body is an empty object, as in the reference
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseFout("JSON parse error - de body is geen geldige UTF-8.") from None
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParseFout(f"JSON parse error - {exc.msg}: line {exc.lineno} column {exc.colno} (char {exc.pos})") \
                from None
        except RecursionError:
            raise ParseFout("JSON parse error - de body is te diep genest.") from None
        except ValueError:     # e.g. an integer of more digits than Python converts
            raise ParseFout("JSON parse error - een getal in de body is te groot.") from None
        if not isinstance(body, dict):
            raise ValidatieFout([InvalidParam("nonFieldErrors", *not_a_dict(body))])

    async def _parse(self, stream, scope) -> t.Any:   # pragma: no cover - wrap_receive does the work
        return None


# Response validation (on in tests): the reference renders an absent e-mail address or subject as "",
# which the spec types as format email/uri. A blank value is "not given", not a malformed one.
RESPONSE_FORMATS = copy.deepcopy(Draft4Validator.FORMAT_CHECKER)
_stock_email = RESPONSE_FORMATS.checkers["email"][0]


@RESPONSE_FORMATS.checks("email")
def _email_or_blank(value) -> bool:
    return value == "" or _stock_email(value)


if "uri" in RESPONSE_FORMATS.checkers:
    _stock_uri = RESPONSE_FORMATS.checkers["uri"][0]

    @RESPONSE_FORMATS.checks("uri")
    def _uri_or_blank(value) -> bool:
        return value == "" or _stock_uri(value)


BLANK_RESPONSE_ENUMS = {"initiatiefnemer"}


def _wijzigingen_nullable(node, _seen=None):
    """The audit trail's `wijzigingen.oud` is null for a create (reference behaviour the standard's audit-trail
    text describes), while the schema types it as a plain object: accept null there, nowhere else. Likewise ""
    for the choices of BLANK_RESPONSE_ENUMS."""
    seen = set() if _seen is None else _seen
    if id(node) in seen:
        return node
    seen.add(id(node))
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict) and set(props) == {"oud", "nieuw"}:
            node["properties"] = {k: {**v, "nullable": True} for k, v in props.items()}
        if isinstance(props, dict):
            # an optional choice the reference stores and renders as "" when not given (contactmoment)
            for naam in BLANK_RESPONSE_ENUMS & set(props):
                if "enum" in props[naam] and "" not in props[naam]["enum"]:
                    props[naam] = {**props[naam], "enum": [*props[naam]["enum"], ""]}
        for value in list(node.values()):
            _wijzigingen_nullable(value, seen)
    elif isinstance(node, list):
        for value in node:
            _wijzigingen_nullable(value, seen)
    return node


_PATCHED: dict[int, tuple[dict, dict]] = {}   # the operation's schema object -> its patched copy


class ZgwResponseValidator(JSONResponseBodyValidator):
    def __init__(self, scope, *, schema, **kwargs):
        patched = _PATCHED.get(id(schema))
        if patched is None or patched[0] is not schema:
            patched = _PATCHED[id(schema)] = (schema, _wijzigingen_nullable(copy.deepcopy(schema)))
        super().__init__(scope, schema=patched[1], **kwargs)

    @property
    def validator(self):
        return Draft4ResponseValidator(self._schema, format_checker=RESPONSE_FORMATS)


VALIDATOR_MAP = {
    "parameter": ZgwParameterValidator,
    "body": MediaTypeDict({"*/*json": ZgwBodyValidator}),
    "response": MediaTypeDict({"*/*json": ZgwResponseValidator, "text/plain": TextResponseBodyValidator}),
}
