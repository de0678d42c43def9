"""`klanten-api export` (JSON Lines in the API's own representation) and `klanten-api import --from-file`."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import Api
from test_import import ROOT, _env, importeer, tweede_database, vul  # noqa: F401  (tweede_database: a fixture)


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
