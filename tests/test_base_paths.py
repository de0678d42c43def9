"""Where the APIs live (issue #11, DECISIONS #18, #19): Klanten at /api/v1 and at /klanten/api/v1 (Open Klant 1.x's
layout, which Open Klant 2's migrate_to_v2 and Valtimo call), one of them canonical (KLANTEN_KLANTEN_BASE_PATH,
default /api/v1, as the reference). Every URL the server writes (`url`, page links, `Location`, audit rows,
notifications) is on the canonical path, whichever path was asked; the alias answers the same bodies and ETags.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest
import requests
import yaml

from conftest import Api, klant_body, wait_for
from processen import KLANTEN_API, ROOT, vrije_poort
from klanten_api.apis import APIS, CONTACTMOMENTEN, KLANTEN, Layout, load_spec
from klanten_api.app import create_app
from klanten_api.http import path_templates
from klanten_api.settings import ConfigError, Settings
from test_http import raw_request
from test_klant_list import maak_veel
from test_notificaties import nrc_settings, received
from test_privacy_logging import vang_logs
from test_transport import lees_tot_eof, status_van, stuur_op_achtergrond, verbind

ALIAS = "/klanten/api/v1"
REFERENTIE = "/api/v1"
PUBLIEK = "https://klanten.gemeente.example"


def op(srv, pad: str = ALIAS, client_id: str = "alles") -> Api:
    """An Api client whose relative paths go to `pad` of `srv`."""
    api = Api(srv.url, client_id)
    api.root = f"{srv.url}{pad}"
    return api


def sessie() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


@pytest.fixture
def alias(server) -> Api:
    return op(server)


# ---------- every Klanten operation through the alias; what it writes is canonical ----------
def test_create_read_update_delete_and_audit_trail_through_the_alias(server, alias, api, subject_url):
    """Before: every request under /klanten/api/v1 was a 404, and migrate_to_v2 migrated nothing."""
    r = alias.post("/klanten", klant_body(subject_url))
    assert r.status_code == 201, r.text
    klant = r.json()
    kid = klant["url"].rsplit("/", 1)[1]
    canoniek = f"{server.url}{REFERENTIE}/klanten/{kid}"
    assert klant["url"] == canoniek
    assert r.headers["Location"] == canoniek

    via_alias, via_referentie = alias.get(f"/klanten/{kid}"), api.get(f"/klanten/{kid}")
    assert via_alias.status_code == 200, via_alias.text
    assert via_alias.content == via_referentie.content
    assert via_alias.headers["ETag"] == via_referentie.headers["ETag"]

    r = alias.patch(f"/klanten/{kid}", {"voornaam": "Anna"})
    assert r.status_code == 200, r.text
    assert r.json()["url"] == canoniek and r.json()["voornaam"] == "Anna"
    assert r.headers["ETag"] == api.get(f"/klanten/{kid}").headers["ETag"]
    put_body = {k: v for k, v in r.json().items() if k not in ("url", "subjectIdentificatie")}
    r = alias.put(f"/klanten/{kid}", {**put_body, "functie": "tester"},
                  headers={"If-Match": r.headers["ETag"]})
    assert r.status_code == 200, r.text
    assert r.json()["url"] == canoniek and r.json()["functie"] == "tester"

    audit = alias.get(f"/klanten/{kid}/audittrail")
    assert audit.status_code == 200, audit.text
    regels = audit.json()
    assert [(a["actie"], a["hoofdObject"], a["resourceUrl"]) for a in regels] == [
        ("create", canoniek, canoniek), ("partial_update", canoniek, canoniek), ("update", canoniek, canoniek)]
    assert all(a["wijzigingen"]["nieuw"]["url"] == canoniek for a in regels)
    regel = alias.get(f"/klanten/{kid}/audittrail/{regels[0]['uuid']}")
    assert regel.status_code == 200 and regel.json() == regels[0]
    assert regel.headers["ETag"] == api.get(f"/klanten/{kid}/audittrail/{regels[0]['uuid']}").headers["ETag"]

    assert alias.delete(f"/klanten/{kid}").status_code == 204
    assert api.get(f"/klanten/{kid}").status_code == 404
    assert alias.get(f"/klanten/{kid}").status_code == 404


def test_list_through_the_alias_pages_on_the_canonical_path(server, alias):
    """The page links are the request's URL (query and all, as the reference builds them) on the canonical base
    path: a URL the server writes, like every other."""
    alle = maak_veel(alias, 101, parallel=True)
    assert all(u.startswith(f"{server.url}{REFERENTIE}/klanten/") for u in alle)
    r = alias.get("/klanten?bronorganisatie=950428139")
    assert r.status_code == 200, r.text
    body = r.json()
    canoniek = f"{server.url}{REFERENTIE}/klanten"
    assert (body["count"], body["next"], body["previous"]) == (101, f"{canoniek}?bronorganisatie=950428139&page=2",
                                                               None)
    assert len(body["results"]) == 100
    tweede = alias.get("/klanten?bronorganisatie=950428139&page=2").json()
    assert tweede["previous"] == f"{canoniek}?bronorganisatie=950428139"
    assert tweede["next"] is None
    assert {k["url"] for k in body["results"]} | {k["url"] for k in tweede["results"]} == set(alle)


def test_notifications_of_writes_through_the_alias_name_the_canonical_url(server_factory, httpserver, subject_url):
    httpserver.expect_request("/api/v1/notificaties", method="POST").respond_with_json({}, status=201)
    srv = server_factory(**nrc_settings(httpserver.url_for("/api/v1/")))
    alias = op(srv)
    klant = alias.post("/klanten", klant_body(subject_url)).json()
    kid = klant["url"].rsplit("/", 1)[1]
    canoniek = f"{srv.url}{REFERENTIE}/klanten/{kid}"
    assert alias.patch(f"/klanten/{kid}", {"voornaam": "Anna"}).status_code == 200
    assert alias.delete(f"/klanten/{kid}").status_code == 204
    berichten = wait_for(lambda: (b := received(httpserver)) and len(b) == 3 and b, wat="3 notifications")
    assert [(b["actie"], b["hoofdObject"], b["resourceUrl"]) for b in berichten] == [
        ("create", canoniek, canoniek), ("partial_update", canoniek, canoniek), ("destroy", canoniek, canoniek)]


def test_if_none_match_on_the_alias_gives_304(server, alias, subject_url):
    kid = alias.post("/klanten", klant_body(subject_url)).json()["url"].rsplit("/", 1)[1]
    etag = alias.get(f"/klanten/{kid}").headers["ETag"]
    r = alias.get(f"/klanten/{kid}", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""
    status, headers, body = raw_request(server.url, "HEAD", f"{ALIAS}/klanten/{kid}",
                                        {"Authorization": alias.headers()["Authorization"]})
    assert (status, body, headers["etag"]) == (200, b"", etag)


def test_the_alias_checks_like_the_reference_path(server, alias, api):
    """Authorisation, 405 with the documented methods, 406, validation, 404: the same document, the same rules."""
    def beide(methode, pad, **kw):
        def vorm(antwoord):      # a problem's `instance` is unique per answer
            body = {k: v for k, v in antwoord.json().items() if k != "instance"} if antwoord.content else None
            return antwoord.status_code, antwoord.headers.get("Allow"), body

        a = alias.request(methode, pad, **kw)
        assert vorm(a) == vorm(api.request(methode, pad, **kw))
        return a.status_code

    assert beide("GET", "/klanten", auth=False) in (401, 403)
    assert alias.as_client("niets").get("/klanten").status_code == 403
    assert beide("PUT", "/klanten", json={}) == 405
    assert beide("GET", "/klanten", headers={"Accept": "text/html"}) == 406
    assert beide("POST", "/klanten", json={"bronorganisatie": "1"}) == 400
    assert beide("GET", f"/klanten/{uuid.uuid4()}") == 404


# ---------- the canonical path switched to /klanten/api/v1 ----------
@pytest.fixture
def omgekeerd(server_factory, httpserver):
    httpserver.expect_request("/api/v1/notificaties", method="POST").respond_with_json({}, status=201)
    return server_factory(klanten_base_path=ALIAS, **nrc_settings(httpserver.url_for("/api/v1/")))


def test_with_klanten_api_v1_canonical_everything_written_is_on_it(omgekeerd, httpserver, subject_url):
    referentie = op(omgekeerd, REFERENTIE)
    r = referentie.post("/klanten", klant_body(subject_url))
    assert r.status_code == 201, r.text
    kid = r.json()["url"].rsplit("/", 1)[1]
    canoniek = f"{omgekeerd.url}{ALIAS}/klanten/{kid}"
    assert r.json()["url"] == r.headers["Location"] == canoniek
    assert op(omgekeerd).get(f"/klanten/{kid}").content == referentie.get(f"/klanten/{kid}").content
    assert referentie.patch(f"/klanten/{kid}", {"voornaam": "Bo"}).json()["url"] == canoniek
    audit = referentie.get(f"/klanten/{kid}/audittrail").json()
    assert {(a["hoofdObject"], a["resourceUrl"]) for a in audit} == {(canoniek, canoniek)}
    lijst = referentie.get("/klanten").json()
    assert [k["url"] for k in lijst["results"]] == [canoniek]
    berichten = wait_for(lambda: (b := received(httpserver)) and len(b) == 2 and b, wat="2 notifications")
    assert {(b["hoofdObject"], b["resourceUrl"]) for b in berichten} == {(canoniek, canoniek)}

    for pad in (REFERENTIE, ALIAS):
        root = sessie().get(f"{omgekeerd.url}{pad}/", timeout=10)
        assert root.json() == {"klanten": f"{omgekeerd.url}{ALIAS}/klanten"}
        doc = sessie().get(f"{omgekeerd.url}{pad}/schema/openapi.json", timeout=10).json()
        assert doc["servers"] == [{"url": f"{omgekeerd.url}{ALIAS}"}]


def test_page_links_follow_the_canonical_setting(server_factory):
    srv = server_factory(klanten_base_path=ALIAS)
    referentie = op(srv, REFERENTIE)
    maak_veel(referentie, 101, parallel=True)
    assert referentie.get("/klanten").json()["next"] == f"{srv.url}{ALIAS}/klanten?page=2"


# ---------- API roots, documents, Swagger UI ----------
@pytest.mark.parametrize("pad", [REFERENTIE, ALIAS])
def test_api_root_on_both_klanten_paths_lists_the_canonical_collection(server, pad):
    r = sessie().get(f"{server.url}{pad}/", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json" and r.headers["API-version"] == "1.0.0"
    assert r.json() == {"klanten": f"{server.url}{REFERENTIE}/klanten"}


@pytest.mark.parametrize("pad, doel", [(ALIAS, f"{ALIAS}/"), (f"{ALIAS}/schema", f"{ALIAS}/schema/")])
def test_alias_without_slash_redirects_on_klanten_base_url(server_factory, pad, doel):
    srv = server_factory(base_url=PUBLIEK)
    r = sessie().get(f"{srv.url}{pad}", allow_redirects=False, timeout=10)
    assert r.status_code == 301, r.text
    assert r.headers["Location"] == f"{PUBLIEK}{doel}"


@pytest.mark.parametrize("document", ["/schema/openapi.yaml", "/schema/openapi.json", "/openapi.yaml",
                                      "/openapi.json"])
@pytest.mark.parametrize("pad", [REFERENTIE, ALIAS])
def test_schema_documents_on_both_paths_name_the_canonical_server(server_factory, pad, document):
    srv = server_factory(base_url=PUBLIEK)
    r = sessie().get(f"{srv.url}{pad}{document}", timeout=10)
    assert r.status_code == 200, r.text
    doc = r.json() if document.endswith(".json") else yaml.safe_load(r.text)
    assert doc["servers"] == [{"url": f"{PUBLIEK}{REFERENTIE}"}]
    assert doc["paths"] == load_spec(KLANTEN.spec)["paths"]


@pytest.mark.parametrize("pad", [REFERENTIE, ALIAS])
def test_docs_page_and_swagger_ui_on_both_paths(server, pad):
    docs = sessie().get(f"{server.url}{pad}/schema/", timeout=10)
    assert docs.status_code == 200 and docs.headers["Content-Type"].startswith("text/html")
    assert f'href="{pad}/schema/openapi.yaml"' in docs.text and "Klanten API 1.0" in docs.text
    ui = sessie().get(f"{server.url}{pad}/schema/ui/", timeout=10)
    assert ui.status_code == 200, ui.text
    assert "swagger-ui" in ui.text.lower()
    assert f"{pad}/schema/openapi.yaml" in ui.text
    assert sessie().get(f"{server.url}{pad}/schema/openapi.yaml", timeout=10).status_code == 200


# ---------- the HTTP layer on the alias ----------
def test_request_log_shows_alias_paths_safely(server, alias, subject_url):
    kid = alias.post("/klanten", klant_body(subject_url)).json()["url"].rsplit("/", 1)[1]
    paden = {f"{ALIAS}/klanten/{kid}": f"{ALIAS}/klanten/{kid}",
             f"{ALIAS}/klanten/{kid}/audittrail": f"{ALIAS}/klanten/{kid}/audittrail",
             f"{ALIAS}/klanten/jan.jansen@example.org": f"{ALIAS}/klanten/{{uuid}}",
             f"{ALIAS}/schema/openapi.yaml": f"{ALIAS}/schema/openapi.yaml",
             f"{ALIAS}/": f"{ALIAS}/",
             f"{ALIAS}/123456782": "(other)"}
    ids = {pad: str(uuid.uuid4()) for pad in paden}
    with vang_logs() as vanger:
        for pad, request_id in ids.items():
            alias.get(f"{server.url}{pad}?bronorganisatie=1&123456782", headers={"X-Request-ID": request_id})
        time.sleep(0.2)
    per_id = {e["request_id"]: e for e in vanger.events("request")}
    assert {pad: per_id[ids[pad]]["path"] for pad in paden} == paden
    geheel = per_id[ids[f"{ALIAS}/klanten/{kid}"]]
    assert (geheel["operation_id"], geheel["query_keys"], geheel["query_other"]) == (
        "klant_read", ["bronorganisatie"], 1)
    assert not [r for r in vanger.records if "jan.jansen" in json.dumps(vars(r), default=str)]


def test_host_check_applies_to_the_alias(server_factory):
    srv = server_factory(allowed_hosts=("klanten.gemeente.example",))
    status, _, body = raw_request(srv.url, "GET", f"{ALIAS}/klanten", {"Host": "attacker.example"})
    assert status == 400 and b"disallowed_host" in body
    status, _, _ = raw_request(srv.url, "GET", f"{ALIAS}/", {"Host": "attacker.example"})
    assert status == 400


def test_header_and_body_limits_apply_to_the_alias(server_factory):
    srv = server_factory(max_body_bytes=1000)
    r = op(srv).post("/klanten", klant_body(voornaam="x" * 2000))
    assert r.status_code == 413, r.text
    sock = verbind(srv.url)
    kop = f"GET {ALIAS}/klanten HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ".encode()
    zender = stuur_op_achtergrond(sock, kop + b"x" * (100 * 1024) + b"\r\n\r\n")
    antwoord, _ = lees_tot_eof(sock, 5.0)
    sock.close()
    zender.join(10)
    assert status_van(antwoord) == 431, antwoord[:200]


# ---------- the settings and the layout ----------
def test_settings_read_and_check_the_base_paths():
    assert Settings.from_env({}).klanten_base_path == "/api/v1"
    assert Settings.from_env({}).contactmomenten_base_path == "/contactmomenten/api/v1"
    assert Settings.from_env({"KLANTEN_KLANTEN_BASE_PATH": "/klanten/api/v1/"}).klanten_base_path == ALIAS
    for fout in ("klanten/api/v1", "/", "/api/../v1", "/api v1", "https://x/api/v1", "/api//v1"):
        with pytest.raises(ConfigError, match="KLANTEN_KLANTEN_BASE_PATH"):
            Settings.from_env({"KLANTEN_KLANTEN_BASE_PATH": fout})


@pytest.mark.parametrize("pad, fout", [("/api", "overlaps a path of the klanten API"),
                                       ("/api/v1/klanten", "overlaps a path of the klanten API"),
                                       ("/ref", "overlaps a path of the server itself")])
def test_a_base_path_that_overlaps_another_refuses_to_start(base_settings, pad, fout):
    from dataclasses import replace
    with pytest.raises(ConfigError, match=fout):
        create_app(replace(base_settings, klanten_base_path=pad))


def test_serve_refuses_an_overlapping_base_path_before_it_migrates(tmp_path, auth_config):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "KLANTEN_DEVELOPMENT": "true",
           "KLANTEN_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}", "KLANTEN_AUTH_CONFIG": str(auth_config),
           "KLANTEN_KLANTEN_BASE_PATH": "/api"}
    result = subprocess.run([*KLANTEN_API, "serve", "--port", str(vrije_poort())], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result
    assert "configuration error: KLANTEN_KLANTEN_BASE_PATH" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "serve.sqlite3").exists(), "serve migrated a database before refusing"


def test_a_base_path_of_its_own_is_served_in_front_of_the_supported_ones(server_factory, subject_url):
    srv = server_factory(klanten_base_path="/kcc/klanten/api/v1")
    r = op(srv, REFERENTIE).post("/klanten", klant_body(subject_url))
    assert r.status_code == 201, r.text
    assert r.json()["url"].startswith(f"{srv.url}/kcc/klanten/api/v1/klanten/")
    for pad in ("/kcc/klanten/api/v1", REFERENTIE, ALIAS):
        assert op(srv, pad).get("/klanten").json()["count"] == 1


def test_layout_of_the_default_settings():
    layout = Layout.from_settings(Settings())
    assert [(m.naam, m.base_paths, m.collecties) for m in layout.apis] == [
        ("klanten", (REFERENTIE, ALIAS), ("klanten",)),
        ("contactmomenten", ("/contactmomenten/api/v1",),
         ("contactmomenten", "klantcontactmomenten", "objectcontactmomenten"))]
    assert layout.canonical_path(f"{ALIAS}/klanten") == f"{REFERENTIE}/klanten"
    assert layout.eigen_pad("klanten", f"{ALIAS}/klanten/x") == layout.eigen_pad("klanten", "/api/v1/klanten/x")
    assert layout.eigen_pad("klanten", "/elders/api/v1/klanten/x") is None


def test_every_served_api_resolves_every_operation_in_its_own_module():
    """Both documents have an audittrail_list: each API needs its own handler module."""
    for mounted in Layout.from_settings(Settings()).apis:
        module = mounted.handler_module()
        for item in mounted.spec["paths"].values():
            for methode, operatie in item.items():
                if methode in ("get", "post", "put", "patch", "delete"):
                    assert callable(getattr(module, operatie["operationId"], None)), operatie["operationId"]
    assert CONTACTMOMENTEN not in APIS or CONTACTMOMENTEN.handlers != KLANTEN.handlers


def test_routes_of_the_contactmomenten_document_are_derived_like_klanten():
    """The HTTP layer needs nothing per API: ETags where the document declares them, Allow from its methods."""
    routes = {r.template: r for r in path_templates(load_spec(CONTACTMOMENTEN.spec)["paths"],
                                                    "/contactmomenten/api/v1")}
    detail = routes["/contactmomenten/api/v1/contactmomenten/{uuid}"]
    assert detail.etag == {"GET", "PUT", "PATCH"}
    assert detail.allow == "GET, PUT, PATCH, DELETE, HEAD"
    assert routes["/contactmomenten/api/v1/contactmomenten"].etag == frozenset()
    assert routes["/contactmomenten/api/v1/klantcontactmomenten/{uuid}"].etag == {"GET"}
    assert detail.safe.match(f"/contactmomenten/api/v1/contactmomenten/{uuid.uuid4()}")
    assert not detail.safe.match("/contactmomenten/api/v1/contactmomenten/abc")
