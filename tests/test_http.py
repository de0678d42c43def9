"""Headers and errors from every layer, over real HTTP.

Sources: reference-behaviour.md §1 (Allow), §2 (error bodies), §3b (headers, content negotiation, HEAD, CORS),
§8 (OpenAPI document); DECISIONS #3 (problem+json), #4 (ETag / If-None-Match / HEAD), #12 (OpenAPI locations);
klanten-api-standaard.md "HTTP-Caching".
"""
from __future__ import annotations

import hashlib
import json
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from conftest import klant_body

PROBLEM = "application/problem+json"
API_VERSION = "1.0.0"
INSTANCE = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ETAG = re.compile(r'"[0-9a-f]{32}"')
PROBLEM_KEYS = ["type", "code", "title", "status", "detail", "instance"]
SPEC = yaml.safe_load((Path(__file__).resolve().parents[1] / "spec" / "openapi.yaml").read_text(encoding="utf-8"))

NOT_FOUND = ("NotFound", "not_found", "Niet gevonden.")
FORBIDDEN = ("PermissionDenied", "permission_denied", "Je hebt geen toestemming om deze actie uit te voeren.")
NOT_ACCEPTABLE = ("NotAcceptable", "not_acceptable", "Kan niet voldoen aan de opgegeven Accept header.")
UNSUPPORTED = ("UnsupportedMediaType", "unsupported_media_type", 'Ongeldige media type "{media_type}" in aanvraag.')
METHOD_NOT_ALLOWED = ("MethodNotAllowed", "method_not_allowed", 'Methode "{method}" niet toegestaan.')
PARSE_ERROR = ("ParseError", "parse_error", "Ongeldig samengestelde request.")
TOO_LARGE = ("RequestEntityTooLarge", "request_too_large", "Het verzoek is te groot.")


def base_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def assert_problem(r, status: int, soort: tuple[str, str, str], detail: str | None = None, *,
                   base: str | None = None, invalid_params: list | None = None) -> dict:
    """The whole problem document (everything but the random `instance`), its media type and API-version."""
    assert r.status_code == status, r.text
    assert r.headers.get("Content-Type") == PROBLEM
    assert r.headers.get("API-version") == API_VERSION
    body = r.json()
    klasse, code, title = soort
    assert INSTANCE.fullmatch(body.get("instance", "")), body
    expected = {"type": f"{base or base_of(r.url)}/ref/fouten/{klasse}/", "code": code, "title": title,
                "status": status, "detail": title if detail is None else detail, "instance": body["instance"]}
    keys = list(PROBLEM_KEYS)
    if invalid_params is not None:
        expected["invalidParams"] = invalid_params
        keys.append("invalidParams")
    assert body == expected
    assert list(body) == keys
    return body


def raw_request(server_url: str, method: str, path: str, headers: dict | None = None,
                body: bytes = b"") -> tuple[int, dict, bytes]:
    """One request on a fresh connection, read to the end: shows exactly what the server sent after the headers."""
    parts = urlsplit(server_url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    hdrs: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        hdrs[name.strip().lower()] = value.strip()
    return int(status_line.split(" ")[1]), hdrs, rest


def bearer(api) -> dict:
    return {"Authorization": api.headers()["Authorization"]}


@pytest.fixture
def klant(api) -> dict:
    r = api.post("/klanten", klant_body())
    assert r.status_code == 201, r.text
    return r.json()


def path_of(url: str) -> str:
    return urlsplit(url).path


# ---------------------------------------------------------------- API-version on every answer
def _status_200(api, klant):
    return api.get("/klanten")


def _status_201(api, klant):
    return api.post("/klanten", klant_body(klantnummer="2222"))


def _status_204(api, klant):
    return api.delete(klant["url"])


def _status_304(api, klant):
    etag = api.get(klant["url"]).headers["ETag"]
    return api.get(klant["url"], headers={"If-None-Match": etag})


def _status_400(api, klant):
    return api.post("/klanten", {})


def _status_403(api, klant):
    return api.get("/klanten", auth=False)


def _status_404(api, klant):
    return api.get("/klanten/00000000-0000-4000-8000-000000000000")


def _status_405(api, klant):
    return api.put("/klanten", {})


def _status_406(api, klant):
    return api.get("/klanten", headers={"Accept": "text/html"})


def _status_413(api, klant):
    return api.post("/klanten", data=b" " * (2 * 1024 * 1024), headers={"Content-Type": "application/json"})


def _status_415(api, klant):
    return api.post("/klanten", data=b"{}", headers={"Content-Type": "text/plain"})


@pytest.mark.parametrize("status, maak", [
    (200, _status_200), (201, _status_201), (204, _status_204), (304, _status_304), (400, _status_400),
    (403, _status_403), (404, _status_404), (405, _status_405), (406, _status_406), (413, _status_413),
    (415, _status_415),
], ids=lambda x: str(x) if isinstance(x, int) else "via")
def test_api_version_header_on_every_status(api, klant, status, maak):
    r = maak(api, klant)
    assert r.status_code == status, r.text
    assert r.headers.get("API-version") == API_VERSION


@pytest.mark.parametrize("path", ["/api/v1/schema/openapi.yaml", "/api/v1/schema/openapi.json",
                                  "/api/v1/openapi.yaml", "/api/v1/openapi.json", "/api/v1/schema/"])
def test_api_version_header_on_schema_and_doc_routes(api, server, path):
    r = api.session.get(server.url + path)
    assert r.status_code == 200
    assert r.headers.get("API-version") == API_VERSION


# ---------------------------------------------------------------- Location
def test_location_on_201_is_the_absolute_url_of_the_new_klant(api):
    r = api.post("/klanten", klant_body())
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == r.json()["url"]
    assert re.fullmatch(re.escape(api.root) + r"/klanten/[0-9a-f-]{36}", r.headers["Location"])
    assert api.get(r.headers["Location"]).status_code == 200


def test_no_location_on_other_successes(api, klant):
    for r in (api.get(klant["url"]), api.patch(klant["url"], {"functie": "x"}),
              api.put(klant["url"], klant_body(functie="y")), api.get("/klanten")):
        assert r.status_code == 200, r.text
        assert "Location" not in r.headers


# ---------------------------------------------------------------- ETag / If-None-Match (klant_read)
def test_etag_on_klant_read_is_the_quoted_md5_of_the_body(api, klant):
    r = api.get(klant["url"])
    assert r.status_code == 200
    etag = r.headers.get("ETag")
    assert etag and ETAG.fullmatch(etag), etag
    assert etag == '"' + hashlib.md5(r.content).hexdigest() + '"'
    assert api.get(klant["url"]).headers["ETag"] == etag          # stable while nothing changes


def test_etag_changes_when_the_klant_changes(api, klant):
    oud = api.get(klant["url"]).headers["ETag"]
    assert api.patch(klant["url"], {"functie": "directeur"}).status_code == 200
    r = api.get(klant["url"], headers={"If-None-Match": oud})
    assert r.status_code == 200
    assert r.json()["functie"] == "directeur"
    assert r.headers["ETag"] != oud
    assert ETAG.fullmatch(r.headers["ETag"])


def test_etag_differs_when_the_host_differs(api, klant):
    """Different but equivalent representations (another host in the urls) MUST have different ETags."""
    eigen = api.get(klant["url"])
    ander = api.get(klant["url"], headers={"Host": "klanten.example.org"})
    assert ander.status_code == 200
    assert ander.json()["url"].startswith("http://klanten.example.org/api/v1/klanten/")
    assert ander.headers["ETag"] != eigen.headers["ETag"]
    # and the other host's tag does not validate this host's representation
    assert api.get(klant["url"], headers={"If-None-Match": ander.headers["ETag"]}).status_code == 200


def test_etag_on_audittrail_read_is_the_quoted_md5_of_the_body(api, klant):
    """An audit row stores its urls as written (reference §6.2), so its body, and with it its ETag, does not
    depend on the host of the reading request: an equal body has an equal tag."""
    lijst = api.get(klant["url"] + "/audittrail")
    assert lijst.status_code == 200, lijst.text
    url = klant["url"] + "/audittrail/" + lijst.json()[0]["uuid"]
    r = api.get(url)
    assert r.status_code == 200
    etag = r.headers.get("ETag")
    assert etag and ETAG.fullmatch(etag), etag
    assert etag == '"' + hashlib.md5(r.content).hexdigest() + '"'
    ander = api.get(url, headers={"Host": "klanten.example.org"})
    assert ander.status_code == 200
    assert ander.json()["hoofdObject"] == klant["url"]
    assert ander.headers["ETag"] == '"' + hashlib.md5(ander.content).hexdigest() + '"'
    assert api.get(url, headers={"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize("vorm", ["exact", "list", "weak", "star"])
def test_if_none_match_gives_304_without_body_or_content_type(api, server, klant, vorm):
    etag = api.get(klant["url"]).headers["ETag"]
    waarde = {"exact": etag, "list": f'"0123456789abcdef0123456789abcdef", {etag}, "x"', "weak": f"W/{etag}",
              "star": "*"}[vorm]
    status, headers, body = raw_request(server.url, "GET", path_of(klant["url"]),
                                        {**bearer(api), "If-None-Match": waarde})
    assert status == 304
    assert body == b""
    assert "content-type" not in headers
    assert headers.get("etag") == etag
    assert headers.get("api-version") == API_VERSION


def test_if_none_match_with_another_tag_gives_200(api, klant):
    r = api.get(klant["url"], headers={"If-None-Match": '"0123456789abcdef0123456789abcdef"'})
    assert r.status_code == 200
    assert r.json() == klant
    assert ETAG.fullmatch(r.headers["ETag"])


def test_if_none_match_on_head_gives_304(api, server, klant):
    etag = api.get(klant["url"]).headers["ETag"]
    status, headers, body = raw_request(server.url, "HEAD", path_of(klant["url"]),
                                        {**bearer(api), "If-None-Match": etag})
    assert (status, body) == (304, b"")
    assert headers.get("etag") == etag


# ---------------------------------------------------------------- HEAD
IGNORED_HEADERS = {"date", "x-request-id"}


def _audittrail_paths(api, klant) -> tuple[str, str]:
    assert api.patch(klant["url"], {"functie": "x"}).status_code == 200
    lijst = api.get(klant["url"] + "/audittrail")
    assert lijst.status_code == 200, lijst.text
    return (path_of(klant["url"]) + "/audittrail",
            path_of(klant["url"]) + "/audittrail/" + lijst.json()[-1]["uuid"])


@pytest.mark.parametrize("soort", ["klant_list", "klant_read", "audittrail_list", "audittrail_read"])
def test_head_has_the_get_headers_and_no_body(api, server, klant, soort):
    if soort == "klant_list":
        path = "/api/v1/klanten"
    elif soort == "klant_read":
        path = path_of(klant["url"])
    else:
        path = _audittrail_paths(api, klant)[0 if soort == "audittrail_list" else 1]
    get_status, get_headers, get_body = raw_request(server.url, "GET", path, bearer(api))
    head_status, head_headers, head_body = raw_request(server.url, "HEAD", path, bearer(api))
    assert get_status == 200, get_body
    assert head_status == 200
    assert head_body == b""
    assert get_body != b""
    strip = lambda h: {k: v for k, v in h.items() if k not in IGNORED_HEADERS}  # noqa: E731
    assert strip(head_headers) == strip(get_headers)
    assert head_headers.get("content-length") == str(len(get_body))
    if soort in ("klant_read", "audittrail_read"):
        assert ETAG.fullmatch(head_headers.get("etag", "")), head_headers


@pytest.mark.parametrize("soort", ["klant_list", "klant_read", "audittrail_list", "audittrail_read"])
def test_head_needs_the_same_authorisation_as_get(api, server, klant, soort):
    if soort == "klant_list":
        path = "/api/v1/klanten"
    elif soort == "klant_read":
        path = path_of(klant["url"])
    else:
        path = _audittrail_paths(api, klant)[0 if soort == "audittrail_list" else 1]
    status, headers, body = raw_request(server.url, "HEAD", path)                 # no token
    assert status == 403
    assert body == b""
    assert headers.get("api-version") == API_VERSION
    # a client without the operation's scope is refused too
    verkeerd = "auditlezer" if soort.startswith("klant") else "lezer"
    status, _, body = raw_request(server.url, "HEAD", path, bearer(api.as_client(verkeerd)))
    assert (status, body) == (403, b"")


def test_head_on_unknown_klant_is_404_without_body(api, server):
    status, headers, body = raw_request(server.url, "HEAD", "/api/v1/klanten/00000000-0000-4000-8000-000000000000",
                                        bearer(api))
    assert (status, body) == (404, b"")
    assert headers.get("content-type") == PROBLEM


# ---------------------------------------------------------------- 405 and Allow
@pytest.mark.parametrize("method, pad, verwacht, verboden", [
    ("PUT", "/klanten", {"GET", "POST"}, {"PUT", "PATCH", "DELETE"}),
    ("DELETE", "/klanten", {"GET", "POST"}, {"PUT", "PATCH", "DELETE"}),
    ("POST", "/klanten/{uuid}", {"GET", "PUT", "PATCH", "DELETE"}, {"POST"}),
    ("POST", "/klanten/{uuid}/audittrail", {"GET"}, {"POST", "PUT", "PATCH", "DELETE"}),
    ("DELETE", "/klanten/{uuid}/audittrail/00000000-0000-4000-8000-000000000000", {"GET"},
     {"POST", "PUT", "PATCH", "DELETE"}),
])
def test_405_lists_the_documented_methods(api, klant, method, pad, verwacht, verboden):
    uuid = klant["url"].rsplit("/", 1)[1]
    r = api.request(method, pad.replace("{uuid}", uuid), json={})
    assert_problem(r, 405, METHOD_NOT_ALLOWED, f'Methode "{method}" niet toegestaan.')
    allow = {m.strip() for m in r.headers["Allow"].split(",")}
    assert verwacht <= allow, allow
    assert not (verboden & allow), allow


def test_405_exact_body_for_put_on_the_collection(api):
    """reference-behaviour §2.4, with our media type (DECISIONS #3); 405 comes regardless of the token."""
    for auth in (True, False):
        r = api.put("/klanten", {}, auth=auth)
        assert_problem(r, 405, METHOD_NOT_ALLOWED, 'Methode "PUT" niet toegestaan.')
        allow = [m.strip() for m in r.headers["Allow"].split(",")]
        assert "GET" in allow and "POST" in allow


# ---------------------------------------------------------------- content negotiation (Accept)
@pytest.mark.parametrize("accept", ["text/html", "application/xml", "text/html, application/xml;q=0.9"])
def test_406_for_an_unacceptable_accept(api, klant, accept):
    for r in (api.get("/klanten", headers={"Accept": accept}), api.get(klant["url"], headers={"Accept": accept}),
              api.get("/klanten", auth=False, headers={"Accept": accept})):   # negotiation comes before auth
        assert_problem(r, 406, NOT_ACCEPTABLE)


@pytest.mark.parametrize("accept", ["*/*", "application/json", "application/json; charset=utf-8", None])
def test_200_for_an_acceptable_or_missing_accept(api, klant, accept):
    r = api.get(klant["url"], headers={"Accept": accept})
    if accept is None:
        assert "Accept" not in r.request.headers
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == klant


# ---------------------------------------------------------------- request bodies (Content-Type, parsing, size)
@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/x-www-form-urlencoded"])
def test_415_for_an_unsupported_content_type(api, content_type):
    r = api.post("/klanten", data=json.dumps(klant_body()).encode(), headers={"Content-Type": content_type})
    assert_problem(r, 415, UNSUPPORTED, f'Ongeldige media type "{content_type}" in aanvraag.')
    assert api.get("/klanten").json()["count"] == 0


def test_415_for_a_body_without_content_type(api):
    r = api.post("/klanten", data=json.dumps(klant_body()).encode())
    assert "Content-Type" not in r.request.headers
    # reference-behaviour §3b: the missing type is reported as text/plain
    assert_problem(r, 415, UNSUPPORTED, 'Ongeldige media type "text/plain" in aanvraag.')
    assert api.get("/klanten").json()["count"] == 0


def test_415_on_put_and_patch_too(api, klant):
    for method in ("PUT", "PATCH"):
        r = api.request(method, klant["url"], data=b"{}", headers={"Content-Type": "text/plain"})
        assert_problem(r, 415, UNSUPPORTED, 'Ongeldige media type "text/plain" in aanvraag.')


def test_415_comes_after_authorisation(api):
    """reference-behaviour §3b/§3.12: the body is only read after the permission check."""
    assert_problem(api.post("/klanten", data=b"{}", auth=False, headers={"Content-Type": "text/plain"}), 403, FORBIDDEN)
    assert_problem(api.as_client("lezer").post("/klanten", data=b"{}", headers={"Content-Type": "text/plain"}),
                   403, FORBIDDEN)
    assert_problem(api.post("/klanten", data=b"{bad", auth=False, headers={"Content-Type": "application/json"}),
                   403, FORBIDDEN)


def test_415_and_parse_errors_come_before_the_404_check(api):
    """README difference: the media type and the JSON syntax are checked before the klant is looked up
    (the reference looks it up first); authorisation still comes before both."""
    onbekend = "/klanten/00000000-0000-4000-8000-000000000000"
    for method in ("PUT", "PATCH"):
        assert_problem(api.request(method, onbekend, data=b"{}", headers={"Content-Type": "text/plain"}),
                       415, UNSUPPORTED, 'Ongeldige media type "text/plain" in aanvraag.')
        r = api.request(method, onbekend, data=b"{bad", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["code"] == "parse_error"
        assert api.request(method, onbekend, data=b"{}", headers={"Content-Type": "application/json"}).status_code \
            == 404


def test_empty_body_is_an_empty_object_for_json_and_415_for_other_types(api):
    """An empty JSON body is {} (required-field errors, as the reference); another declared media type is
    415 even when the body is empty (README difference: the reference accepts any type for an empty body)."""
    r = api.post("/klanten", data=b"", headers={"Content-Type": "application/json"})
    body = r.json()
    assert_problem(r, 400, ("ValidationError", "invalid", "Invalid input."), body.get("detail"), invalid_params=[
        {"name": "bronorganisatie", "code": "required", "reason": "Dit veld is vereist."},
        {"name": "websiteUrl", "code": "required", "reason": "Dit veld is vereist."}])
    for content_type in ("text/plain", "application/xml"):
        r = api.post("/klanten", data=b"", headers={"Content-Type": content_type})
        assert_problem(r, 415, UNSUPPORTED, f'Ongeldige media type "{content_type}" in aanvraag.')


def test_415_for_application_wildcard_content_type(api):
    """README difference: a request body must be declared application/json (the reference also takes application/*)."""
    r = api.post("/klanten", data=json.dumps(klant_body()).encode(), headers={"Content-Type": "application/*"})
    assert_problem(r, 415, UNSUPPORTED, 'Ongeldige media type "application/*" in aanvraag.')
    assert api.get("/klanten").json()["count"] == 0


def test_201_for_json_with_a_charset(api):
    r = api.post("/klanten", data=json.dumps(klant_body()).encode("utf-8"),
                 headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 201, r.text
    assert r.json()["klantnummer"] == "1111"


JSON_SPELLINGS = ["APPLICATION/JSON", "Application/Json", "application/json ; x=y", "application/json ;charset=utf-8",
                  "Application/JSON; Charset=UTF-8", "application/json\t;\tcharset=utf-8"]


@pytest.mark.parametrize("content_type", JSON_SPELLINGS)
def test_json_media_type_is_case_insensitive_and_allows_whitespace_around_parameters(api, content_type):
    """RFC 9110 §8.3.1: type, subtype and parameter names are case-insensitive; whitespace may surround ';'."""
    r = api.post("/klanten", data=json.dumps(klant_body()).encode(), headers={"Content-Type": content_type})
    assert r.status_code == 201, r.text
    url = r.json()["url"]
    r = api.put(url, data=json.dumps(klant_body(functie="put")).encode(), headers={"Content-Type": content_type})
    assert r.status_code == 200, r.text
    assert r.json()["functie"] == "put"
    r = api.patch(url, data=json.dumps({"functie": "patch"}).encode(), headers={"Content-Type": content_type})
    assert r.status_code == 200, r.text
    assert api.get(url).json()["functie"] == "patch"


@pytest.mark.parametrize("content_type, media_type", [("TEXT/PLAIN", "text/plain"),
                                                      ("application/xml ; charset=utf-8", "application/xml"),
                                                      ("application/jsonx ; x=y", "application/jsonx")])
def test_415_for_another_type_in_any_spelling_has_the_dutch_detail(api, klant, content_type, media_type):
    detail = f'Ongeldige media type "{media_type}" in aanvraag.'
    r = api.post("/klanten", data=json.dumps(klant_body(klantnummer="2")).encode(),
                 headers={"Content-Type": content_type})
    assert_problem(r, 415, UNSUPPORTED, detail)
    for method in ("PUT", "PATCH"):
        r = api.request(method, klant["url"], data=json.dumps(klant_body(functie="x")).encode(),
                        headers={"Content-Type": content_type})
        assert_problem(r, 415, UNSUPPORTED, detail)
    assert api.get("/klanten").json()["count"] == 1
    assert api.get(klant["url"]).json() == klant


def assert_parse_error(r, detail: str) -> None:
    """reference §2.4 (code, title, detail); the spec's 400 is a ValidatieFout, so the one problem is also listed
    in invalidParams (the reference omits invalidParams here)."""
    assert_problem(r, 400, PARSE_ERROR, detail,
                   invalid_params=[{"name": "nonFieldErrors", "code": "parse_error", "reason": detail}])


def test_malformed_json_is_a_parse_error(api):
    r = api.post("/klanten", data=b"{bad", headers={"Content-Type": "application/json"})
    assert_parse_error(r, "JSON parse error - Expecting property name enclosed in double quotes: "
                          "line 1 column 2 (char 1)")


def test_malformed_json_on_patch_is_a_parse_error(api, klant):
    r = api.patch(klant["url"], data=b'{"functie": }', headers={"Content-Type": "application/json"})
    assert_parse_error(r, "JSON parse error - Expecting value: line 1 column 13 (char 12)")
    assert api.get(klant["url"]).json() == klant


def _parse_error_with_any_detail(r) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["detail"].startswith("JSON parse error - "), body
    assert_parse_error(r, body["detail"])


def test_invalid_utf8_is_a_parse_error(api):
    r = api.post("/klanten", data=b'{"bronorganisatie": "\xff\xfe"}', headers={"Content-Type": "application/json"})
    _parse_error_with_any_detail(r)


def test_json_nested_10000_deep_is_a_400(api):
    diep = b'{"adres": ' + b"[" * 10000 + b"]" * 10000 + b"}"
    r = api.post("/klanten", data=diep, headers={"Content-Type": "application/json"})
    _parse_error_with_any_detail(r)


def test_a_2_mib_body_is_413(api):
    groot = json.dumps(klant_body(functie="x" * (2 * 1024 * 1024))).encode()
    r = api.post("/klanten", data=groot, headers={"Content-Type": "application/json"})
    assert_problem(r, 413, TOO_LARGE, "De body is groter dan 1048576 bytes.")
    assert api.get("/klanten").json()["count"] == 0


def test_a_2_mib_chunked_body_is_413(api):
    def stukken():
        yield b'{"functie": "'
        for _ in range(64):
            yield b"x" * 32768
        yield b'"}'
    r = api.post("/klanten", data=stukken(), headers={"Content-Type": "application/json"})
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert_problem(r, 413, TOO_LARGE, "De body is groter dan 1048576 bytes.")


# ---------------------------------------------------------------- unknown paths and the problem document
@pytest.mark.parametrize("pad", ["/api/v1/onbekend", "/foo", "/api/v1/klanten/00000000-0000-4000-8000-000000000000",
                                 "/api/v1/klanten/niet-een-uuid", "/api/v2/klanten"])
def test_unknown_paths_are_404_problem_documents(api, server, pad):
    r = api.get(server.url + pad)
    assert_problem(r, 404, NOT_FOUND)


def test_error_type_is_absolute_on_the_request_host(api):
    r = api.get("/onbekend", headers={"Host": "klanten.example.org:8443"})
    assert_problem(r, 404, NOT_FOUND, base="http://klanten.example.org:8443")
    r = api.get("/klanten", auth=False, headers={"Host": "klanten.example.org"})
    assert_problem(r, 403, FORBIDDEN, base="http://klanten.example.org")


def test_error_instance_is_a_fresh_urn_uuid(api):
    eerste = api.get("/onbekend").json()["instance"]
    tweede = api.get("/onbekend").json()["instance"]
    assert INSTANCE.fullmatch(eerste) and INSTANCE.fullmatch(tweede)
    assert eerste != tweede


def test_403_without_token_exact_body(api):
    assert_problem(api.get("/klanten", auth=False), 403, FORBIDDEN)


def test_validation_error_body(api):
    r = api.post("/klanten", {})
    body = r.json()
    assert body["detail"], "detail of a validation error is never empty (README, Differences #3)"
    assert_problem(r, 400, ("ValidationError", "invalid", "Invalid input."), body["detail"], invalid_params=[
        {"name": "bronorganisatie", "code": "required", "reason": "Dit veld is vereist."},
        {"name": "websiteUrl", "code": "required", "reason": "Dit veld is vereist."}])


LEKKEN = ("Traceback", "sqlalchemy", "/work/", ".py")


def test_no_error_body_leaks_internals(api, server, klant):
    """Errors from every layer: routing, negotiation, auth, parsing, validation, size, storage lookups."""
    url = klant["url"]
    antwoorden = [
        api.get("/onbekend"), api.session.get(server.url + "/foo"), api.get("/klanten/niet-een-uuid"),
        api.get("/klanten/00000000-0000-4000-8000-000000000000/audittrail"),
        api.get(url + "/audittrail/niet-een-uuid"),
        api.get("/klanten", auth=False), api.get("/klanten", headers={"Authorization": "Bearer abc.def.ghi"}),
        api.get("/klanten", headers={"Authorization": "Basic Zm9vOmJhcg=="}),
        api.get("/klanten", headers={"Accept": "text/html"}),
        api.put("/klanten", {}), api.post(url, {}),
        api.post("/klanten", data=b"{bad", headers={"Content-Type": "application/json"}),
        api.post("/klanten", data=b"\xff\xfe", headers={"Content-Type": "application/json"}),
        api.post("/klanten", data=b"[" * 10000 + b"]" * 10000, headers={"Content-Type": "application/json"}),
        api.post("/klanten", data=b"{}", headers={"Content-Type": "text/plain"}),
        api.post("/klanten", data=b"x" * (2 * 1024 * 1024), headers={"Content-Type": "application/json"}),
        api.post("/klanten", {}), api.post("/klanten", []), api.post("/klanten", "tekst"),
        api.post("/klanten", klant_body(adres="x", subjectIdentificatie=[1], klantnummer={"a": 1})),
        api.post("/klanten", klant_body(voornaam="\x00", adres={"huisnummer": 10**30})),
        api.post("/klanten", klant_body(bronorganisatie="1" * 5000)),
        api.post("/klanten", klant_body()),                       # duplicate of `klant`
        api.put(url, []), api.patch(url, []), api.patch(url, {"subjectType": "vestiging"}),
        api.patch(url, {"adres": {"huisnummer": "abc"}}), api.put(url, {}),
        api.get("/klanten?page=abc"), api.get("/klanten?page=99999999999999999999"),
        api.get("/klanten?bronorganisatie=abc&subject=x&subjectType=foo"),
        api.get(url + "/audittrail"),
    ]
    for r in antwoorden:
        if r.status_code < 400:
            continue
        tekst = r.text
        for woord in LEKKEN:
            assert woord not in tekst, (r.request.method, r.request.url, r.status_code, tekst)
        assert r.headers.get("Content-Type") == PROBLEM, (r.request.method, r.request.url, r.status_code)
        body = r.json()
        assert body["status"] == r.status_code
        assert INSTANCE.fullmatch(body["instance"])
        assert body["type"].startswith(base_of(r.url) + "/ref/fouten/")


# ---------------------------------------------------------------- the OpenAPI document and docs
@pytest.mark.parametrize("pad", ["/api/v1/schema/openapi.yaml", "/api/v1/schema/openapi.json",
                                 "/api/v1/openapi.yaml", "/api/v1/openapi.json"])
def test_openapi_document_without_token(api, server, pad):
    r = api.session.get(server.url + pad)
    assert r.status_code == 200, r.text
    if pad.endswith(".json"):
        assert "application/json" in r.headers["Content-Type"]
        doc = r.json()
    else:
        assert "yaml" in r.headers["Content-Type"]
        doc = yaml.safe_load(r.text)
    assert tuple(int(p) for p in doc["openapi"].split(".")) >= (3, 0, 0)
    assert doc["servers"] == [{"url": f"{server.url}/api/v1"}]
    assert doc["servers"][0]["url"].endswith("/api/v1")
    assert doc["paths"] == SPEC["paths"]
    assert doc["components"] == SPEC["components"]


def test_openapi_servers_url_follows_the_host(api, server):
    r = api.session.get(server.url + "/api/v1/schema/openapi.json", headers={"Host": "klanten.example.org"})
    assert r.json()["servers"] == [{"url": "http://klanten.example.org/api/v1"}]


def test_docs_page(api, server):
    r = api.session.get(server.url + "/api/v1/schema/")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert "openapi.yaml" in r.text


# ---------------------------------------------------------------- CORS
def test_cors_origin_gets_allow_origin_star(api, klant):
    for r in (api.get("/klanten", headers={"Origin": "https://app.example.org"}),
              api.get(klant["url"], headers={"Origin": "https://app.example.org"}),
              api.get("/klanten", auth=False, headers={"Origin": "https://app.example.org"})):
        assert r.headers.get("Access-Control-Allow-Origin") == "*", (r.status_code, dict(r.headers))
    assert "Access-Control-Allow-Origin" not in api.get("/klanten").headers


@pytest.mark.parametrize("pad, methode", [("/api/v1/klanten", "POST"), ("/api/v1/klanten/{uuid}", "DELETE"),
                                          ("/api/v1/klanten/{uuid}/audittrail", "GET")])
def test_cors_preflight_without_token(api, server, klant, pad, methode):
    pad = pad.replace("{uuid}", klant["url"].rsplit("/", 1)[1])
    status, headers, body = raw_request(server.url, "OPTIONS", pad, {
        "Origin": "https://app.example.org", "Access-Control-Request-Method": methode,
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert status == 200, body
    assert body == b""
    assert headers.get("access-control-allow-origin") == "*"
    methods = {m.strip() for m in headers.get("access-control-allow-methods", "").split(",")}
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= methods
    allowed = {h.strip().lower() for h in headers.get("access-control-allow-headers", "").split(",")}
    assert {"authorization", "content-type", "accept", "accept-crs", "content-crs"} <= allowed
