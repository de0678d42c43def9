"""kla-001: (bronorganisatie, klantnummer) is unique; a missing klantnummer is generated (DECISIONS #1, #2;
reference §3.6). Duplicates are 400 `nonFieldErrors`/`unique`, also when requests race; never a 500."""
from __future__ import annotations

import threading
from collections import Counter

import pytest
import sqlalchemy as sa

from conftest import BRONORGANISATIE, Api, geldig_rsin, klant_body, zonder_nummer
from storage.tables import audittrail, klant

UNIEK = [{"name": "nonFieldErrors", "code": "unique",
          "reason": "De velden bronorganisatie, klantnummer moeten een unieke set zijn."}]
# README "Differences" 3: never empty; the text itself is not fixed by the documents (pinned here)
VALIDATIE_DETAIL = "Er is een validatiefout opgetreden."
ANDERE_BRON = geldig_rsin(4242)


def fout_400(base: str, invalid_params: list) -> dict:
    return {"type": f"{base}/ref/fouten/ValidationError/", "code": "invalid", "title": "Invalid input.",
            "status": 400, "detail": VALIDATIE_DETAIL, "invalidParams": invalid_params}


def assert_uniek_fout(resp, base: str):
    assert resp.status_code == 400, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"] == "application/problem+json"
    body = resp.json()
    assert body.pop("instance").startswith("urn:uuid:")
    assert body == fout_400(base, UNIEK)


def maak(api: Api, **overrides) -> dict:
    resp = api.post("/klanten", klant_body(**overrides))
    assert resp.status_code == 201, resp.text
    return resp.json()



def rijen(engine, **where) -> list[tuple[str, str]]:
    q = sa.select(klant.c.bronorganisatie, klant.c.klantnummer).order_by(klant.c.id)
    for k, w in where.items():
        q = q.where(klant.c[k] == w)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(q)]


def audit_rijen(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(audittrail)).scalar_one()


# ---------- duplicates ----------
def test_dubbel_bij_aanmaken(api, engine):
    eerste = maak(api, klantnummer="1111")
    resp = api.post("/klanten", klant_body(klantnummer="1111", voornaam="Tweede"))
    assert_uniek_fout(resp, api.base)
    assert rijen(engine) == [(BRONORGANISATIE, "1111")]
    assert audit_rijen(engine) == 1
    assert api.get(eerste["url"]).json() == eerste


def test_zelfde_klantnummer_andere_bronorganisatie(api, engine):
    a = maak(api, klantnummer="1111")
    b = maak(api, klantnummer="1111", bronorganisatie=ANDERE_BRON)
    assert (a["bronorganisatie"], a["klantnummer"]) == (BRONORGANISATIE, "1111")
    assert (b["bronorganisatie"], b["klantnummer"]) == (ANDERE_BRON, "1111")
    assert sorted(rijen(engine)) == sorted([(BRONORGANISATIE, "1111"), (ANDERE_BRON, "1111")])


def test_put_naar_nummer_van_een_ander(api, engine):
    maak(api, klantnummer="1111")
    b = maak(api, klantnummer="2222")
    resp = api.put(b["url"], klant_body(klantnummer="1111", voornaam="Veranderd"))
    assert_uniek_fout(resp, api.base)
    assert api.get(b["url"]).json() == b
    assert audit_rijen(engine) == 2


def test_patch_naar_nummer_van_een_ander(api, engine):
    maak(api, klantnummer="1111")
    b = maak(api, klantnummer="2222")
    resp = api.patch(b["url"], {"klantnummer": "1111", "voornaam": "Veranderd"})
    assert_uniek_fout(resp, api.base)
    assert api.get(b["url"]).json() == b
    assert audit_rijen(engine) == 2


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_bronorganisatie_wijzigen_naar_bezet_paar(api, method):
    """The pair counts, not the number alone: moving to another bronorganisatie can collide too."""
    maak(api, klantnummer="1111")
    b = maak(api, klantnummer="1111", bronorganisatie=ANDERE_BRON)
    body = (klant_body(klantnummer="1111", bronorganisatie=BRONORGANISATIE) if method == "PUT"
            else {"bronorganisatie": BRONORGANISATIE})
    assert_uniek_fout(api.request(method, b["url"], json=body), api.base)
    assert api.get(b["url"]).json() == b


def test_bijwerken_met_het_eigen_nummer(api):
    a = maak(api, klantnummer="1111")
    maak(api, klantnummer="2222")
    put = api.put(a["url"], klant_body(klantnummer="1111", voornaam="Put"))
    assert put.status_code == 200, put.text
    assert (put.json()["klantnummer"], put.json()["voornaam"]) == ("1111", "Put")
    patch = api.patch(a["url"], {"klantnummer": "1111", "bronorganisatie": BRONORGANISATIE, "voornaam": "Patch"})
    assert patch.status_code == 200, patch.text
    assert (patch.json()["klantnummer"], patch.json()["voornaam"]) == ("1111", "Patch")


def test_vrijgekomen_nummer_is_weer_bruikbaar(api):
    a = maak(api, klantnummer="1111")
    resp = api.patch(a["url"], {"klantnummer": "3333"})
    assert resp.status_code == 200, resp.text
    maak(api, klantnummer="1111")
    assert_uniek_fout(api.post("/klanten", klant_body(klantnummer="3333")), api.base)
    assert api.delete(a["url"]).status_code == 204
    maak(api, klantnummer="3333")


# ---------- generated klantnummer ----------
def test_gegenereerd_klantnummer(api, engine):
    resp = api.post("/klanten", zonder_nummer())
    assert resp.status_code == 201, resp.text
    nummer = resp.json()["klantnummer"]
    assert isinstance(nummer, str) and 1 <= len(nummer) <= 8 and nummer.strip() == nummer
    assert api.get(resp.json()["url"]).json()["klantnummer"] == nummer
    lijst = api.get("/klanten", params={"bronorganisatie": BRONORGANISATIE, "klantnummer": nummer}).json()
    assert [k["url"] for k in lijst["results"]] == [resp.json()["url"]]
    assert rijen(engine) == [(BRONORGANISATIE, nummer)]
    # the generated number is a real number: a client cannot take it any more
    assert_uniek_fout(api.post("/klanten", klant_body(klantnummer=nummer)), api.base)


def test_gegenereerde_nummers_verschillen_en_zijn_uniek_per_bronorganisatie(api, engine):
    per_bron = {BRONORGANISATIE: [], ANDERE_BRON: []}
    for i in range(12):
        bron = BRONORGANISATIE if i % 2 else ANDERE_BRON
        resp = api.post("/klanten", zonder_nummer(bronorganisatie=bron))
        assert resp.status_code == 201, resp.text
        per_bron[bron].append(resp.json()["klantnummer"])
    for bron, nummers in per_bron.items():
        assert len(set(nummers)) == len(nummers) == 6, (bron, nummers)
        assert all(1 <= len(n) <= 8 for n in nummers)
    assert len(rijen(engine)) == 12


def test_gegenereerde_nummers_slaan_gekozen_nummers_over(api, engine):
    maak(api, klantnummer="1")
    maak(api, klantnummer="2")
    gegenereerd = []
    for _ in range(3):
        resp = api.post("/klanten", zonder_nummer())
        assert resp.status_code == 201, resp.text
        gegenereerd.append(resp.json()["klantnummer"])
    assert not {"1", "2"} & set(gegenereerd), gegenereerd
    assert len(set(gegenereerd)) == 3
    # a client now takes the numbers that would plausibly come next; generation must still avoid them
    vooruit = [str(int(gegenereerd[-1]) + k) for k in (1, 2, 3)] if gegenereerd[-1].isdigit() else ["9", "10", "11"]
    for n in vooruit:
        maak(api, klantnummer=n)
    resp = api.post("/klanten", zonder_nummer())
    assert resp.status_code == 201, resp.text
    assert resp.json()["klantnummer"] not in {"1", "2", *vooruit, *gegenereerd}
    alle = [n for _, n in rijen(engine)]
    assert len(alle) == len(set(alle)) == 9


def test_de_nummers_van_een_bronorganisatie_raken_op(api, engine):
    """klantnummer holds at most 8 characters: after 99999999 a bronorganisatie has no generated number left,
    and a create without klantnummer says so (klantnummer required) instead of failing or reusing one."""
    from storage.klanten import KlantenRepository
    vol = geldig_rsin(8642)             # a bronorganisatie of this test alone: its numbers stay used up
    with engine.begin() as conn:
        KlantenRepository(conn).zet_laatste_klantnummer(vol, 99_999_998)
    resp = api.post("/klanten", zonder_nummer(bronorganisatie=vol))
    assert resp.status_code == 201, resp.text
    assert resp.json()["klantnummer"] == "99999999"
    resp = api.post("/klanten", zonder_nummer(bronorganisatie=vol))
    assert resp.status_code == 400, resp.text
    assert resp.json()["invalidParams"] == [{"name": "klantnummer", "code": "required",
                                             "reason": "Dit veld is vereist."}]
    # other bronorganisaties and client-chosen numbers are not affected
    assert api.post("/klanten", zonder_nummer()).status_code == 201
    assert api.post("/klanten", klant_body(bronorganisatie=vol, klantnummer="eigen-1")).status_code == 201
    assert len(rijen(engine)) == 3


# ---------- races through the HTTP server ----------
def _gelijktijdig(base: str, n: int, verzoek) -> list:
    """Run verzoek(api, i) in n threads that start at the same moment; each thread has its own session."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        client = Api(base)
        barrier.wait(10)
        try:
            results[i] = verzoek(client, i)
        except Exception as exc:                     # a failed connection is a failure, not a hang
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not any(isinstance(r, Exception) for r in results), results
    return results


def test_race_zelfde_klantnummer(api, engine):
    results = _gelijktijdig(api.base, 20, lambda c, i: c.post("/klanten", klant_body(klantnummer="7777",
                                                                                        voornaam=f"T{i}")))
    statussen = Counter(r.status_code for r in results)
    assert statussen == Counter({201: 1, 400: 19}), [(r.status_code, r.text[:200]) for r in results]
    for r in results:
        if r.status_code == 400:
            assert_uniek_fout(r, api.base)
    winnaar = next(r for r in results if r.status_code == 201).json()
    assert rijen(engine) == [(BRONORGANISATIE, "7777")]
    assert audit_rijen(engine) == 1
    assert api.get(winnaar["url"]).json() == winnaar


def test_race_patch_naar_zelfde_klantnummer(api, engine):
    klanten = [maak(api, klantnummer=f"{100 + i}") for i in range(12)]
    results = _gelijktijdig(api.base, 12, lambda c, i: c.patch(klanten[i]["url"], {"klantnummer": "8888"}))
    statussen = Counter(r.status_code for r in results)
    assert statussen == Counter({200: 1, 400: 11}), [(r.status_code, r.text[:200]) for r in results]
    for r in results:
        if r.status_code == 400:
            assert_uniek_fout(r, api.base)
    assert len(rijen(engine, klantnummer="8888")) == 1
    assert len(rijen(engine)) == 12


def test_gelijktijdig_aanmaken_zonder_klantnummer(api, engine):
    results = _gelijktijdig(api.base, 30, lambda c, i: c.post("/klanten", zonder_nummer(voornaam=f"T{i}")))
    assert [r.status_code for r in results] == [201] * 30, [(r.status_code, r.text[:200]) for r in results]
    nummers = [r.json()["klantnummer"] for r in results]
    assert len(set(nummers)) == 30, nummers
    assert all(1 <= len(n) <= 8 for n in nummers)
    assert sorted(n for _, n in rijen(engine)) == sorted(nummers)


def test_gelijktijdig_gekozen_en_gegenereerd(api, engine):
    """Generated creates racing with client-chosen small numbers: every generated create succeeds (a collision
    with a concurrently chosen number is retried, never a 400 or 500); a chosen create only fails when a
    generated klant took that number first, and then with the normal `unique` error."""
    def verzoek(c, i):
        if i % 2:
            return c.post("/klanten", klant_body(klantnummer=str(i // 2 + 1)))
        return c.post("/klanten", zonder_nummer())

    results = _gelijktijdig(api.base, 30, verzoek)
    gegenereerd = [r for i, r in enumerate(results) if not i % 2]
    gekozen = {str(i // 2 + 1): r for i, r in enumerate(results) if i % 2}
    assert [r.status_code for r in gegenereerd] == [201] * 15, [(r.status_code, r.text[:200]) for r in gegenereerd]
    gegenereerde_nummers = {r.json()["klantnummer"] for r in gegenereerd}
    assert len(gegenereerde_nummers) == 15
    for nummer, r in gekozen.items():
        if r.status_code == 201:
            assert r.json()["klantnummer"] == nummer
        else:
            assert_uniek_fout(r, api.base)
            assert nummer in gegenereerde_nummers
    alle = [n for _, n in rijen(engine)]
    assert len(alle) == len(set(alle)) == 15 + sum(r.status_code == 201 for r in gekozen.values())


def test_unique_is_reported_before_the_subject_rule(api):
    """Regression (found by the state machine): a duplicate that also lacks subject/subjectIdentificatie is
    reported as `unique`, the reference's order (uniqueness before the subject rule)."""
    body = {"bronorganisatie": "950428139", "klantnummer": "1", "websiteUrl": "http://some.website.com",
            "subjectType": "natuurlijk_persoon", "subjectIdentificatie": {"geslachtsnaam": "Eerste"}}
    assert api.post("/klanten", body).status_code == 201
    response = api.post("/klanten", {"bronorganisatie": "950428139", "klantnummer": "1",
                                     "websiteUrl": "http://some.website.com"})
    assert response.status_code == 400
    assert response.json()["invalidParams"] == [{"name": "nonFieldErrors", "code": "unique",
                                                 "reason": "De velden bronorganisatie, klantnummer moeten een unieke set zijn."}]
