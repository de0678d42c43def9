"""`klanten-api import --from-contactmomenten` (issue #12): contactmomenten with their audit trails and
vorigContactmoment chains, klantcontactmomenten and objectcontactmomenten, from a second server of ours over real
HTTP, with the credentials taken from KLANTEN_SERVICES_CONFIG (no secret on the command line)."""
from __future__ import annotations

import json
import subprocess
import sys

import yaml

from cm_hulp import CmApi, cm_body
from conftest import ALLE, SECRET, Api
from test_import import _env, herschreven, importeer, tweede_database, vul  # noqa: F401 (fixture)
from test_objectcontactmoment import ZRC_SECRET, ZakenApi
from test_import import ROOT


def alle(api: CmApi, resource: str) -> dict:
    uit, url = {}, f"{api.root}/{resource}"
    while url:
        pagina = api.get(url).json()
        for item in pagina["results"]:
            uit[item["url"].rsplit("/", 1)[1]] = item
        url = pagina["next"]
    return uit


def test_contactmomenten_import_keeps_chains_relations_and_audit_rows(server_factory, tweede_database, server, database_url,
                                                                        httpserver, tmp_path):
    zrc = ZakenApi(httpserver)
    diensten = tmp_path / "diensten.yaml"
    bron_srv_cfg = {"diensten": [{"apiRoot": zrc.server.url_for("/zaken/api/v1/"), "clientId": "cmc-client",
                                  "secret": ZRC_SECRET}]}
    diensten.write_text(yaml.safe_dump(bron_srv_cfg))
    bron_srv = server_factory(database_url=tweede_database, services_config=diensten,
                              cm_zaak_relatie_controle=False)
    bron_klanten, bron = Api(bron_srv.url), CmApi(bron_srv.url)
    ons = CmApi(server.url)
    klanten = vul(bron_klanten, 2, patches=False)
    vorige = None
    for i in range(4):             # a chain of four, the last one PATCHed (a second audit row)
        body = cm_body(tekst=f"contact {i}", **({"vorigContactmoment": vorige} if vorige else {}))
        r = bron.post("/contactmomenten", body)
        assert r.status_code == 201, r.text
        vorige = r.json()["url"]
    assert bron.patch(vorige, {"tekst": "gewijzigd"}).status_code == 200
    losse = bron.post("/contactmomenten", cm_body(kanaal="email")).json()["url"]
    for k in klanten:
        assert bron.post("/klantcontactmomenten", {"contactmoment": losse, "klant": f"{bron_klanten.root}/klanten/{k}",
                                                   "rol": "gesprekspartner"}).status_code == 201
    assert bron.post("/objectcontactmomenten", {"contactmoment": vorige, "object": zrc.url("goed"),
                                                "objectType": "zaak"}).status_code == 201

    # the target knows the source as a configured service: no --client-id/--secret given
    doel_cfg = tmp_path / "doel.yaml"
    doel_cfg.write_text(yaml.safe_dump({"diensten": [
        {"apiRoot": bron_klanten.root + "/", "clientId": ALLE, "secret": SECRET},
        {"apiRoot": bron.root + "/", "clientId": ALLE, "secret": SECRET}]}))
    ons_klanten_root = f"{server.url}/api/v1"
    rapport = tmp_path / "r.json"

    def run(*extra, stil=True):
        env = {**_env(database_url), "KLANTEN_SERVICES_CONFIG": str(doel_cfg)}
        return subprocess.run([sys.executable, "-m", "klanten_api.cli", "import", *(["--quiet"] if stil else []),
                               "--from", bron_klanten.root, "--from-contactmomenten", bron.root,
                               "--rewrite-base", f"{bron_klanten.root}={ons_klanten_root}",
                               "--rewrite-base", f"{bron.root}={ons.root}", "--report", str(rapport), *extra],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)

    res = run("--dry-run", "--batch", "2", stil=False)     # predecessors in an earlier (uncommitted) batch
    assert res.returncode == 0, res.stdout + res.stderr
    # not a terminal: plain progress lines, for the contactmomenten too
    assert "import: 5/5 contactmomenten" in res.stderr, res.stderr
    assert json.loads(rapport.read_text())["contactmomenten"]["contactmomenten"]["nieuw"] == 5
    assert alle(ons, "contactmomenten") == {}

    res = run("--batch", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(rapport.read_text())
    assert data["contactmomenten"]["contactmomenten"]["nieuw"] == 5
    assert data["contactmomenten"]["contactmomenten"]["geverifieerd"] == 5
    assert data["contactmomenten"]["klantcontactmomenten"]["geverifieerd"] == 2
    assert data["contactmomenten"]["objectcontactmomenten"]["geverifieerd"] == 1

    for resource in ("contactmomenten", "klantcontactmomenten", "objectcontactmomenten"):
        b, o = alle(bron, resource), alle(ons, resource)
        assert set(b) == set(o)
        for u, item in b.items():
            verwacht = herschreven(herschreven(item, bron.root, ons.root), bron_klanten.root, ons_klanten_root)
            assert o[u] == verwacht, resource
            if resource == "contactmomenten":
                rb = bron.get(f"/contactmomenten/{u}/audittrail").json()
                ro = ons.get(f"/contactmomenten/{u}/audittrail").json()
                # as the klanten import: hoofdObject, resourceUrl and the objects' own url are rewritten
                for regel in rb:
                    for veld in ("hoofdObject", "resourceUrl"):
                        regel[veld] = herschreven(regel[veld], bron.root, ons.root)
                    for w in regel["wijzigingen"].values():
                        if isinstance(w, dict):
                            w["url"] = herschreven(w["url"], bron.root, ons.root)
                assert ro == rb

    # a changed contactmoment is reported and left alone (exit 1) until --overwrite
    # a second run, the service named (a prefix of both configured apiRoots): everything identical, skipped
    res = run("--service", bron_srv.url)
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(rapport.read_text())["contactmomenten"]["contactmomenten"]["al_aanwezig"] == 5
    assert run("--service", "https://onbekend.example/api/").returncode != 0
    assert bron.patch(losse, {"tekst": "anders"}).status_code == 200
    res = run()
    assert res.returncode == 1, res.stdout + res.stderr
    assert any(c["uuid"].endswith(losse.rsplit("/", 1)[1]) for c in json.loads(rapport.read_text())["conflicten"])
    assert run("--overwrite").returncode == 0
