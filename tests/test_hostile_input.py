"""Hostile input (issue "hostile input"), over real HTTP against a real server and database.

Oversized, deeply nested, badly encoded, injected and out-of-contract requests. Every hostile request must be
answered quickly (MAX_SECONDS) with a 4xx ZGW problem document (application/problem+json with type, code,
title, status, detail and instance, plus invalidParams on a 400). The server must keep serving (GET /klanten
is 200 afterwards) and nothing may be stored: the list as served and the klant and audit-trail rows stay the
same.

The field names, maximum lengths, types and nullability come from spec/openapi.yaml (Klant, KlantAdres, and
per subject type NatuurlijkPersoon, NietNatuurlijkPersoon and Vestiging with VerblijfsAdres and
SubVerblijfBuitenland), so these tests follow the contract. Where the README documents a deliberate choice
(difference 7: explicit null removes adres, subjectIdentificatie, verblijfsadres and subVerblijfBuitenland;
difference 13: unknown query parameters are ignored; difference 14: string fields take JSON strings only),
the tests expect that choice.
"""
from __future__ import annotations

import gzip
import json
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import sqlalchemy as sa
import yaml

from conftest import BRONORGANISATIE, token

SPEC = yaml.safe_load((Path(__file__).resolve().parents[1] / "spec" / "openapi.yaml").read_text(encoding="utf-8"))
SCHEMAS = SPEC["components"]["schemas"]

PROBLEM = "application/problem+json"
PROBLEM_KEYS = ["type", "code", "title", "status", "detail", "instance"]
MAX_SECONDS = 2.0                 # "well under 2 s": the limit for one hostile request, answer included
CLIENT_TIMEOUT = 10               # a hang fails here instead of after the harness' 30 s
MiB = 1 << 20
LONG = 20_000                     # "20 kB" query and header values
DEPTH = 10_000                    # nesting depth of the deep-JSON cases
LEAKS = ("Traceback", "sqlalchemy", "psycopg", "SELECT ", "/work/", "site-packages", '.py"')
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
SQL_PAYLOADS = ["' OR 1=1 --", "1; DROP TABLE klant;--", "\\x27"]
TABLES = ("klant", "audittrail")

# every response body this file received, checked again by the last test
RESPONSES: list[tuple[str, bytes]] = []


# ---------------------------------------------------------------- the contract, from the spec
def _component(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


SUBJECT_TYPES: list[str] = SCHEMAS["Klant"]["properties"]["subjectType"]["enum"]


def _identification_schema(subject_type: str) -> str:
    """natuurlijk_persoon -> NatuurlijkPersoon, through the spec's allOf of Klant and subject_identificatie_*."""
    for part in SCHEMAS[subject_type]["allOf"]:
        sid = SCHEMAS[_component(part["$ref"])].get("properties", {}).get("subjectIdentificatie")
        if sid:
            return _component(sid["$ref"])
    raise AssertionError(f"no subjectIdentificatie schema for {subject_type}")


IDENTIFICATION = {t: _identification_schema(t) for t in SUBJECT_TYPES}
# one valid identification per type (the field names are checked against the spec below)
BASE_IDENTIFICATION = {"natuurlijk_persoon": {"geslachtsnaam": "Testpersoon"},
                       "niet_natuurlijk_persoon": {"statutaireNaam": "Test BV"},
                       "vestiging": {"vestigingsNummer": "123"}}
assert set(BASE_IDENTIFICATION) == set(SUBJECT_TYPES)
for _t, _sid in BASE_IDENTIFICATION.items():
    assert set(_sid) <= set(SCHEMAS[IDENTIFICATION[_t]]["properties"]), (_t, _sid)
TARGET_KLANTNUMMER = {"natuurlijk_persoon": "doel1", "niet_natuurlijk_persoon": "doel2", "vestiging": "doel3"}
# README difference 7: an explicit null removes these parts on PUT/PATCH (so null is no hostile value for them)
NULL_REMOVES = {"adres", "subjectIdentificatie", "verblijfsadres", "subVerblijfBuitenland"}


def minimal(component: str) -> dict:
    """The smallest valid object of a component: its required (string) properties filled in."""
    out = {}
    for name in SCHEMAS[component].get("required", ()):
        assert SCHEMAS[component]["properties"][name].get("type") == "string", (component, name)
        out[name] = "X"
    return out


def valid_body(subject_type: str = SUBJECT_TYPES[0], klantnummer: str = "1111") -> dict:
    return {"bronorganisatie": BRONORGANISATIE, "klantnummer": klantnummer, "websiteUrl": "http://some.website.com",
            "subjectType": subject_type, "subjectIdentificatie": dict(BASE_IDENTIFICATION[subject_type])}


@dataclass(frozen=True, eq=False)
class Field:
    path: tuple               # keys from the body root; 0 stands for the first item of an array
    schema: dict              # the property's schema (for an object field: its component)
    parents: tuple            # the components of the objects on the way down (KlantAdres, Vestiging, ...)
    subject_type: str         # the subjectType a body needs for this field to be validated
    component: str | None = None
    null_allowed: bool = False

    @property
    def name(self) -> str:
        """The `name` of an error about this field, as in invalidParams."""
        return ".".join(map(str, self.path))

    @property
    def kind(self) -> str:
        return "object" if self.component else self.schema.get("type")

    @property
    def id(self) -> str:
        return f"{self.subject_type}:{self.name}" if self.path[0] == "subjectIdentificatie" else self.name


def _walk(component: str, prefix: tuple, parents: tuple, subject_type: str):
    for name, prop in SCHEMAS[component].get("properties", {}).items():
        if prop.get("readOnly"):
            continue
        path = prefix + (name,)
        if "$ref" in prop:
            sub = _component(prop["$ref"])
            yield Field(path, SCHEMAS[sub], parents, subject_type, sub,
                        bool(SCHEMAS[sub].get("nullable")) or name in NULL_REMOVES)
            yield from _walk(sub, path, parents + (sub,), subject_type)
        elif prop.get("type") == "array":
            yield Field(path, prop, parents, subject_type, null_allowed=bool(prop.get("nullable")))
            items = prop["items"]
            yield Field(path + (0,), items, parents, subject_type, null_allowed=bool(items.get("nullable")))
        else:
            yield Field(path, prop, parents, subject_type, null_allowed=bool(prop.get("nullable")))


FIELDS: list[Field] = list(_walk("Klant", (), (), SUBJECT_TYPES[0]))
for _t in SUBJECT_TYPES:
    _c = IDENTIFICATION[_t]
    FIELDS.append(Field(("subjectIdentificatie",), SCHEMAS[_c], (), _t, _c, True))
    FIELDS.extend(_walk(_c, ("subjectIdentificatie",), (_c,), _t))
STRING_FIELDS = [f for f in FIELDS if f.kind == "string"]
LENGTH_FIELDS = [f for f in STRING_FIELDS if "maxLength" in f.schema]
assert len(LENGTH_FIELDS) > 50 and {f.kind for f in FIELDS} == {"string", "integer", "object", "array"}

LIST_PARAMETERS = [p for p in SPEC["paths"]["/klanten"]["get"]["parameters"] if p["in"] == "query"]
FILTERS = [p["name"] for p in LIST_PARAMETERS if p["name"] != "page"]
FILTER_SCHEMA = {p["name"]: p.get("schema", {}) for p in LIST_PARAMETERS}
RSIN_FILTERS = {"bronorganisatie"}     # validated with the 11-proef (only-digits / invalid-length / invalid)


def put(body: dict, field: Field, value) -> dict:
    """Place `value` at the field's position, creating the (minimal, valid) objects on the way."""
    node = body
    for key, component in zip(field.path, field.parents):
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = minimal(component)
        node = child
    rest = field.path[len(field.parents):]
    if len(rest) == 2:                  # (array, 0): the value as the array's only item
        node[rest[0]] = [value]
    else:
        node[rest[0]] = value
    return body


# ---------------------------------------------------------------- HTTP helpers
def _record(label: str, body: bytes) -> None:
    RESPONSES.append((label, body))
    for leak in LEAKS:
        assert leak.encode() not in body, f"{label}: the response leaks {leak!r}: {body[:400]!r}"


def call(api, method: str, path: str, *, json=None, data=None, headers=None, params=None):
    """One request through the test client; times it and fails on a 5xx or a slow answer."""
    url = path if path.startswith("http") else f"{api.root}{path}"
    start = time.perf_counter()
    r = api.session.request(method, url, json=json, data=data, params=params, headers=api.headers(headers),
                            timeout=CLIENT_TIMEOUT)
    seconds = time.perf_counter() - start
    label = f"{method} {r.url[:150]}"
    _record(label, r.content)
    assert r.status_code < 500, f"{label} -> {r.status_code}: {r.text[:400]}"
    assert seconds < MAX_SECONDS, f"{label} took {seconds:.2f} s"
    return r


def check_problem(status: int, content_type: str | None, raw: bytes, where: str) -> dict:
    assert content_type == PROBLEM, f"{where}: Content-Type {content_type!r}, body {raw[:300]!r}"
    body = json.loads(raw)
    keys = PROBLEM_KEYS + (["invalidParams"] if status == 400 else [])
    assert list(body) == keys, f"{where}: problem keys {list(body)}"
    assert body["status"] == status, where
    for key in ("code", "title", "detail", "instance"):
        assert isinstance(body[key], str) and body[key], f"{where}: empty {key}: {body}"
    assert re.search(r"/ref/fouten/[A-Za-z]+/$", body["type"]), f"{where}: type {body['type']!r}"
    if status == 400:
        params = body["invalidParams"]
        assert isinstance(params, list) and params, f"{where}: invalidParams {params!r}"
        for p in params:
            assert list(p) == ["name", "code", "reason"] and all(isinstance(v, str) and v for v in p.values()), \
                f"{where}: invalidParam {p!r}"
    return body


def assert_problem(r, status: int | None = None) -> dict:
    where = f"{r.request.method} {r.url[:150]}"
    assert 400 <= r.status_code < 500, f"{where}: expected a 4xx problem, got {r.status_code}: {r.text[:400]}"
    if status is not None:
        assert r.status_code == status, f"{where}: expected {status}, got {r.status_code}: {r.text[:400]}"
    return check_problem(r.status_code, r.headers.get("Content-Type"), r.content, where)


def params_of(r) -> list[tuple[str, str]]:
    return [(p["name"], p["code"]) for p in assert_problem(r, 400)["invalidParams"]]


@dataclass
class RawResponse:
    status: int
    head: str
    headers: list[tuple[str, str]]
    body: bytes
    seconds: float

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)


def raw_request(server_url: str, method: bytes, target: bytes, header_lines: list[bytes] = (), body: bytes = b"",
                *, content_length: int | None = None, auth: bool = True) -> RawResponse:
    """A request written byte for byte on a socket (requests and http.client refuse CR/LF in header values and
    normalise `..`). The answer is read up to its Content-Length, so a server that waits for more body still
    has to answer."""
    parts = urlsplit(server_url)
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: " + parts.netloc.encode(), b"Connection: close"]
    if auth:
        lines.append(b"Authorization: Bearer " + token().encode())
    lines += list(header_lines)
    if body or content_length is not None:
        lines += [b"Content-Type: application/json",
                  b"Content-Length: " + str(len(body) if content_length is None else content_length).encode()]
    start = time.perf_counter()
    with socket.create_connection((parts.hostname, parts.port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *header_lines_in = head.decode("latin-1").split("\r\n")
        headers = []
        for line in header_lines_in:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        length = next((int(v) for k, v in headers if k == "content-length"), None)
        while length is None or len(rest) < length:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            rest += chunk
    seconds = time.perf_counter() - start
    status = int(status_line.split(" ")[1]) if status_line.startswith("HTTP/") else 0
    response = RawResponse(status, head.decode("latin-1"), headers, rest, seconds)
    label = f"{method.decode()} {target[:150]!r} (raw)"
    _record(label, rest)
    assert 0 < status < 500, f"{label} -> {status_line!r}: {rest[:400]!r}"
    assert seconds < MAX_SECONDS, f"{label} took {seconds:.2f} s"
    return response


def assert_raw_problem(r: RawResponse, status: int, where: str) -> dict:
    assert r.status == status, f"{where}: expected {status}, got {r.status}: {r.body[:300]!r}"
    return check_problem(r.status, r.header("content-type"), r.body, where)


# ---------------------------------------------------------------- state: nothing stored, server up
class State:
    """The list as served plus the rows of the klant and audit-trail tables, taken before hostile requests."""

    def __init__(self, api, engine):
        self.api, self.engine = api, engine
        self.before = self.snapshot()

    def snapshot(self):
        r = self.api.get("/klanten")
        assert r.status_code == 200, f"GET /klanten afterwards: {r.status_code} {r.text[:300]}"
        with self.engine.connect() as conn:          # a dropped table fails here too
            rows = {t: conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one() for t in TABLES}
        return r.json(), rows

    def assert_unchanged(self):
        after = self.snapshot()
        assert after[1] == self.before[1], f"rows changed: {self.before[1]} -> {after[1]}"
        assert after[0] == self.before[0], "the klanten as served changed"


@pytest.fixture
def state(api, engine):
    return lambda: State(api, engine)


@pytest.fixture
def body_limit(server) -> int:
    """The server's body limit (KLANTEN_MAX_BODY_BYTES, 1 MiB by default), read from its settings."""
    limit = server.app.settings.max_body_bytes
    assert limit < 2 * MiB, "the 2 MiB and 8 MiB cases assume the default limit of 1 MiB"
    return limit


def create_target(api, subject_type: str = SUBJECT_TYPES[0]) -> str:
    """The stored klant that PUT and PATCH aim at (a valid body: the control for every hostile variant)."""
    r = api.post("/klanten", json=valid_body(subject_type, TARGET_KLANTNUMMER[subject_type]))
    assert r.status_code == 201, r.text
    return r.json()["url"]


def hostile_bodies(field: Field, value, target: str):
    """(method, path, body) for POST, PUT and PATCH, each valid except for `value` at `field`."""
    t = field.subject_type
    yield "POST", "/klanten", put(valid_body(t), field, value)
    yield "PUT", target, put(valid_body(t, TARGET_KLANTNUMMER[t]), field, value)
    yield "PATCH", target, put({}, field, value)


def error_of(params: list[tuple[str, str]], name: str, code: str, where: str) -> None:
    names = {n for n, _ in params}
    assert names == {name}, f"{where}: expected errors for {name} only, got {params}"
    assert code in {c for _, c in params}, f"{where}: expected code {code} for {name}, got {params}"


# ================================================================ body size (413)
def _oversized(size: int) -> bytes:
    """A well-formed JSON object of exactly `size` bytes."""
    head, tail = b'{"achternaam": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def _chunks(size: int, chunk: int = 64 * 1024):
    body = _oversized(size)
    for i in range(0, len(body), chunk):
        yield body[i:i + chunk]


@pytest.mark.parametrize("size", [2 * MiB, 8 * MiB], ids=["2MiB", "8MiB"])
@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
def test_oversized_body_is_413(api, state, body_limit, size, transfer):
    target = create_target(api)
    st = state()
    for method, path in (("POST", "/klanten"), ("PUT", target), ("PATCH", target)):
        data = _oversized(size) if transfer == "content-length" else _chunks(size)
        r = call(api, method, path, data=data, headers={"Content-Type": "application/json"})
        if transfer == "chunked":
            assert "Content-Length" not in r.request.headers
            assert r.request.headers.get("Transfer-Encoding") == "chunked"
        else:
            assert r.request.headers["Content-Length"] == str(size)
        assert_problem(r, 413)
    st.assert_unchanged()


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
def test_body_limit_is_exact(api, state, body_limit, transfer):
    """At the limit the body is read and validated (400, too long an achternaam); one byte more is 413."""
    st = state()
    at = _oversized(body_limit) if transfer == "content-length" else _chunks(body_limit)
    r = call(api, "POST", "/klanten", data=at, headers={"Content-Type": "application/json"})
    assert ("achternaam", "max_length") in params_of(r)
    over = _oversized(body_limit + 1) if transfer == "content-length" else _chunks(body_limit + 1)
    assert_problem(call(api, "POST", "/klanten", data=over, headers={"Content-Type": "application/json"}), 413)
    st.assert_unchanged()


@pytest.mark.parametrize("case", ["wrong type", "NUL", "too long"])
def test_chunked_hostile_body_is_validated_like_any_other(api, state, case):
    """The same hostile fields sent with Transfer-Encoding: chunked (no Content-Length) get the same 400: a
    body must not go unread, or be read as empty, because of how it was framed."""
    target = create_target(api)
    st = state()
    value = {"wrong type": 12345, "NUL": "a\x00b", "too long": "x" * 201}[case]
    code = {"wrong type": "invalid", "NUL": "null_characters_not_allowed", "too long": "max_length"}[case]
    failures = []
    for method, path, body in (("POST", "/klanten", {**valid_body(), "achternaam": value}),
                               ("PUT", target, {**valid_body(klantnummer="doel1"), "achternaam": value}),
                               ("PATCH", target, {"achternaam": value})):
        data = iter([json.dumps(body).encode()])
        r = call(api, method, path, data=data, headers={"Content-Type": "application/json"})
        assert r.request.headers.get("Transfer-Encoding") == "chunked"
        if r.status_code != 400:
            failures.append(f"{method} (chunked): {r.status_code} {r.text[:200]}")
        elif params_of(r) != [("achternaam", code)]:
            failures.append(f"{method} (chunked): 400 {params_of(r)}")
    assert not failures, "\n".join(failures)
    st.assert_unchanged()


@pytest.mark.parametrize("declared", [8 * MiB, 2 ** 62], ids=["8MiB", "2^62"])
def test_declared_length_over_the_limit_is_answered_without_waiting_for_the_body(server, api, state, body_limit,
                                                                                 declared):
    """Content-Length says more than the limit, but only 16 bytes come: 413 at once, not a wait for the rest."""
    st = state()
    r = raw_request(server.url, b"POST", b"/api/v1/klanten", body=b'{"achternaam": "', content_length=declared)
    assert_raw_problem(r, 413, f"POST with Content-Length {declared}")
    st.assert_unchanged()


def test_gzip_bomb_is_not_inflated(api, state, body_limit):
    """A 10 MiB body compressed to a few kB: the server does not inflate request bodies, so this is a 4xx."""
    st = state()
    bomb = gzip.compress(_oversized(10 * MiB))
    assert len(bomb) < body_limit
    r = call(api, "POST", "/klanten", data=bomb,
             headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert_problem(r)
    st.assert_unchanged()


# ================================================================ deep nesting, encodings, whole-body types
def _deep(kind: str) -> str:
    return "[" * DEPTH + "]" * DEPTH if kind == "array" else '{"a": ' * DEPTH + "1" + "}" * DEPTH


def _with(body: dict, key_path: tuple, raw: str) -> str:
    """The JSON text of `body` with the raw JSON `raw` placed at key_path (the last key is added)."""
    marker = "__HOSTILE__"
    node = body
    for key in key_path[:-1]:
        node = node.setdefault(key, {})
    node[key_path[-1]] = marker
    return json.dumps(body).replace(json.dumps(marker), raw)


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("where", ["body", "adres", "subjectIdentificatie", "verblijfsadres", "unknown key"])
def test_json_nested_10000_deep_is_400(api, state, kind, where):
    target = create_target(api)
    st = state()
    deep = _deep(kind)
    key_path = {"adres": ("adres",), "subjectIdentificatie": ("subjectIdentificatie",),
                "verblijfsadres": ("subjectIdentificatie", "verblijfsadres"), "unknown key": ("onbekend",)}.get(where)
    for method, path in (("POST", "/klanten"), ("PUT", target), ("PATCH", target)):
        base = {} if method == "PATCH" else valid_body(klantnummer="1111" if method == "POST" else "doel1")
        text = deep if key_path is None else _with(base, key_path, deep)
        r = call(api, method, path, data=text.encode(), headers={"Content-Type": "application/json"})
        assert_problem(r, 400)
    st.assert_unchanged()


VALID = json.dumps(valid_body()).encode()
BAD_ENCODINGS = {
    "0xff in a value": VALID.replace(b"Testpersoon", b"Test\xffpersoon"),
    "0xfe 0xff in a key": VALID.replace(b'"klantnummer"', b'"klant\xfe\xffnummer"'),
    "overlong encoding": VALID.replace(b"Testpersoon", b"Test\xc0\xafpersoon"),
    "CESU-8 surrogate": VALID.replace(b"Testpersoon", b"Test\xed\xa0\x80persoon"),
    "truncated sequence": VALID.replace(b"Testpersoon", b"Testpersoon\xe2\x82"),
    "latin-1 byte": VALID.replace(b"Testpersoon", b"Testp\xe9rsoon"),
    "raw NUL byte in a string": VALID.replace(b"Testpersoon", b"Test\x00persoon"),
    "UTF-8 BOM": b"\xef\xbb\xbf" + VALID,
    "UTF-16 with BOM": VALID.decode().encode("utf-16"),
    "UTF-32": VALID.decode().encode("utf-32"),
}


@pytest.mark.parametrize("variant", list(BAD_ENCODINGS))
def test_badly_encoded_body_is_400(api, state, variant):
    target = create_target(api)
    st = state()
    for method, path in (("POST", "/klanten"), ("PUT", target), ("PATCH", target)):
        r = call(api, method, path, data=BAD_ENCODINGS[variant],
                 headers={"Content-Type": "application/json; charset=utf-8"})
        assert_problem(r, 400)
    st.assert_unchanged()


WHOLE_BODIES = ["[]", json.dumps([valid_body()]), '"klant"', "12345", "1.5", "true", "false", "null"]


@pytest.mark.parametrize("raw", WHOLE_BODIES, ids=["empty array", "array of a klant", "string", "integer", "float",
                                                   "true", "false", "null"])
def test_non_object_as_the_whole_body_is_400(api, state, raw):
    target = create_target(api)
    st = state()
    for method, path in (("POST", "/klanten"), ("PUT", target), ("PATCH", target)):
        r = call(api, method, path, data=raw.encode(), headers={"Content-Type": "application/json"})
        assert params_of(r) == [("nonFieldErrors", "invalid")], f"{method}: {r.text}"
    st.assert_unchanged()


HUGE_DIGITS = "1" * 5000          # beyond Python's 4300-digit int conversion limit


@pytest.mark.parametrize("raw, name, code", [
    (HUGE_DIGITS, "adres.huisnummer", None),
    ("1e400", "adres.huisnummer", "invalid"),
    ("NaN", "adres.huisnummer", "invalid"),
    ("-Infinity", "adres.huisnummer", "invalid"),
    ("1" + "0" * 30, "adres.huisnummer", "max_value"),
    ("-1", "adres.huisnummer", "min_value"),
], ids=["5000 digits", "1e400", "NaN", "-Infinity", "10^30", "-1"])
def test_extreme_numbers_are_400(api, state, raw, name, code):
    """Numbers JSON allows (or Python's parser accepts) but no integer field can hold. A 5000-digit integer
    exceeds Python's int-conversion limit: it must be refused as bad input, in a field, an unknown key or as
    the whole body."""
    target = create_target(api)
    st = state()
    for method, path in (("POST", "/klanten"), ("PUT", target), ("PATCH", target)):
        base = {} if method == "PATCH" else valid_body(klantnummer="1111" if method == "POST" else "doel1")
        r = call(api, method, path, data=_with(base, ("adres", "huisnummer"), raw).encode(),
                 headers={"Content-Type": "application/json"})
        params = params_of(r)
        if code is not None:
            assert params == [(name, code)], f"{method}: {params}"
    if raw == HUGE_DIGITS:
        for text in (HUGE_DIGITS, _with(valid_body(), ("onbekend",), HUGE_DIGITS)):
            r = call(api, "POST", "/klanten", data=text.encode(), headers={"Content-Type": "application/json"})
            assert_problem(r, 400)
    st.assert_unchanged()


# ================================================================ every field: length, NUL, surrogates, types
def _text(field: Field, n: int, filler: str = "x") -> str:
    """A value of exactly n characters, well-formed for the field's format where one is required."""
    fmt = field.schema.get("format")
    if fmt == "uri":                     # loopback port 9: a subject check (kla-002) is refused at once
        prefix = "http://127.0.0.1:9/"
        return prefix + filler * (n - len(prefix))
    if fmt == "email":
        suffix = "@example.com"
        return "a" * (n - len(suffix)) + suffix
    return filler * n


def _spoiler(field: Field) -> tuple[tuple, tuple[str, str]]:
    """Another field of the same object set to a wrong type: it makes the body invalid (nothing is stored)
    without hiding the checks of `field`. Returns its path and the expected (name, code)."""
    if field.path[0] == "subjectIdentificatie" and len(field.path) > 1:
        props = SCHEMAS[IDENTIFICATION[field.subject_type]]["properties"]
        key, prop = next((k, p) for k, p in props.items()
                         if p.get("type") in ("string", "array") and k != field.path[1])
        code = "invalid" if prop["type"] == "string" else "not_a_list"
        return ("subjectIdentificatie", key), (f"subjectIdentificatie.{key}", code)
    key = next(k for k in ("functie", "bedrijfsnaam") if k != field.path[0])
    return (key,), (key, "invalid")


@pytest.mark.parametrize("field", LENGTH_FIELDS, ids=lambda f: f.id)
def test_string_field_at_max_length_plus_one_is_400_max_length(api, state, field):
    target = create_target(api, field.subject_type)
    st = state()
    n = field.schema["maxLength"]
    for method, path, body in hostile_bodies(field, _text(field, n + 1), target):
        r = call(api, method, path, json=body)
        error_of(params_of(r), field.name, "max_length", method)
        reasons = [p["reason"] for p in r.json()["invalidParams"] if p["code"] == "max_length"]
        assert any(str(n) in reason for reason in reasons), f"{method}: {reasons}"
    # the boundary: exactly maxLength is no max_length error (a spoiler elsewhere keeps the body from being stored)
    body = put(valid_body(field.subject_type), field, _text(field, n))
    spoiler_path, spoiler_error = _spoiler(field)
    node = body
    for key in spoiler_path[:-1]:
        node = node[key]
    node[spoiler_path[-1]] = 12345
    params = params_of(call(api, "POST", "/klanten", json=body))
    assert spoiler_error in params, params
    assert (field.name, "max_length") not in params, f"exactly {n} characters refused: {params}"
    st.assert_unchanged()


def _with_nul(field: Field) -> str:
    fmt = field.schema.get("format")
    if fmt == "uri":
        return "http://example.com/a\x00b"
    if fmt == "email":
        return "a\x00b@example.com"
    return "\x00" if field.schema.get("maxLength", 3) < 3 else "a\x00b"


@pytest.mark.parametrize("field", STRING_FIELDS, ids=lambda f: f.id)
def test_nul_character_in_string_field_is_400(api, state, field):
    """A raw \\u0000 escape: null_characters_not_allowed. An enum field answers invalid_choice instead (a
    choice is checked before anything else, as the reference's ChoiceField does)."""
    target = create_target(api, field.subject_type)
    st = state()
    code = "invalid_choice" if "enum" in field.schema else "null_characters_not_allowed"
    value = _with_nul(field)
    for method, path, body in hostile_bodies(field, value, target):
        r = call(api, method, path, json=body)
        assert "\\u0000" in r.request.body.decode()
        error_of(params_of(r), field.name, code, method)
    st.assert_unchanged()


@pytest.mark.parametrize("field", STRING_FIELDS, ids=lambda f: f.id)
def test_lone_surrogate_in_string_field_is_400(api, state, field):
    """"\\ud800" is valid JSON but no Unicode text: 400 invalid for the field, never a 500 from the database."""
    target = create_target(api, field.subject_type)
    st = state()
    value = {"uri": "http://example.com/\ud800", "email": "a\ud800@example.com"}.get(
        field.schema.get("format"), "\ud800" if field.schema.get("maxLength", 3) < 3 else "a\ud800b")
    for method, path, body in hostile_bodies(field, value, target):
        r = call(api, method, path, json=body)
        assert "\\ud800" in r.request.body.decode()
        assert params_of(r) == [(field.name, "invalid")], f"{method}: {r.text}"
    st.assert_unchanged()


def wrong_values(field: Field) -> list[tuple[object, str, str]]:
    """(value, expected error name, expected code) for every wrong JSON type of the field."""
    kind, name = field.kind, field.name
    if kind == "string":
        out = [(v, name, "invalid") for v in (12345, 1.5, True, ["x"], {})]
    elif kind == "integer":
        out = [(v, name, "invalid") for v in ("abc", True, [], {})]
    elif kind == "object":
        out = [(v, f"{name}.nonFieldErrors", "invalid") for v in ("x", 12345, True, [{}])]
    elif kind == "array":
        out = [(v, name, "not_a_list") for v in ("x", 12345, True, {})] + [([12345], f"{name}.0", "invalid")]
    else:
        raise AssertionError(kind)
    if not field.null_allowed:
        out.append((None, name, "null"))
    return out


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.id)
def test_wrong_json_type_is_400_with_name_and_code(api, state, field):
    target = create_target(api, field.subject_type)
    st = state()
    for value, name, code in wrong_values(field):
        for method, path, body in hostile_bodies(field, value, target):
            r = call(api, method, path, json=body)
            assert params_of(r) == [(name, code)], f"{method} {json.dumps(value)}: {r.text}"
    st.assert_unchanged()


def test_null_identification_on_create_is_400(api, state):
    """README difference 7: null removes subjectIdentificatie on PUT/PATCH; on create there is nothing to remove."""
    st = state()
    for t in SUBJECT_TYPES:
        r = call(api, "POST", "/klanten", json={**valid_body(t), "subjectIdentificatie": None})
        assert params_of(r) == [("subjectIdentificatie", "null")], r.text
    st.assert_unchanged()


# ================================================================ query strings
def _list_count(r) -> int:
    assert r.status_code == 200, r.text
    return r.json()["count"]


@pytest.mark.parametrize("name", FILTERS + ["onbekendeParameter", "p" * LONG], ids=lambda n: n[:30])
def test_20kb_query_value_is_200_or_400(api, state, name):
    create_target(api)
    st = state()
    schema = FILTER_SCHEMA.get(name)
    values = ["x" * LONG, "1" * LONG, "é" * (LONG // 2)] if len(name) < 100 else ["1"]   # a 20 kB name: short value
    if schema is not None and schema.get("format") == "uri":
        values.append("http://example.com/" + "a" * LONG)
    for value in values:
        r = call(api, "GET", "/klanten", params={name: value})
        where = f"{name[:30]}={value[:20]}...({len(value)})"
        if schema is None:                                # unknown: ignored (README difference 13)
            assert _list_count(r) == 1, where
        elif name in RSIN_FILTERS:
            code = "only-digits" if not value.isdigit() else "invalid-length"
            assert params_of(r) == [(name, code)], where
        elif "enum" in schema:
            assert params_of(r) == [(name, "invalid_choice")], where
        elif schema.get("format") == "uri" and not value.startswith("http"):
            assert params_of(r) == [(name, "invalid")], where
        elif r.status_code == 200:
            assert _list_count(r) == 0, f"{where}: an exact-match filter matched"
        else:
            assert {n for n, _ in params_of(r)} == {name}, where
    st.assert_unchanged()


def test_long_values_on_every_filter_at_once(api, state):
    """2 kB on every filter in one request (the whole request line stays under uvicorn's 64 KiB limit)."""
    create_target(api)
    st = state()
    params = {name: ("http://example.com/" if FILTER_SCHEMA[name].get("format") == "uri" else "") + "1" * 2000
              for name in FILTERS}
    r = call(api, "GET", "/klanten", params=params)
    names = {n for n, _ in params_of(r)}
    assert names <= set(FILTERS) and "bronorganisatie" in names, names
    st.assert_unchanged()


def test_20kb_page_value_is_404_problem(api, state):
    """`page` is no filter: an invalid page is 404 `Ongeldige pagina.` (validators.py)."""
    st = state()
    for value in ("9" * LONG, "x" * LONG):
        body = assert_problem(call(api, "GET", "/klanten", params={"page": value}), 404)
        assert body["detail"] == "Ongeldige pagina."
    st.assert_unchanged()


CONTROL_VALUES = {"NUL": "%00", "NUL inside": "a%00b", "CR LF": "a%0D%0AX-Injected:%20yes",
                  "invalid UTF-8": "%FF%FE", "CESU-8 surrogate": "%ED%A0%80", "surrogate escape text": "%5Cud800"}


@pytest.mark.parametrize("value", list(CONTROL_VALUES.values()), ids=list(CONTROL_VALUES))
def test_control_characters_in_filter_values_are_200_or_400(api, state, value):
    """Every filter of GET /klanten with the value; all failures are collected into one message."""
    create_target(api)
    st = state()
    failures = []
    for name in FILTERS + ["onbekendeParameter"]:
        url = f"{api.root}/klanten?{name}={value}"
        start = time.perf_counter()
        r = api.session.get(url, headers=api.headers(), timeout=CLIENT_TIMEOUT)
        seconds = time.perf_counter() - start
        _record(f"GET {url}", r.content)
        if r.status_code >= 500 or seconds >= MAX_SECONDS:
            failures.append(f"{name}={value}: {r.status_code} in {seconds:.2f} s")
        elif r.status_code == 200:
            if name != "onbekendeParameter" and r.json()["count"] != 0:
                failures.append(f"{name}={value}: matched {r.json()['count']}")
        elif r.status_code == 400:
            assert {n for n, _ in params_of(r)} == {name}, r.text
        else:
            failures.append(f"{name}={value}: {r.status_code} {r.text[:200]}")
    assert not failures, "\n".join(failures)
    st.assert_unchanged()


# ================================================================ SQL injection
@pytest.mark.parametrize("payload", SQL_PAYLOADS)
def test_sql_injection_in_filter_values_has_no_effect(api, state, engine, payload):
    create_target(api)
    st = state()
    for name in FILTERS:
        r = call(api, "GET", "/klanten", params={name: payload})
        schema = FILTER_SCHEMA[name]
        if name in RSIN_FILTERS or "enum" in schema or schema.get("format") == "uri":
            assert {n for n, _ in params_of(r)} == {name}, f"{name}: {r.text}"
        else:
            assert _list_count(r) == 0, f"{name}={payload!r} matched"
    r = call(api, "GET", f"/klanten/{quote(payload, safe='')}")
    assert_problem(r, 404)
    st.assert_unchanged()
    assert _list_count(call(api, "GET", "/klanten")) == 1
    assert set(TABLES) <= set(sa.inspect(engine).get_table_names())


SQL_FIELDS = [("achternaam",), ("voornaam",), ("bedrijfsnaam",), ("functie",),
              ("adres", "straatnaam"), ("adres", "woonplaatsnaam"), ("subjectIdentificatie", "geslachtsnaam"),
              ("subjectIdentificatie", "voornamen")]


@pytest.mark.parametrize("payload", SQL_PAYLOADS)
def test_sql_injection_in_body_fields_is_stored_as_text(api, state, engine, payload):
    """Injection attempts in free-text fields are data: stored verbatim, found by exact match, nothing executed.
    In a validated field (bronorganisatie) the payload is a 400 and nothing is stored."""
    target = create_target(api)
    st = state()
    r = call(api, "POST", "/klanten", json={**valid_body(), "bronorganisatie": payload})
    assert {n for n, _ in params_of(r)} == {"bronorganisatie"}
    st.assert_unchanged()

    body = valid_body(klantnummer="sql1")
    for path in SQL_FIELDS:
        node = body
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = payload
    r = call(api, "POST", "/klanten", json=body, headers={"X-Audit-Toelichting": payload})
    assert r.status_code == 201, r.text
    stored = call(api, "GET", r.json()["url"]).json()
    for path in SQL_FIELDS:
        node = stored
        for key in path:
            node = node[key]
        assert node == payload, path
    assert call(api, "GET", r.json()["url"] + "/audittrail").json()[0]["toelichting"] == payload
    for name in ("achternaam", "bedrijfsnaam", "functie", "adres__straatnaam"):
        assert _list_count(call(api, "GET", "/klanten", params={name: payload})) == 1, name
    assert _list_count(call(api, "GET", "/klanten")) == 2
    assert call(api, "GET", target).json() == st.before[0]["results"][0]
    assert set(TABLES) <= set(sa.inspect(engine).get_table_names())


# ================================================================ headers and paths
INJECTED_VALUES = {
    "CRLF and a header line": b"abc\r\nX-Injected: yes",
    "bare LF": b"abc\nX-Injected: yes",
    "bare CR": b"abc\rX-Injected: yes",
    "obs-fold": b"abc\r\n X-Injected: yes",
    "NUL": b"abc\x00X-Injected: yes",
    "vertical tab": b"abc\x0bX-Injected: yes",
    "percent-encoded CRLF": b"abc%0d%0aX-Injected:%20yes",
    "latin-1 bytes": "abcé\xff".encode("latin-1"),
    "U+2028 in UTF-8": "abc\u2028X-Injected: yes".encode(),
    "20 kB": b"a" * LONG,
}


@pytest.mark.parametrize("header", [b"X-Audit-Toelichting", b"X-NLX-Logrecord-ID", b"X-Request-ID"],
                         ids=lambda h: h.decode())
def test_header_injection_is_never_reflected(server, api, state, header):
    """Values sent raw. A value the HTTP parser refuses (bare CR/LF, NUL, other control bytes) is a 400 from the
    protocol layer, before the API; anything the API answers is the usual answer. No 5xx, never an extra
    response header, and X-Request-ID is only echoed when it is a plain token."""
    st = state()
    for label, value in INJECTED_VALUES.items():
        for method, body, expected in ((b"GET", b"", 200), (b"POST", b"{}", 400)):
            where = f"{header.decode()} {label} {method.decode()}"
            r = raw_request(server.url, method, b"/api/v1/klanten", [header + b": " + value], body)
            names = [k for k, _ in r.headers]
            assert "x-injected" not in names, f"{where}: injected header reflected:\n{r.head}"
            assert not re.search(r"(?im)^x-injected", r.head), f"{where}:\n{r.head}"
            request_id = r.header("x-request-id")
            if request_id is not None:
                assert SAFE_REQUEST_ID.fullmatch(request_id), f"{where}: X-Request-ID {request_id!r}"
            content_type = r.header("content-type") or ""
            if "json" not in content_type:              # refused by the HTTP parser, not by the API
                assert r.status == 400, f"{where}: {r.status} {r.body[:200]!r}"
            elif expected == 200:
                assert r.status == 200, f"{where}: {r.status} {r.body[:300]!r}"
            else:
                assert_raw_problem(r, 400, where)
    st.assert_unchanged()


@pytest.mark.parametrize("header", ["X-NLX-Logrecord-ID", "X-Audit-Toelichting"])
def test_long_audit_header_on_a_valid_write_is_never_5xx(api, state, header):
    """A 20 kB audit header on a valid create and PATCH: stored (the toelichting verbatim) or refused with a
    400 problem, never a database error."""
    target = create_target(api)
    value = "a" * LONG
    st = state()
    r = call(api, "POST", "/klanten", json=valid_body(klantnummer="lang1"), headers={header: value})
    if r.status_code == 201:
        if header == "X-Audit-Toelichting":
            assert call(api, "GET", r.json()["url"] + "/audittrail").json()[0]["toelichting"] == value
        call(api, "DELETE", r.json()["url"])
    else:
        assert_problem(r, 400)
    r = call(api, "PATCH", target, json={"achternaam": "Lang"}, headers={header: value})
    if r.status_code != 200:
        assert_problem(r, 400)
        st.assert_unchanged()


@pytest.mark.parametrize("claims", [
    {"user_id": "u" * 1000}, {"user_representation": "r" * 1000},
    {"user_id": "a\x00b"}, {"user_representation": "a\x00b"},
    {"user_id": "\ud800"}, {"user_representation": "\ud800"},
], ids=["long user_id", "long user_representation", "NUL user_id", "NUL user_representation",
        "surrogate user_id", "surrogate user_representation"])
def test_hostile_jwt_claims_on_a_write_are_never_5xx(api, state, claims):
    """The audit trail stores user_id / user_representation from a correctly signed JWT: a long value, a NUL or
    a lone surrogate must be handled (kept in a storable form, or refused with a 4xx), never a 500."""
    st = state()
    headers = {"Authorization": f"Bearer {token(**claims)}", "Content-Type": "application/json"}
    start = time.perf_counter()
    r = api.session.post(f"{api.root}/klanten", data=json.dumps(valid_body()), headers=headers,
                         timeout=CLIENT_TIMEOUT)
    _record(f"POST with claims {list(claims)}", r.content)
    assert r.status_code < 500, f"{claims!r:.80}: {r.status_code} {r.text[:300]}"
    assert time.perf_counter() - start < MAX_SECONDS
    if r.status_code == 201:
        assert call(api, "GET", r.json()["url"] + "/audittrail").status_code == 200
    else:
        assert_problem(r)
        st.assert_unchanged()


HOSTILE_PATHS = [
    "/api/v1/klanten%0A", "/api/v1/klanten/%0A", "/api/v1/klanten/{uuid}%0A", "/api/v1/klanten/%00",
    "/api/v1/klanten/{uuid}%00", "/api/v1/klanten/{uuid-1}%00", "/api/v1/klanten/%0D%0AX-Injected:%20yes",
    "/api/v1/klanten/../../../etc/passwd", "/api/v1/klanten/..%2F..%2F..%2Fetc%2Fpasswd", "/api/v1/../../etc/passwd",
    "/api/v1/klanten/x/../{uuid}", "/api/v1/klanten/{uuid}/..", "/api/v1/klanten/./{uuid}",
    "/api/v1/klanten/{uuid}/audittrail/..", "/api/v1/klanten/%2e%2e/%2e%2e/schema/openapi.yaml",
    "/api/v1/klanten/" + "a" * 10_000, "/api/v1/klanten/" + "a" * 60_000,
    "/api/v1/klanten/{uuid}/audittrail/" + "b" * LONG, "/api/v1/" + "x" * LONG,
    "/api/v1/klanten/'%20OR%201=1%20--", "/api/v1/klanten/1;%20DROP%20TABLE%20klant;--",
]


@pytest.mark.parametrize("template", HOSTILE_PATHS, ids=lambda p: p[8:50] + (f"...({len(p)})" if len(p) > 50 else ""))
def test_hostile_path_is_404_problem(server, api, state, template):
    """Sent raw (no client-side normalisation). `{uuid}` is a stored klant: DELETE through `x/../{uuid}` must
    not reach it."""
    target = create_target(api)
    st = state()
    uuid = target.rsplit("/", 1)[-1]
    path = template.replace("{uuid-1}", uuid[:-1]).replace("{uuid}", uuid).encode()
    for method in (b"GET", b"PUT", b"PATCH", b"DELETE"):
        body = b"{}" if method in (b"PUT", b"PATCH") else b""
        r = raw_request(server.url, method, path, body=body)
        where = f"{method.decode()} {path[:80]!r}"
        assert "x-injected" not in [k for k, _ in r.headers], where
        # the shape of an audit-trail line (GET only) makes another method 405, the answer for that resource
        assert_raw_problem(r, 405 if "/audittrail/" in template and method != b"GET" else 404, where)
    st.assert_unchanged()


def test_request_line_over_64kib_is_refused_and_the_server_stays_up(api, state):
    """uvicorn refuses a request line over 64 KiB before the API sees it: a 4xx (its own plain-text 400),
    never a 5xx or a hang, and the next request is served."""
    st = state()
    for path in ("/klanten?achternaam=" + "x" * 70_000, "/klanten/" + "a" * 70_000, "/klanten?" + "p" * 70_000 + "=1"):
        r = call(api, "GET", path)
        assert 400 <= r.status_code < 500, f"{path[:40]}: {r.status_code}"
        if r.headers.get("Content-Type") == PROBLEM:
            assert_problem(r)
    st.assert_unchanged()


# ================================================================ nothing internal in any answer
def test_no_response_leaks_internals(server, api):
    """A battery of the requests most likely to produce a stack trace or a database message, then every
    response body this file received: none shows a traceback, SQL, driver or file-system detail."""
    target = create_target(api)
    battery = [
        ("POST", "/klanten", HUGE_DIGITS.encode()),
        ("POST", "/klanten", _with(valid_body(), ("adres", "huisnummer"), HUGE_DIGITS).encode()),
        ("POST", "/klanten", _deep("array").encode()),
        ("POST", "/klanten", BAD_ENCODINGS["0xff in a value"]),
        ("POST", "/klanten", BAD_ENCODINGS["UTF-8 BOM"]),
        ("POST", "/klanten", json.dumps({**valid_body(), "achternaam": "\ud800\x00"}).encode()),
        ("PUT", target, b"[]"),
        ("PATCH", target, _oversized(2 * MiB)),
        ("GET", "/klanten?achternaam=%00", None),
        ("GET", "/klanten?klantnummer=a%00b", None),
        ("GET", "/klanten?bronorganisatie=" + "1" * LONG, None),
        ("GET", "/klanten/%27%20OR%201=1%20--", None),
    ]
    bodies = []
    for method, path, data in battery:
        r = api.session.request(method, f"{api.root}{path}", data=data, timeout=CLIENT_TIMEOUT,
                                headers=api.headers({"Content-Type": "application/json"} if data else None))
        bodies.append((f"{method} {path[:60]}", r.content))
    for headers in ({"X-NLX-Logrecord-ID": "a" * LONG},):
        r = api.session.post(f"{api.root}/klanten", json=valid_body(klantnummer="leak1"), timeout=CLIENT_TIMEOUT,
                             headers=api.headers(headers))
        bodies.append(("POST with a long X-NLX-Logrecord-ID", r.content))
    r = api.session.post(f"{api.root}/klanten", json=valid_body(klantnummer="leak2"), timeout=CLIENT_TIMEOUT,
                         headers={"Authorization": f"Bearer {token(user_id=chr(0xd800))}"})
    bodies.append(("POST with a surrogate user_id", r.content))
    leaks = [f"{label}: {leak!r} in {body[:300]!r}"
             for label, body in bodies + RESPONSES for leak in LEAKS if leak.encode() in body]
    assert not leaks, "\n".join(leaks)
    assert len(bodies) == len(battery) + 2
    assert call(api, "GET", "/klanten").status_code == 200
