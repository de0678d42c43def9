"""Pages of the klant list (issue #14, point 2): every page is what ORDER BY id OFFSET/LIMIT gives on the same
data, and on PostgreSQL a page anywhere costs what page 1 costs.

Where a page starts comes from klant_pagina (klanten per blok of PAGINA_BLOK ids, kept by triggers, migration
0006); these tests write across blok boundaries, delete in early bloks, create concurrently, leave gaps in the
ids (a rolled back insert) and check every page over HTTP against the table itself.
"""
from __future__ import annotations

import os
import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from explain import kosten
from conftest import BRONORGANISATIE, Api, eigen_postgres_database, geldig_rsin, zonder_nummer
from storage.database import make_engine
from storage.klanten import _ONGEFILTERDE_PAGINA, KlantenRepository
from storage.migrate import upgrade
from storage.tables import PAGINA_BLOK

POSTGRES = os.environ.get("KLANTEN_TEST_DATABASE_URL", "").startswith("postgres")
GROOTTE = 100

KOLOMMEN = ("uuid, bronorganisatie, klantnummer, bedrijfsnaam, functie, website_url, voornaam, voorvoegsel_achternaam, "
            "achternaam, telefoonnummer, emailadres, subject, subject_type, adres_aanwezig, aangemaakt")


def invoegen(conn, ids) -> None:
    """Klanten with these ids, in one statement (the triggers see one statement of several rows)."""
    conn.execute(sa.text(
        f"INSERT INTO klant (id, {KOLOMMEN}) VALUES (:id, :u, :b, :k, '', '', 'http://some.website.com', '', '', "
        "'', '', '', 'http://subject.example/1', 'natuurlijk_persoon', :f, CURRENT_TIMESTAMP)"),
        [{"id": i, "u": uuid.uuid4() if POSTGRES else uuid.uuid4().hex, "b": BRONORGANISATIE, "k": f"p{i}", "f": False}
         for i in ids])


def verwachte_uuids(engine) -> list[str]:
    with engine.connect() as conn:
        return [str(uuid.UUID(str(u))) for u in conn.exec_driver_sql("SELECT uuid FROM klant ORDER BY id").scalars()]


def pagina_klopt_met_tabel(engine) -> None:
    """klant_pagina holds, per blok, exactly the number of klanten of that blok."""
    with engine.connect() as conn:
        echt = dict(conn.exec_driver_sql(f"SELECT id / {PAGINA_BLOK}, count(*) FROM klant GROUP BY 1").all())
        gehouden = {b: n for b, n in conn.exec_driver_sql(
            "SELECT blok, sum(aantal) FROM klant_pagina GROUP BY blok").all() if n}
    assert gehouden == echt


def alle_paginas_kloppen(api: Api, engine) -> None:
    uuids = verwachte_uuids(engine)
    laatste = max(1, -(-len(uuids) // GROOTTE))
    for pagina in range(1, laatste + 1):
        resp = api.get("/klanten", params={"page": pagina} if pagina > 1 else None)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["count"] == len(uuids)
        verwacht = uuids[(pagina - 1) * GROOTTE:pagina * GROOTTE]
        assert [r["url"].rsplit("/", 1)[1] for r in body["results"]] == verwacht, f"page {pagina}"
        assert body["next"] == (f"{api.root}/klanten?page={pagina + 1}" if pagina < laatste else None)
        assert body["previous"] == (None if pagina == 1 else
                                    f"{api.root}/klanten" + (f"?page={pagina - 1}" if pagina > 2 else ""))
    assert api.get("/klanten", params={"page": "last"}).json() == resp.json()
    voorbij = api.get("/klanten", params={"page": laatste + 1})
    assert voorbij.status_code == 404, voorbij.text


def test_paginas_over_blokgrenzen_na_verwijderen_gelijktijdig_aanmaken_en_een_gat(api, engine):
    # rows on both sides of three blok boundaries, written by several statements (several transactions and so,
    # on PostgreSQL, several slots of one blok)
    with engine.begin() as conn:
        invoegen(conn, range(PAGINA_BLOK - 150, PAGINA_BLOK + 60))
    with engine.begin() as conn:
        invoegen(conn, range(PAGINA_BLOK + 60, PAGINA_BLOK + 130))
    for begin in (2 * PAGINA_BLOK - 40, 3 * PAGINA_BLOK - 3):
        with engine.begin() as conn:
            invoegen(conn, range(begin, begin + 90))
    if POSTGRES:                     # the API's creates continue after the ids written here
        with engine.begin() as conn:
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('klant', 'id'), (SELECT max(id) FROM klant))")
    pagina_klopt_met_tabel(engine)
    alle_paginas_kloppen(api, engine)

    # deletes in the early bloks (one by one over HTTP, and a bulk statement past the API)
    uuids = verwachte_uuids(engine)
    for u in uuids[5:40:3]:
        assert api.delete(f"/klanten/{u}").status_code == 204
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM klant WHERE id BETWEEN :a AND :b"),
                     {"a": PAGINA_BLOK + 10, "b": PAGINA_BLOK + 70})
    pagina_klopt_met_tabel(engine)
    alle_paginas_kloppen(api, engine)

    # concurrent creates from several threads
    fouten: list = []
    barrier = threading.Barrier(6)

    def werk(i: int) -> None:
        a = Api(api.base)
        barrier.wait(10)
        try:
            for _ in range(12):
                resp = a.post("/klanten", zonder_nummer(bronorganisatie=geldig_rsin(600 + i)))
                assert resp.status_code == 201, resp.text
        except Exception as exc:        # collected: a failure in a thread would otherwise pass silently
            fouten.append(exc)

    threads = [threading.Thread(target=werk, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads) and not fouten, fouten

    # a rolled back insert: its ids are never used (a gap)
    with engine.connect() as conn:
        with conn.begin() as tx:
            if POSTGRES:
                conn.execute(sa.text(f"INSERT INTO klant ({KOLOMMEN}) SELECT gen_random_uuid(), :b, 'weg' || i, '', "
                                     "'', 'http://x.nl', '', '', '', '', '', '', NULL, false, now() "
                                     "FROM generate_series(1, 250) i"), {"b": BRONORGANISATIE})
            else:
                invoegen(conn, range(10 * PAGINA_BLOK, 10 * PAGINA_BLOK + 250))
            tx.rollback()
    for _ in range(3):
        assert api.post("/klanten", zonder_nummer()).status_code == 201
    pagina_klopt_met_tabel(engine)
    alle_paginas_kloppen(api, engine)
    if POSTGRES:
        # the creates folded the slot rows of the older bloks: one row per blok, whatever wrote them
        with engine.connect() as conn:
            # (the blok of the newest klant: bloks above it may hold rows of zero left by earlier tests' deletes,
            # the id sequence having been set back below them by this test)
            nieuwste = conn.exec_driver_sql(f"SELECT max(id) / {PAGINA_BLOK} FROM klant").scalar_one()
            ongevouwen = conn.exec_driver_sql("SELECT count(*) FROM klant_pagina WHERE slot >= 0 AND blok < "
                                              f"{nieuwste}").scalar_one()
        assert ongevouwen == 0


def test_filter_en_pagina(api, engine):
    """A filtered list pages the same way (ids from the filter's index, rows by id after)."""
    with engine.begin() as conn:
        invoegen(conn, range(1, 400))
        conn.exec_driver_sql("UPDATE klant SET functie = 'f' WHERE mod(id, 3) = 0")
    with engine.connect() as conn:
        verwacht = [str(uuid.UUID(str(u))) for u in conn.exec_driver_sql(
            "SELECT uuid FROM klant WHERE functie = 'f' ORDER BY id").scalars()]
    assert len(verwacht) == 133
    gezien = []
    for pagina in (1, 2):
        body = api.get("/klanten", params={"functie": "f", "page": pagina}).json()
        assert body["count"] == 133
        gezien += [r["url"].rsplit("/", 1)[1] for r in body["results"]]
    assert gezien == verwacht
    assert api.get("/klanten", params={"functie": "f", "page": 3}).status_code == 404


@pytest.mark.skipif(not POSTGRES, reason="TRUNCATE is PostgreSQL's")
def test_truncate_leegt_klant_pagina(api, engine):
    with engine.begin() as conn:
        invoegen(conn, range(1, 30))
        conn.exec_driver_sql("TRUNCATE klant CASCADE")
        conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('klant', 'id'), 1, false)")
    assert api.post("/klanten", zonder_nummer()).status_code == 201
    pagina_klopt_met_tabel(engine)
    alle_paginas_kloppen(api, engine)


# ---------- migration 0006 on a database that already holds klanten ----------
def test_migratie_vult_klant_pagina_uit_bestaande_klanten(tmp_path, server_factory):
    def met_database(url):
        upgrade(url, "0005")
        eng = make_engine(url, pool_size=2, max_overflow=0)
        try:
            with eng.begin() as conn:
                invoegen(conn, [*range(1, 120), *range(PAGINA_BLOK - 5, PAGINA_BLOK + 200)])
            upgrade(url)
            if POSTGRES:
                with eng.begin() as conn:
                    conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('klant', 'id'), (SELECT max(id) FROM klant))")
            pagina_klopt_met_tabel(eng)
            api = Api(server_factory(database_url=url).url)
            alle_paginas_kloppen(api, eng)
        finally:
            eng.dispose()

    if not POSTGRES:
        met_database(f"sqlite:///{tmp_path / 'oud.sqlite3'}")
        return
    with eigen_postgres_database("klanten_pagina_migratie") as (url, _admin):
        met_database(url)


# ---------- PostgreSQL: what a page costs, by EXPLAIN (ANALYZE, BUFFERS) ----------
def seed_postgres(url: str, aantal: int) -> None:
    """`aantal` klanten in one INSERT ... SELECT (the triggers on, as any insert), then VACUUM ANALYZE."""
    eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), poolclass=sa.pool.NullPool)
    try:
        with eng.begin() as conn:
            conn.execute(sa.text(
                f"INSERT INTO klant ({KOLOMMEN}, zoek_inp_bsn) SELECT gen_random_uuid(), lpad(mod(i, 50)::text, 9, "
                "'0'), i::text, 'bedrijf' || i, 'functie', 'http://example.com', 'Jan', '', 'achternaam' || i, "
                "'0612345678', 'k' || i || '@example.com', 'https://subject.example/' || i, 'natuurlijk_persoon', "
                "false, now(), lpad(i::text, 9, '0') FROM generate_series(1, :n) i"), {"n": aantal})
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE klant")
            conn.exec_driver_sql("VACUUM ANALYZE klant_pagina")
    finally:
        eng.dispose()



def meet_paginas(url: str, aantal: int) -> dict:
    eng = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with eng.connect() as conn:
            count, klanten = KlantenRepository(conn).zoeken({}, (aantal - 1) // GROOTTE * GROOTTE, GROOTTE)
            assert count == aantal and len(klanten) == aantal - (aantal - 1) // GROOTTE * GROOTTE
            # page 1, the last page, and the page that skips the most inside its blok (its position just
            # before the end of a blok)
            offsets = {"eerste": 0, "laatste": (aantal - 1) // GROOTTE * GROOTTE,
                       "diepste_in_blok": ((aantal // 2) // PAGINA_BLOK * PAGINA_BLOK - 1) // GROOTTE * GROOTTE}
            uit = {naam: kosten(conn, _ONGEFILTERDE_PAGINA.params(offset=o, limit=GROOTTE), "klant")
                   for naam, o in offsets.items()}
            oud = sa.text(f"SELECT * FROM klant ORDER BY id OFFSET {offsets['laatste']} LIMIT {GROOTTE}")
            uit["laatste_zoals_vroeger"] = kosten(conn, oud, "klant")
            # filtered deep pages: subjectType (index (subject_type, id)): the ids from that index alone, the rows
            # by id; bronorganisatie (index (bronorganisatie, klantnummer)): as before, OFFSET over the filter
            from storage.tables import klant as k_tabel
            for naam, kolom, waarde, n in (("subject_type", "subject_type", "natuurlijk_persoon", aantal),
                                           ("bronorganisatie", "bronorganisatie", "000000007", aantal // 50)):
                diep = (n - 1) // GROOTTE * GROOTTE
                gezien = []
                sa.event.listen(conn, "before_cursor_execute", vastleggen := lambda c, cur, st, p, *a: gezien.append(
                    (st, p)))
                count, klanten = KlantenRepository(conn).zoeken({kolom: waarde}, diep, GROOTTE)
                sa.event.remove(conn, "before_cursor_execute", vastleggen)
                assert count == n and len(klanten) == n - diep
                statement, parameters = gezien[-1]
                uit[f"gefilterd_{naam}_laatste"] = kosten(conn, sa.text(statement % {
                    k: (f"'{v}'" if isinstance(v, str) else v) for k, v in parameters.items()}), "klant")
                uit[f"gefilterd_{naam}_zoals_vroeger"] = kosten(conn, sa.select(k_tabel).where(
                    k_tabel.c[kolom] == waarde).order_by(k_tabel.c.id).offset(diep).limit(GROOTTE), "klant")
    finally:
        eng.dispose()
    print(f"\n{aantal} klanten:")
    for naam, k in uit.items():
        print(f"  {naam:32} {k}")
    return uit


def controleer(uit: dict) -> None:
    eerste = uit["eerste"]
    for naam in ("laatste", "diepste_in_blok"):
        k = uit[naam]
        assert not k["seq_scan"], (naam, k)
        assert k["buffers"] <= 1.5 * eerste["buffers"], (naam, k, eerste)
        assert k["rijen"] <= 1.5 * eerste["rijen"], (naam, k, eerste)
        # what the page still reads besides its own rows: fewer than a blok of index entries, one row per blok
        assert k["index_alleen"] < PAGINA_BLOK + GROOTTE, (naam, k)
    # as it was: the last page read every klant before it
    assert uit["laatste_zoals_vroeger"]["buffers"] > 10 * uit["laatste"]["buffers"]
    # a filter with its own (value, id) index: the rows before the page are index entries only, never table rows
    assert uit["gefilterd_subject_type_laatste"]["rijen"] == GROOTTE
    assert (uit["gefilterd_subject_type_laatste"]["buffers"]
            < uit["gefilterd_subject_type_zoals_vroeger"]["buffers"] / 3)


pytestmark_pg = pytest.mark.skipif(not POSTGRES, reason="EXPLAIN (ANALYZE, BUFFERS) is about PostgreSQL")


@pytestmark_pg
def test_een_diepe_pagina_kost_wat_pagina_1_kost_bij_100k():
    with eigen_postgres_database("klanten_pagina_100k") as (url, _admin):
        upgrade(url)
        seed_postgres(url, 100_000)
        controleer(meet_paginas(url, 100_000))


@pytestmark_pg
@pytest.mark.skipif(os.environ.get("KLANTEN_TEST_1M") != "1",
                    reason="seeding a million klanten takes about 45 s: KLANTEN_TEST_1M=1")
def test_een_diepe_pagina_kost_wat_pagina_1_kost_bij_1m():
    with eigen_postgres_database("klanten_pagina_1m") as (url, _admin):
        upgrade(url)
        begin = time.perf_counter()
        seed_postgres(url, 1_000_000)
        print(f"\nseeding 1M: {time.perf_counter() - begin:.1f} s")
        controleer(meet_paginas(url, 1_000_000))
