"""`klanten-api import` (DECISIONS #28): over real HTTP from a second server of ours (its own database) and from
loopback stand-ins that answer as the VNG reference and as Open Klant 1.x do; the command runs as a real process."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug import Response

from storage.migrate import upgrade
from storage.tables import audittrail, klant, notificatie
from conftest import (ALLE, BRONORGANISATIE, SECRET, Api, eigen_postgres_database, geldig_rsin, klant_body,
                       wait_for)

ROOT = Path(__file__).resolve().parents[1]


# ---------- helpers ----------
@pytest.fixture
def tweede_database(tmp_path):
    """A second, migrated database (the source's, or an empty target)."""
    url = os.environ.get("KLANTEN_TEST_DATABASE_URL", "").strip()
    if not url or url.startswith("sqlite"):
        pad = f"sqlite:///{tmp_path / 'tweede.sqlite3'}"
        upgrade(pad)
        yield pad
        return
    with eigen_postgres_database("klanten_tweede") as (test_url, _admin):
        upgrade(test_url)
        yield test_url


@pytest.fixture
def bron(server_factory, tweede_database):
    """A second server of ours on its own database: the KRC we move away from."""
    srv = server_factory(database_url=tweede_database)
    return Api(srv.url)


def importeer(database_url: str, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "klanten_api.cli", "import", "--quiet", *args],
                          env=_env(database_url), cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _env(database_url: str) -> dict:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT),
            "KLANTEN_DATABASE_URL": database_url}


def van(api: Api) -> list[str]:
    return ["--from", api.root, "--client-id", ALLE, "--secret", SECRET]


def vul(api: Api, aantal: int, *, patches: bool = True, start: int = 0) -> list[str]:
    """Klanten of every subject type; every third one PATCHed once (a second audit row). Their uuids."""
    uuids = []
    for i in range(start, start + aantal):
        soort = ("natuurlijk_persoon", "niet_natuurlijk_persoon", "vestiging")[i % 3]
        body = klant_body(subjectType=soort, voornaam=f"Voornaam{i}", achternaam=f"Achternaam{i}")
        del body["klantnummer"]                                    # kla-001 numbers them 1, 2, ...
        body["subjectIdentificatie"] = {
            "natuurlijk_persoon": {"inpBsn": geldig_rsin(i + 1), "geslachtsnaam": f"Achternaam{i}",
                                   "verblijfsadres": {"aoaIdentificatie": f"A{i}", "gorOpenbareRuimteNaam": "Straat"}},
            "niet_natuurlijk_persoon": {"innNnpId": geldig_rsin(i + 7), "statutaireNaam": f"Bedrijf {i} B.V."},
            "vestiging": {"vestigingsNummer": f"{100000 + i}", "handelsnaam": [f"Handel {i}", "Tweede"]},
        }[soort]
        if i % 2:
            body["adres"] = {"straatnaam": "Dorpsstraat", "huisnummer": i % 300, "postcode": "1234AB"}
        r = api.post("/klanten", json=body, headers={"X-Audit-Toelichting": f"aanmaak {i}"})
        assert r.status_code == 201, r.text
        uuids.append(r.json()["url"].rsplit("/", 1)[1])
        if patches and i % 3 == 0:
            assert api.patch(f"/klanten/{uuids[-1]}", json={"telefoonnummer": f"06{i:08d}"}).status_code == 200
    return uuids


def alles(api: Api) -> dict[str, tuple[dict, list]]:
    """uuid -> (klant, audit trail) of every klant, read over HTTP."""
    uit, url = {}, f"{api.root}/klanten"
    while url:
        pagina = api.get(url).json()
        for k in pagina["results"]:
            u = k["url"].rsplit("/", 1)[1]
            r = api.get(f"/klanten/{u}/audittrail")
            assert r.status_code == 200
            uit[u] = (k, r.json())
        url = pagina["next"]
    return uit


def herschreven(data, oud: str, nieuw: str):
    return json.loads(json.dumps(data).replace(oud, nieuw))


def tel(engine, tabel) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(tabel)).scalar_one()


# ---------- from a second server of ours ----------
def test_import_from_another_instance_keeps_everything(bron, api, server, engine, database_url, tmp_path):
    uuids = vul(bron, 12)
    rapport = tmp_path / "rapport.json"
    res = importeer(database_url, *van(bron), "--rewrite-base", f"{bron.root}={api.root}", "--report", str(rapport))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "CLEAN" in res.stdout
    data = json.loads(rapport.read_text())
    assert data["import"]["nieuw"] == 12 and data["ons"]["klanten_gelijk"] == 12 and data["schoon"]
    assert data["bron"]["audittrail_regels"] == 16 == data["ons"]["audittrail_regels"]

    bron_alles, ons = alles(bron), alles(api)
    assert set(ons) == set(bron_alles) == set(uuids)
    for u, (k, regels) in bron_alles.items():
        # every field and every audit row (uuid, time, who, what, wijzigingen) as the source serves them; the
        # URLs of the old server rewritten to ours
        assert list(ons[u]) == herschreven([k, regels], bron.root, api.root)
    # no notifications queued, and the list serves them in the source's order
    assert tel(engine, notificatie) == 0
    assert [k["url"].rsplit("/", 1)[1] for k in api.get("/klanten").json()["results"]] == uuids

    # kla-001: a generated klantnummer never collides with an imported one (the source generated 1..12)
    body = klant_body()
    del body["klantnummer"]
    r = api.post("/klanten", json=body)
    assert r.status_code == 201, r.text
    # past every imported number (a fresh register gives 13; on a shared test database the sequence of this
    # bronorganisatie may already be further on)
    assert int(r.json()["klantnummer"]) > 12, r.json()["klantnummer"]


def test_second_run_skips_identical_klanten(bron, api, server, database_url):
    vul(bron, 6)
    assert importeer(database_url, *van(bron)).returncode == 0
    res = importeer(database_url, *van(bron))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 new, 6 already here and identical" in res.stdout
    assert len(alles(api)) == 6


def test_dry_run_writes_nothing(bron, server, engine, database_url):
    vul(bron, 4)
    res = importeer(database_url, *van(bron), "--dry-run")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 new" in res.stdout and "dry run" in res.stdout
    assert tel(engine, klant) == 0 and tel(engine, audittrail) == 0


def test_different_content_is_reported_and_left_alone_unless_overwrite(bron, api, server, database_url, tmp_path):
    uuids = vul(bron, 3, patches=False)
    assert importeer(database_url, *van(bron)).returncode == 0
    # changed here after the import
    assert api.patch(f"/klanten/{uuids[0]}", json={"functie": "hier gewijzigd"}).status_code == 200
    # a klant of our own that holds the (bronorganisatie, klantnummer) of a new source klant
    eigen = api.post("/klanten", json=klant_body(klantnummer="4")).json()["url"].rsplit("/", 1)[1]
    nieuw = vul(bron, 1, patches=False, start=3)[0]
    assert bron.get(f"/klanten/{nieuw}").json()["klantnummer"] == "4"

    rapport = tmp_path / "r.json"
    res = importeer(database_url, *van(bron), "--report", str(rapport))
    assert res.returncode == 1, res.stdout + res.stderr
    data = json.loads(rapport.read_text())
    conflicten = {c["uuid"]: c["reden"] for c in data["conflicten"]}
    assert set(conflicten) == {uuids[0], nieuw}
    assert "functie" in conflicten[uuids[0]] and "audittrail" in conflicten[uuids[0]]
    assert eigen in conflicten[nieuw]
    assert api.get(f"/klanten/{uuids[0]}").json()["functie"] == "hier gewijzigd"        # left alone
    assert api.get(f"/klanten/{nieuw}").status_code == 404
    assert not data["schoon"]

    res = importeer(database_url, *van(bron), "--overwrite", "--report", str(rapport))
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(rapport.read_text())
    assert data["conflicten"] == [] and data["import"]["vervangen"] == 1 and data["import"]["nieuw"] == 1
    assert api.get(f"/klanten/{uuids[0]}").json()["functie"] == bron.get(f"/klanten/{uuids[0]}").json()["functie"]
    assert len(api.get(f"/klanten/{uuids[0]}/audittrail").json()) == 1                 # the source's trail
    # the source decides who holds klantnummer 4: our own klant that held it is removed, and reported
    assert data["verwijderd_door_overwrite"] == [{"uuid": eigen, "bron_klant": nieuw}]
    assert f"{eigen}: replaced by source klant {nieuw}" in res.stdout
    assert api.get(f"/klanten/{eigen}").status_code == 404
    assert api.get(f"/klanten/{nieuw}").json()["klantnummer"] == "4"

    res = importeer(database_url, *van(bron))
    assert res.returncode == 0, res.stdout + res.stderr


def test_killed_midway_then_run_again_ends_as_one_clean_run(bron, api, server, engine, database_url, tmp_path):
    vul(bron, 150, patches=False)
    proc = subprocess.Popen([sys.executable, "-m", "klanten_api.cli", "import", "--quiet", *van(bron),
                             "--batch", "5", "--workers", "1"],
                            env=_env(database_url), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: tel(engine, klant) >= 10, 60, "part of the import")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    tussen = tel(engine, klant)
    assert 0 < tussen < 150, "the kill should land mid-way"
    # no half klant: every klant has its audit row
    with engine.connect() as conn:
        zonder = conn.execute(sa.select(sa.func.count()).select_from(klant).where(
            ~sa.exists().where(audittrail.c.klant_id == klant.c.id))).scalar_one()
    assert zonder == 0
    res = importeer(database_url, *van(bron))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{150 - tussen} new, {tussen} already here and identical" in res.stdout
    assert tel(engine, klant) == 150 and tel(engine, audittrail) == 150


# ---------- loopback stand-ins for the reference and Open Klant 1.x ----------
def _referentie_klant(base: str, u: str, nummer: str, **extra) -> dict:
    k = {"url": f"{base}/klanten/{u}", "bronorganisatie": BRONORGANISATIE, "klantnummer": nummer,
         "bedrijfsnaam": "", "functie": "", "websiteUrl": "https://www.example.nl", "voornaam": "Jan",
         "voorvoegselAchternaam": "", "achternaam": "Jansen", "telefoonnummer": "", "emailadres": "",
         "adres": None, "subject": "", "subjectType": "natuurlijk_persoon",
         "subjectIdentificatie": {"inpBsn": geldig_rsin(int(nummer) + 3), "anpIdentificatie": "", "inpANummer": "",
                                  "geslachtsnaam": "Jansen", "voorvoegselGeslachtsnaam": "", "voorletters": "",
                                  "voornamen": "", "geslachtsaanduiding": "", "geboortedatum": "",
                                  "verblijfsadres": None, "subVerblijfBuitenland": None}}
    k.update(extra)
    return k


def _regel(base: str, u: str, nummer: str, i: int, bron_naam: str = "Klanten") -> dict:
    url = f"{base}/klanten/{u}"
    return {"uuid": str(uuid.uuid4()), "bron": bron_naam, "applicatieId": str(uuid.uuid4()),
            "applicatieWeergave": "Balie-app", "gebruikersId": "u-1", "gebruikersWeergave": "Medewerker",
            "actie": "create" if i == 0 else "partial_update",
            "actieWeergave": "Object aangemaakt" if i == 0 else "Object deels bijgewerkt",
            "resultaat": 201 if i == 0 else 200, "hoofdObject": url, "resource": "klant", "resourceUrl": url,
            "toelichting": "", "resourceWeergave": f"{BRONORGANISATIE} - {nummer}",
            "aanmaakdatum": f"2023-09-0{1 + i}T10:00:00.{123456 + i}Z",
            "wijzigingen": {"oud": None if i == 0 else {"url": url}, "nieuw": {"url": url, "voornaam": "Jan"}}}


class StandIn:
    """A Klanten API 1.0 source as the reference (bare audit lists, 404 for a klant without rows, oldest first)
    or Open Klant 1.x (/klanten/api/v1, newest first, paginated audit trail, extra fields) serve it."""

    def __init__(self, httpserver, *, open_klant: bool, pagina: int = 100, audit_pagina: int = 2,
                 publieke_host: str | None = None):
        self.httpserver, self.ok = httpserver, open_klant
        self.pad = "/klanten/api/v1" if open_klant else "/api/v1"
        self.root = httpserver.url_for(self.pad)
        # the host its links carry (Open Klant builds them from its own Host; after the switch that is ours)
        self.link_base = (publieke_host or httpserver.url_for("")).rstrip("/") + self.pad
        self.pagina, self.audit_pagina = pagina, audit_pagina
        self.klanten: list[dict] = []
        self.regels: dict[str, list[dict]] = {}
        self.fouten_te_gaan = 0            # answer this many requests with 503 first
        self.uitval_na = None              # after this many requests, answer every one with 503 (down)
        self.verzoeken = 0
        httpserver.expect_request(__import__("re").compile(rf"^{self.pad}/klanten.*")).respond_with_handler(
            self.handle)

    def voeg_toe(self, k: dict, regels: list[dict]) -> None:
        self.klanten.append(k)
        self.regels[k["url"].rsplit("/", 1)[1]] = regels

    def handle(self, request):
        if request.headers.get("Authorization", "")[:7] != "Bearer ":
            return Response("{}", status=403, content_type="application/json")
        self.verzoeken += 1
        if self.uitval_na is not None and self.verzoeken > self.uitval_na:
            return Response("{}", status=503, content_type="application/json")
        if self.fouten_te_gaan > 0:
            self.fouten_te_gaan -= 1
            return Response("{}", status=503, content_type="application/json")
        delen = request.path[len(self.pad):].strip("/").split("/")
        pagina = int(request.args.get("page", "1"))
        if delen == ["klanten"]:
            lijst = list(reversed(self.klanten)) if self.ok else self.klanten
            return self._pagina(lijst, pagina, self.pagina, f"{self.link_base}/klanten")
        u = delen[1]
        bekend = u in self.regels
        if len(delen) == 2:
            k = next((k for k in self.klanten if k["url"].endswith(u)), None)
            return self._json(k) if k else Response("{}", status=404, content_type="application/json")
        regels = self.regels.get(u, [])
        if not self.ok:
            if not regels:                        # the reference: 404 for a klant without rows
                return Response("{}", status=404, content_type="application/json")
            return self._json(regels)
        if not bekend:
            return Response("{}", status=404, content_type="application/json")
        return self._pagina(regels, pagina, self.audit_pagina, f"{self.link_base}/klanten/{u}/audittrail")

    def _pagina(self, lijst, pagina, grootte, url):
        deel = lijst[(pagina - 1) * grootte: pagina * grootte]
        meer = pagina * grootte < len(lijst)
        return self._json({"count": len(lijst), "next": f"{url}?page={pagina + 1}" if meer else None,
                           "previous": None, "results": deel})

    @staticmethod
    def _json(data):
        return Response(json.dumps(data), status=200, content_type="application/json")


def test_import_from_a_reference_style_source(httpserver, api, server, database_url, tmp_path):
    stand_in = StandIn(httpserver, open_klant=False)
    base = stand_in.link_base
    verwacht = {}
    for n in range(1, 151):                                     # two pages
        u = str(uuid.uuid4())
        extra = {"subjectType": "", "subject": "https://brp.example.nl/p/1"} if n == 7 else {}
        k = _referentie_klant(base, u, str(n), **extra)
        if n == 7:
            del k["subjectIdentificatie"]
        regels = [] if n == 9 else [_regel(base, u, str(n), i) for i in range(1 + n % 2)]
        stand_in.voeg_toe(k, regels)
        verwacht[u] = (k, regels)
    stand_in.fouten_te_gaan = 3                                 # the source hiccups: retried
    rapport = tmp_path / "r.json"
    res = importeer(database_url, "--from", stand_in.root, "--client-id", "x", "--secret", "y" * 32,
                    "--rewrite-base", f"{base}={api.root}", "--report", str(rapport))
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(rapport.read_text())
    assert data["import"]["nieuw"] == 150 and data["bron"]["count"] == 150
    assert data["conversies"]["subjectType '' -> null"] == 1
    assert data["conversies"]["audit bron -> kc"] == 223 == data["bron"]["audittrail_regels"]
    ons = alles(api)
    for u, (k, regels) in verwacht.items():
        klant_ons, regels_ons = ons[u]
        bron_k = herschreven(k, base, api.root)
        if k["subjectType"] == "":
            bron_k["subjectType"] = None
        assert klant_ons == bron_k
        # every audit row as served; only the reference's bron "Klanten" is the spec's "kc"
        assert regels_ons == [{**r, "bron": "kc"} for r in herschreven(regels, base, api.root)]


def test_import_from_an_open_klant_style_source(httpserver, server_factory, engine, database_url, tmp_path):
    stand_in = StandIn(httpserver, open_klant=True, pagina=10, publieke_host="https://openklant.example.nl")
    base = stand_in.link_base
    verwacht, slecht = {}, None
    for n in range(1, 26):
        u = str(uuid.uuid4())
        k = _referentie_klant(base, u, str(n))
        k.update(aanmaakkanaal="telefoon", geverifieerd=True)     # Open Klant 1.x's fields, not in 1.0.0
        if n == 4:
            k["websiteUrl"] = ""                                   # optional in Open Klant 1.x
        if n == 5:
            k["subjectIdentificatie"]["inpBsn"] = "123456789"      # fails the 11-proef: skipped, listed
            slecht = u
        regels = [_regel(base, u, str(n), i, "Klanten") for i in range(5)]   # three audit pages
        for r in regels:
            r["wijzigingen"]["nieuw"].update(aanmaakkanaal="telefoon", geverifieerd=True)
        stand_in.voeg_toe(k, regels)
        verwacht[u] = (k, regels)
    rapport = tmp_path / "r.json"
    res = importeer(database_url, "--from", stand_in.root, "--client-id", "x", "--secret", "y" * 32,
                    "--report", str(rapport))
    assert res.returncode == 1, res.stdout + res.stderr            # one klant could not be imported
    assert "123456789" not in res.stdout + res.stderr and "Jansen" not in res.stdout + res.stderr
    data = json.loads(rapport.read_text())
    assert data["overgeslagen"] == [{"uuid": slecht, "reden": "subjectIdentificatie.inpBsn: invalid"}]
    assert data["velden_niet_in_de_standaard"] == {"aanmaakkanaal": 24, "geverifieerd": 24}   # of the klanten imported
    assert data["import"]["nieuw"] == 24 and data["ons"]["klanten_gelijk"] == 24 and data["verschillen"] == []
    # read with response validation off: the klant with Open Klant's websiteUrl "" is served as the source
    # served it, which 1.0.0's minLength does not allow (KLANTEN_VALIDATE_RESPONSES would refuse to serve it)
    ons = alles(Api(server_factory(validate_responses=False).url))
    assert set(ons) == set(verwacht) - {slecht}
    for u, (klant_ons, regels_ons) in ons.items():
        k, regels = verwacht[u]
        bron_k = {x: y for x, y in k.items() if x not in ("aanmaakkanaal", "geverifieerd", "url")}
        assert {x: y for x, y in klant_ons.items() if x != "url"} == bron_k
        assert regels_ons == [{**r, "bron": "kc"} for r in regels]   # no --rewrite-base: URLs kept


def test_source_down_midway_then_run_again(httpserver, api, server, engine, database_url):
    stand_in = StandIn(httpserver, open_klant=False, pagina=20)
    base = stand_in.link_base
    for n in range(1, 101):
        u = str(uuid.uuid4())
        stand_in.voeg_toe(_referentie_klant(base, u, str(n)), [_regel(base, u, str(n), 0)])
    stand_in.uitval_na = 60
    args = ("--from", stand_in.root, "--client-id", "x", "--secret", "y" * 32, "--batch", "10", "--workers", "2")
    res = importeer(database_url, *args, "--retries", "2")
    assert res.returncode == 3, res.stdout + res.stderr
    assert "run the same command again" in res.stderr
    tussen = tel(engine, klant)
    assert 0 < tussen < 100 and tel(engine, audittrail) == tussen
    stand_in.uitval_na = None
    res = importeer(database_url, *args)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{100 - tussen} new, {tussen} already here and identical" in res.stdout
    assert tel(engine, klant) == 100 == tel(engine, audittrail)
