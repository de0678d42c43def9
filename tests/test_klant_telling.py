"""The exact klant count of an unfiltered list (kept by triggers in klant_telling, migration 0002) and the
migration that introduced it together with the PostgreSQL sequences of kla-001.

The count an unfiltered list reports must always equal `SELECT count(*) FROM klant`: after creates (generated
and client-chosen numbers), deletes, refused creates, concurrent creates and deletes, bulk statements written
past the API, and TRUNCATE on PostgreSQL.
"""
from __future__ import annotations

import os
import threading
import uuid

import pytest
import sqlalchemy as sa

from conftest import BRONORGANISATIE, Api, eigen_postgres_database, geldig_rsin, klant_body, zonder_nummer
from storage.database import make_engine
from storage.klanten import KlantenRepository
from storage.migrate import upgrade

POSTGRES = os.environ.get("KLANTEN_TEST_DATABASE_URL", "").startswith("postgres")


def echte_telling(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM klant").scalar_one()


def gemelde_telling(api: Api) -> int:
    resp = api.get("/klanten")
    assert resp.status_code == 200, resp.text
    return resp.json()["count"]



def test_telling_volgt_aanmaken_weigeren_en_verwijderen(api, engine):
    assert gemelde_telling(api) == 0
    urls = [api.post("/klanten", zonder_nummer()).json()["url"] for _ in range(3)]
    urls.append(api.post("/klanten", klant_body(klantnummer="k1")).json()["url"])
    assert gemelde_telling(api) == echte_telling(engine) == 4
    # refused creates (duplicate number, invalid body) change nothing
    assert api.post("/klanten", klant_body(klantnummer="k1")).status_code == 400
    assert api.post("/klanten", klant_body(bronorganisatie="123")).status_code == 400
    assert gemelde_telling(api) == echte_telling(engine) == 4
    # updates change nothing either
    assert api.patch(urls[0], {"functie": "anders"}).status_code == 200
    assert gemelde_telling(api) == 4
    for n, url in enumerate(urls, start=1):
        assert api.delete(url).status_code == 204
        assert gemelde_telling(api) == echte_telling(engine) == 4 - n
    # page=last and the pagination links use the same count
    for _ in range(3):
        api.post("/klanten", zonder_nummer())
    lijst = api.get("/klanten", params={"page": "last"}).json()
    assert lijst["count"] == 3 and lijst["next"] is None and len(lijst["results"]) == 3


def test_telling_klopt_na_gelijktijdig_aanmaken_en_verwijderen(api, engine):
    bestaand = [api.post("/klanten", zonder_nummer()).json()["url"] for _ in range(10)]
    barrier = threading.Barrier(20)
    fouten: list = []

    def werk(i: int) -> None:
        a = Api(api.base)             # a session of its own
        barrier.wait(10)
        try:
            for _ in range(3):
                if i < 10:
                    resp = a.post("/klanten", zonder_nummer(bronorganisatie=geldig_rsin(500 + i % 3)))
                    assert resp.status_code == 201, resp.text
            if i >= 10:
                assert a.delete(bestaand[i - 10]).status_code == 204
        except Exception as exc:           # collected: a failure in a thread would otherwise pass silently
            fouten.append(exc)

    threads = [threading.Thread(target=werk, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not fouten, fouten
    assert gemelde_telling(api) == echte_telling(engine) == 30


def test_telling_volgt_schrijven_buiten_de_api_om(api, engine):
    """Bulk statements straight on the table (an operator's clean-up) keep the count exact too."""
    for _ in range(5):
        api.post("/klanten", zonder_nummer())
    api.post("/klanten", zonder_nummer(bronorganisatie=geldig_rsin(77)))
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM klant WHERE bronorganisatie = :b"), {"b": BRONORGANISATIE})
    assert gemelde_telling(api) == echte_telling(engine) == 1


@pytest.mark.skipif(not POSTGRES, reason="TRUNCATE is PostgreSQL's")
def test_truncate_zet_de_telling_op_nul(api, engine):
    for _ in range(4):
        api.post("/klanten", zonder_nummer())
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE klant CASCADE")
    assert gemelde_telling(api) == 0
    api.post("/klanten", zonder_nummer())
    assert gemelde_telling(api) == echte_telling(engine) == 1


# ---------- migration 0002 on a database that already holds klanten ----------
@pytest.fixture
def database_op_0001(tmp_path):
    """A new database of the suite's kind, migrated to revision 0001 only."""
    if not POSTGRES:
        url = f"sqlite:///{tmp_path / 'oud.sqlite3'}"
        upgrade(url, "0001")
        yield url
        return
    with eigen_postgres_database("klanten_migratie") as (url, _admin):
        upgrade(url, "0001")
        yield url


def test_migratie_telt_bestaande_klanten_en_zet_de_nummering_voort(database_op_0001, server_factory):
    eng = make_engine(database_op_0001, pool_size=2, max_overflow=0)
    try:
        with eng.begin() as conn:   # what 0001 left: 7 klanten, generated numbers 1..5 of BRONORGANISATIE
            for n in range(1, 8):
                conn.execute(sa.text(
                    "INSERT INTO klant (uuid, bronorganisatie, klantnummer, bedrijfsnaam, functie, website_url, "
                    "voornaam, voorvoegsel_achternaam, achternaam, telefoonnummer, emailadres, subject, subject_type, "
                    "adres_aanwezig, aangemaakt) VALUES (:u, :b, :k, '', '', 'http://some.website.com', '', '', '', '', '', "
                    "'http://subject.example/1', 'natuurlijk_persoon', :f, CURRENT_TIMESTAMP)"),
                    {"u": uuid.uuid4().hex if not POSTGRES else uuid.uuid4(), "b": BRONORGANISATIE, "k": str(n),
                     "f": False})
            conn.execute(sa.text("INSERT INTO klantnummer_reeks (bronorganisatie, laatste) VALUES (:b, 5)"),
                         {"b": BRONORGANISATIE})
        upgrade(database_op_0001)
        server = server_factory(database_url=database_op_0001)
        api = Api(server.url)
        assert gemelde_telling(api) == echte_telling(eng) == 7
        # the counter said 5, but 6 and 7 are taken: generation continues at 8
        resp = api.post("/klanten", zonder_nummer())
        assert resp.status_code == 201, resp.text
        assert resp.json()["klantnummer"] == "8"
        assert gemelde_telling(api) == 8
    finally:
        eng.dispose()


def test_zet_laatste_klantnummer(engine, api):
    """What a bulk load (the benchmark's seeding) uses after writing generated numbers itself."""
    with engine.begin() as conn:
        KlantenRepository(conn).zet_laatste_klantnummer(BRONORGANISATIE, 41)
    assert api.post("/klanten", zonder_nummer()).json()["klantnummer"] == "42"
    with engine.begin() as conn:
        KlantenRepository(conn).zet_laatste_klantnummer(BRONORGANISATIE, 0)
    assert api.post("/klanten", zonder_nummer()).json()["klantnummer"] == "1"
