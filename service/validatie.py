"""Field validation of klant bodies, driven by the component schemas of spec/openapi.yaml.

The schema gives types, lengths, enums, required, nullable and formats; this module adds what a schema
cannot say (11-proef, the A-nummer rule) and answers with the reference implementation's codes and
Dutch reasons, collecting every error in field order.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from klanten_api.errors import InvalidParam
from .elfproef import elfproef_fout

REQUIRED = ("required", "Dit veld is vereist.")
BLANK = ("blank", "Dit veld mag niet leeg zijn.")
NULL = ("null", "Dit veld mag niet leeg zijn.")
NOT_A_STRING = ("invalid", "Not a valid string.")
NUL_CHARACTER = ("null_characters_not_allowed", "Null-tekens zijn niet toegestaan.")
INVALID_URL = ("invalid", "Voer een geldige URL in.")
INVALID_EMAIL = ("invalid", "Voer een geldig e-mailadres in.")
INVALID_INTEGER = ("invalid", "Een geldig getal is vereist.")
A_NUMMER = ("a-nummer-incorrect-format", "inpA_nummer must consist of 10 digits")
INVALID_SUBJECT = ("invalid-subject", "subject or subjectIdentificatie must be provided")
IMMUTABLE = ("wijzigen-niet-toegelaten", "Dit veld mag niet gewijzigd worden.")
UNIQUE = ("unique", "De velden bronorganisatie, klantnummer moeten een unieke set zijn.")


def max_length(n: int) -> tuple[str, str]:
    return "max_length", f"Zorg ervoor dat dit veld niet meer dan {n} karakters bevat."


def max_value(n) -> tuple[str, str]:
    return "max_value", f"Zorg ervoor dat deze waarde kleiner is dan of gelijk is aan {n}."


def min_value(n) -> tuple[str, str]:
    return "min_value", f"Zorg ervoor dat deze waarde groter is dan of gelijk is aan {n}."


def invalid_choice(value) -> tuple[str, str]:
    return "invalid_choice", f'"{value}" is een ongeldige keuze.'


def filter_invalid_choice(value) -> tuple[str, str]:
    return "invalid_choice", f"Selecteer een geldige keuze. {value} is geen beschikbare keuze."


def _typename(value) -> str:
    return {dict: "dict", list: "list", str: "str", int: "int", float: "float", bool: "bool"}.get(
        type(value), "NoneType" if value is None else type(value).__name__)


def not_a_dict(value) -> tuple[str, str]:
    return "invalid", f"Ongeldige data. Verwacht een dictionary, kreeg een {_typename(value)}."


def not_a_list(value) -> tuple[str, str]:
    return "not_a_list", f'Verwachtte een lijst met items, maar kreeg type "{_typename(value)}".'


# --- formats (the rules of the reference's URL and e-mail validators) ---
_HOST = (r"(?:(?:[a-z0-9\u00a1-\uffff](?:[a-z0-9\u00a1-\uffff-]{0,61}[a-z0-9\u00a1-\uffff])?\.)+"
         r"(?:[a-z\u00a1-\uffff-]{2,63}|xn--[a-z0-9]{1,59})(?<!-)\.?|localhost)")
_URL = re.compile(
    r"^(?:https?|ftps?)://"
    r"(?:[^\s:@/]+(?::[^\s:@/]*)?@)?"
    r"(?:(?P<ipv4>\d{1,3}(?:\.\d{1,3}){3})|\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<host>" + _HOST + r"))"
    r"(?::\d{1,5})?"
    r"(?:[/?#][^\s]*)?\Z", re.IGNORECASE)
_EMAIL_USER = re.compile(
    r"(^[-!#$%&'*+/=?^_`{}|~0-9a-z]+(\.[-!#$%&'*+/=?^_`{}|~0-9a-z]+)*\Z"
    r'|^"([\001-\010\013\014\016-\037!#-\[\]-\177]|\\[\001-\011\013\014\016-\177])*"\Z)', re.IGNORECASE)
_EMAIL_DOMAIN = re.compile(r"((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+)(?:[a-z0-9-]{2,63}(?<!-))\Z",
                           re.IGNORECASE)


def is_url(value: str) -> bool:
    m = _URL.match(value)
    if not m:
        return False
    try:
        if m.group("ipv4"):
            ipaddress.IPv4Address(m.group("ipv4"))
        if m.group("ipv6"):
            ipaddress.IPv6Address(m.group("ipv6"))
    except ValueError:
        return False
    return len(m.group("host") or "") <= 253


def is_email(value: str) -> bool:
    if "@" not in value:
        return False
    user, domain = value.rsplit("@", 1)
    if not _EMAIL_USER.match(user):
        return False
    if domain == "localhost" or _EMAIL_DOMAIN.match(domain):
        return True
    if domain.startswith("[") and domain.endswith("]"):
        try:
            ipaddress.ip_address(domain[1:-1].removeprefix("IPv6:"))
            return True
        except ValueError:
            return False
    return False


# properties with a rule the schema cannot express: (schema name, property) -> rule
RSIN_VELDEN = {("Klant", "bronorganisatie"), ("NietNatuurlijkPersoon", "innNnpId"), ("NatuurlijkPersoon", "inpBsn"),
               ("ContactMoment", "bronorganisatie")}
PATTERN_FOUTEN = {("NatuurlijkPersoon", "inpANummer"): A_NUMMER}
# nested parts of the subject identification that may be sent as null (no such part; on PUT/PATCH: remove it)
NULLABLE_REFS = {"VerblijfsAdres", "SubVerblijfBuitenland"}
# enums for which the reference also accepts "" (the optional choice fields of the subject identification)
BLANK_ENUMS = {("NatuurlijkPersoon", "geslachtsaanduiding"), ("NietNatuurlijkPersoon", "innRechtsvorm"),
               ("ContactMoment", "initiatiefnemer")}


@dataclass
class Resultaat:
    waarde: dict
    fouten: list[InvalidParam]


class SchemaValidatie:
    """Validates JSON objects against a component schema of the loaded spec."""

    def __init__(self, components: dict):
        self.schemas = components["schemas"]

    def _resolve(self, schema: dict) -> tuple[str | None, dict]:
        ref = schema.get("$ref")
        if ref:
            naam = ref.rsplit("/", 1)[-1]
            return naam, self.schemas[naam]
        return None, schema

    def properties(self, schema_naam: str) -> dict:
        return self.schemas[schema_naam].get("properties", {})

    def object(self, data: dict, schema_naam: str, pad: str = "", *, gedeeltelijk: bool = False,
               overslaan: tuple[str, ...] = ()) -> Resultaat:
        """Validate `data` (a dict) against component `schema_naam`. Unknown and read-only keys are ignored.

        gedeeltelijk: a PATCH body, where the schema's `required` does not apply (only at the top level).
        """
        schema = self.schemas[schema_naam]
        required = set() if gedeeltelijk else set(schema.get("required", ()))
        waarde, fouten = {}, []
        for naam, prop in schema.get("properties", {}).items():
            if naam in overslaan or prop.get("readOnly"):
                continue
            veldnaam = f"{pad}{naam}"
            if naam not in data:
                if naam in required:
                    fouten.append(InvalidParam(veldnaam, *REQUIRED))
                continue
            ok, schoon, veldfouten = self.veld(data[naam], prop, veldnaam, (schema_naam, naam),
                                               verplicht=naam in required)
            fouten.extend(veldfouten)
            if ok:
                waarde[naam] = schoon
        return Resultaat(waarde, fouten)

    def veld(self, value, prop: dict, veldnaam: str, sleutel: tuple[str, str], *, verplicht: bool = False):
        """Returns (ok, clean value, errors)."""
        ref_naam, schema = self._resolve(prop)
        fout = lambda c: (False, None, [InvalidParam(veldnaam, *c)])  # noqa: E731
        if value is None:
            if schema.get("nullable") or prop.get("nullable") or ref_naam in NULLABLE_REFS:
                return True, None, []
            return fout(NULL)
        soort = schema.get("type")
        if ref_naam is not None or soort == "object":
            if not isinstance(value, dict):
                return False, None, [InvalidParam(f"{veldnaam}.nonFieldErrors", *not_a_dict(value))]
            res = self.object(value, ref_naam, f"{veldnaam}.") if ref_naam else Resultaat(value, [])
            return not res.fouten, res.waarde, res.fouten
        if soort == "array":
            if not isinstance(value, list):
                return fout(not_a_list(value))
            items, fouten = [], []
            for i, item in enumerate(value):
                ok, schoon, f = self.veld(item, schema.get("items", {}), f"{veldnaam}.{i}", sleutel)
                fouten.extend(f)
                items.append(schoon)
            return not fouten, items, fouten
        if soort == "integer":
            return self._integer(value, schema, veldnaam)
        return self._string(value, schema, veldnaam, sleutel, verplicht)

    def _integer(self, value, schema: dict, veldnaam: str):
        if isinstance(value, bool):
            getal = None
        elif isinstance(value, int):
            getal = value
        elif isinstance(value, float) and value.is_integer():
            getal = int(value)
        elif isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d{1,18}\s*", value):
            getal = int(value)
        else:
            getal = None
        if getal is None:
            return False, None, [InvalidParam(veldnaam, *INVALID_INTEGER)]
        fouten = []
        if "maximum" in schema and getal > schema["maximum"]:
            fouten.append(InvalidParam(veldnaam, *max_value(schema["maximum"])))
        if "minimum" in schema and getal < schema["minimum"]:
            fouten.append(InvalidParam(veldnaam, *min_value(schema["minimum"])))
        return not fouten, getal, fouten

    def _string(self, value, schema: dict, veldnaam: str, sleutel: tuple[str, str], verplicht: bool):
        if not isinstance(value, str) or not _is_unicode(value):
            return False, None, [InvalidParam(veldnaam, *NOT_A_STRING)]
        tekst = value.strip()
        if tekst == "":
            if "enum" in schema and sleutel not in BLANK_ENUMS:
                # a choice field: "" is not one of the choices, required or not (as the reference)
                return False, None, [InvalidParam(veldnaam, *invalid_choice(tekst))]
            if schema.get("minLength", 0) >= 1 or verplicht:
                return False, None, [InvalidParam(veldnaam, *BLANK)]
            return True, "", []
        if "enum" in schema and tekst not in schema["enum"]:
            return False, None, [InvalidParam(veldnaam, *invalid_choice(tekst))]
        # every check of the field runs, in the reference's order: its own rule, length, NUL, format
        fouten: list[InvalidParam] = []
        if sleutel in RSIN_VELDEN:
            elf = elfproef_fout(tekst)
            if elf:
                fouten.append(InvalidParam(veldnaam, *elf))
        if sleutel in PATTERN_FOUTEN and "pattern" in schema and not re.search(schema["pattern"], tekst):
            fouten.append(InvalidParam(veldnaam, *PATTERN_FOUTEN[sleutel]))
        if "maxLength" in schema and len(tekst) > schema["maxLength"]:
            fouten.append(InvalidParam(veldnaam, *max_length(schema["maxLength"])))
        if "\x00" in tekst:
            fouten.append(InvalidParam(veldnaam, *NUL_CHARACTER))
        formaat = schema.get("format")
        if formaat == "uri" and not is_url(tekst):
            fouten.append(InvalidParam(veldnaam, *INVALID_URL))
        elif formaat == "email" and not is_email(tekst):
            fouten.append(InvalidParam(veldnaam, *INVALID_EMAIL))
        return not fouten, tekst, fouten


def _is_unicode(value: str) -> bool:
    """False for strings with lone surrogates (JSON allows the escapes; no database can store them)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
