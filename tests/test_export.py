"""`klanten-api export` (JSON Lines in the API's own representation) and `klanten-api import --from-file`."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from cm_hulp import CmApi, cm_body
from conftest import Api, eigen_postgres_database
from storage.migrate import upgrade
from test_import import ROOT, _env, herschreven, importeer, tweede_database, vul  # noqa: F401  (a fixture)
from test_objectcontactmoment import ZRC_SECRET, ZakenApi


def exporteer(database_url: str, uit, base_url: str) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "klanten_api.cli", "export", "--base-url", base_url, "-o", str(uit)],
                         env=_env(database_url), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def test_export_serves_the_api_representation(api, server, database_url, tmp_path):
    uuids = vul(api, 5)
    exporteer(database_url, tmp_path / "a.jsonl", server.url)
    regels = [json.loads(r) for r in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [r["klant"]["url"].rsplit("/", 1)[1] for r in regels] == uuids          # the register's order
    for r in regels:
        u = r["klant"]["url"].rsplit("/", 1)[1]
        assert r == {"klant": api.get(f"/klanten/{u}").json(), "audittrail": api.get(f"/klanten/{u}/audittrail").json()}


def test_round_trip_of_1000_klanten_gives_identical_files(api, server, database_url, tweede_database, tmp_path,
                                                         server_factory):
    vul(api, 1000)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    exporteer(database_url, a, "https://klanten.example.nl")
    res = importeer(tweede_database, "--from-file", str(a))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1000 new" in res.stdout and "CLEAN" in res.stdout
    exporteer(tweede_database, b, "https://klanten.example.nl")
    assert a.read_bytes() == b.read_bytes()
    assert len(a.read_text().splitlines()) == 1000
    # and a server on the seeded database serves them (a CI server seeded in one command)
    seeded = Api(server_factory(database_url=tweede_database).url)
    assert seeded.get("/klanten").json()["count"] == 1000
    # a second import of the same file changes nothing
    res = importeer(tweede_database, "--from-file", str(a))
    assert res.returncode == 0 and "0 new, 1000 already here and identical" in res.stdout


@pytest.fixture
def derde_database(tmp_path):
    """An empty migrated database of its own (the target of a round trip)."""
    url = os.environ.get("KLANTEN_TEST_DATABASE_URL", "").strip()
    if not url or url.startswith("sqlite"):
        pad = f"sqlite:///{tmp_path / 'derde.sqlite3'}"
        upgrade(pad)
        yield pad
        return
    with eigen_postgres_database("klanten_derde") as (test_url, _admin):
        upgrade(test_url)
        yield test_url


def test_round_trip_with_contactmomenten_gives_identical_files(server_factory, tweede_database, derde_database,
                                                               httpserver, tmp_path):
    zrc = ZakenApi(httpserver)
    diensten = tmp_path / "diensten.yaml"
    diensten.write_text(yaml.safe_dump({"diensten": [{"apiRoot": zrc.server.url_for("/zaken/api/v1/"),
                                                      "clientId": "cmc-client", "secret": ZRC_SECRET}]}))
    srv = server_factory(database_url=tweede_database, services_config=diensten, cm_zaak_relatie_controle=False)
    klanten_api, cm = Api(srv.url), CmApi(srv.url)
    klanten = vul(klanten_api, 3)
    vorige = None
    for i in range(3):
        r = cm.post("/contactmomenten", cm_body(tekst=f"c{i}", **({"vorigContactmoment": vorige} if vorige else {})))
        assert r.status_code == 201, r.text
        vorige = r.json()["url"]
    assert cm.patch(vorige, {"tekst": "gewijzigd"}).status_code == 200
    assert cm.post("/klantcontactmomenten", {"contactmoment": vorige, "klant": f"{klanten_api.root}/klanten/{klanten[0]}",
                                             "rol": "belanghebbende"}).status_code == 201
    assert cm.post("/objectcontactmomenten", {"contactmoment": vorige, "object": zrc.url("goed"),
                                              "objectType": "zaak"}).status_code == 201

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    exporteer(tweede_database, a, "https://klanten.example.nl")
    soorten = [next(iter(json.loads(r))) for r in a.read_text().splitlines()]
    assert soorten == ["klant"] * 3 + ["contactmoment"] * 3 + ["klantcontactmoment", "objectcontactmoment"]
    res = importeer(derde_database, "--from-file", str(a))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "CLEAN" in res.stdout
    exporteer(derde_database, b, "https://klanten.example.nl")
    assert a.read_bytes() == b.read_bytes()
    # idempotent
    res = importeer(derde_database, "--from-file", str(a))
    assert res.returncode == 0, res.stdout + res.stderr
    # and served as the source serves them
    doel = CmApi(server_factory(database_url=derde_database).url)
    bron_cm = cm.get("/contactmomenten").json()["results"]
    assert [herschreven(c, srv.url, doel.base) for c in bron_cm] == doel.get("/contactmomenten").json()["results"]
