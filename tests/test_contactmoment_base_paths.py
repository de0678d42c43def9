"""The Contactmomenten API in the layout (klanten_api/apis.py): served at its canonical base path
(KLANTEN_CONTACTMOMENTEN_BASE_PATH) and at /contactmomenten/api/v1, every URL it writes on the canonical one,
our own URLs recognised on every base path of their API (cm-001 for a contactmoment, cm-004 for a klant), and
the Autorisaties API's grants counted for the component of the API a path belongs to (cmc), whatever the path."""
from __future__ import annotations

import uuid

from cm_hulp import CM_BASE, cm_body, fout, invalid_params
from conftest import Api, klant_body
from test_autorisaties_api import ac_answer, ac_auth_config, ac_server  # noqa: F401 (ac_auth_config: a fixture)

CM_EIGEN = "/kcc/contactmomenten/api/v1"
KLANTEN_EIGEN = "/kcc/klanten/api/v1"


def op(srv, pad: str, client_id: str = "alles") -> Api:
    """A client whose relative paths go to base path `pad` of `srv`."""
    api = Api(srv.url, client_id)
    api.root = f"{srv.url}{pad}"
    return api


def test_contactmoment_urls_are_on_the_canonical_base_and_ours_are_recognised_on_every_path(server_factory):
    srv = server_factory(contactmomenten_base_path=CM_EIGEN, klanten_base_path=KLANTEN_EIGEN)
    canoniek, alias = op(srv, CM_EIGEN), op(srv, CM_BASE)

    eerste = alias.post("/contactmomenten", cm_body())
    assert eerste.status_code == 201, eerste.text
    eerste_url = eerste.json()["url"]
    assert eerste_url.startswith(f"{srv.url}{CM_EIGEN}/contactmomenten/"), eerste_url
    assert eerste.headers["Location"] == eerste_url
    eerste_op_alias = eerste_url.replace(CM_EIGEN, CM_BASE)

    # cm-001: a vorigContactmoment on the other base path is the same contactmoment
    tweede = canoniek.post("/contactmomenten", cm_body(vorigContactmoment=eerste_op_alias))
    assert tweede.status_code == 201, tweede.text
    assert tweede.json()["vorigContactmoment"] == eerste_url
    assert alias.get(eerste_op_alias).json()["volgendContactmoment"] == tweede.json()["url"]
    # ... also as a filter, on either path
    for waarde in (eerste_url, eerste_op_alias):
        gevonden = alias.get("/contactmomenten", params={"vorigContactmoment": waarde}).json()
        assert [c["url"] for c in gevonden["results"]] == [tweede.json()["url"]], waarde
    # a path of ours that is no contactmoment: incorrect_match on either base path
    for pad in (CM_EIGEN, CM_BASE):
        r = canoniek.post("/contactmomenten", cm_body(vorigContactmoment=f"{srv.url}{pad}/klantcontactmomenten/"
                                                                          f"{uuid.uuid4()}"))
        assert invalid_params(r) == [fout("vorigContactmoment", "incorrect_match",
                                          "Ongeldige hyperlink - Ongeldige URL")], pad

    # the audit trail and a relation's URLs: canonical too
    regel = canoniek.get(f"/contactmomenten/{eerste_url.rsplit('/', 1)[1]}/audittrail").json()[0]
    assert regel["hoofdObject"] == eerste_url and regel["bron"] == "cmc"

    # cm-004: a klant of ours on any Klanten path is looked up locally (an unknown one is the 404 verdict)
    klant = op(srv, KLANTEN_EIGEN).post("/klanten", klant_body()).json()
    assert klant["url"].startswith(f"{srv.url}{KLANTEN_EIGEN}/klanten/")
    for pad in (KLANTEN_EIGEN, "/api/v1", "/klanten/api/v1"):
        klant_url = klant["url"].replace(KLANTEN_EIGEN, pad)
        r = alias.post("/klantcontactmomenten", {"contactmoment": eerste_op_alias, "klant": klant_url,
                                                 "rol": "belanghebbende"})
        assert r.status_code == 201, (pad, r.text)
        assert r.json()["url"].startswith(f"{srv.url}{CM_EIGEN}/klantcontactmomenten/")
        assert r.json()["contactmoment"] == eerste_url and r.json()["klant"] == klant_url
        assert alias.delete(r.json()["url"]).status_code == 204
        onbekend = f"{srv.url}{pad}/klanten/{uuid.uuid4()}"
        r = alias.post("/klantcontactmomenten", {"contactmoment": eerste_url, "klant": onbekend,
                                                 "rol": "belanghebbende"})
        assert invalid_params(r) == [fout("klant", "bad-url", f"De URL {onbekend} gaf als antwoord HTTP 404. "
                                                              "Geef een geldige URL op.")], pad

    # the page links of a list asked on the alias are on the canonical path
    for _ in range(99):
        alias.post("/contactmomenten", cm_body())
    pagina = alias.get("/contactmomenten").json()
    assert pagina["count"] == 101 and pagina["next"].startswith(f"{srv.url}{CM_EIGEN}/contactmomenten?")


def test_grants_count_for_the_component_of_the_api_a_path_belongs_to(server_factory, ac_auth_config, httpserver):
    """contactmomenten.lezen granted for cmc opens the Contactmomenten API on its own canonical path and on the
    alias; the same scope granted for kc does not."""
    httpserver.expect_request("/ac/api/v1/applicaties").respond_with_json(ac_answer(
        {"component": "cmc", "scopes": ["contactmomenten.lezen"]}))
    srv = ac_server(server_factory, ac_auth_config, httpserver.url_for("/ac/api/v1/"),
                    contactmomenten_base_path=CM_EIGEN)
    for pad in (CM_EIGEN, CM_BASE):
        assert op(srv, pad, "remote").get("/contactmomenten").status_code == 200, pad
    assert op(srv, "/api/v1", "remote").get("/klanten").status_code == 403

    httpserver.clear_all_handlers()
    httpserver.expect_request("/ac/api/v1/applicaties").respond_with_json(ac_answer(
        {"component": "kc", "scopes": ["contactmomenten.lezen", "klanten.lezen"]}))
    srv = ac_server(server_factory, ac_auth_config, httpserver.url_for("/ac/api/v1/"),
                    contactmomenten_base_path=CM_EIGEN)
    for pad in (CM_EIGEN, CM_BASE):
        r = op(srv, pad, "remote").get("/contactmomenten")
        assert r.status_code == 403 and r.json()["code"] == "permission_denied", pad
    assert op(srv, "/api/v1", "remote").get("/klanten").status_code == 200
