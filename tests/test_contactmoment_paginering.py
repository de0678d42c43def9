"""Pages of the contactmoment list (issue #14, point 2): every unfiltered page is what ORDER BY id OFFSET/LIMIT over
contactmoment (joined to its vorig and volgend) gives on the same data, the count is exact, and on PostgreSQL a page
anywhere costs what page 1 costs and the count reads no contactmoment.

Where a page starts and how many there are both come from contactmoment_pagina (contactmomenten per blok of
PAGINA_BLOK ids, kept by triggers, migration 0008). These tests write across blok boundaries, delete in early
bloks, create concurrently, leave gaps in the ids (a rolled back insert), seed with the benchmark's COPY and check
every page over HTTP against the table itself and against the list as it was computed before (a filter that
matches every contactmoment still takes that path: count(*) and OFFSET over the joins).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import threading
import uuid

import pytest
import sqlalchemy as sa

from cm_hulp import BRON, CmApi, cm_body
from explain import kosten
from conftest import eigen_postgres_database
from storage.contactmomenten import _AANTAL, _ONGEFILTERDE_PAGINA, ContactmomentenRepository, naar_kolommen
from storage.database import make_engine
from storage.migrate import upgrade
from storage.tables import PAGINA_BLOK, contactmoment

POSTGRES = os.environ.get("KLANTEN_TEST_DATABASE_URL", "").startswith("postgres")
GROOTTE = 100
ALLES = {"registratiedatum__gte": "1900-01-01T00:00:00Z"}     # a filter every contactmoment matches: the old path
NU = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def cm(server) -> CmApi:
    return CmApi(server.url)


def invoegen(conn, ids, *, vorig: dict[int, int] | None = None) -> None:
    """Contactmomenten with these ids, a few hundred per statement (the triggers see statements of several rows);
    `vorig`: id -> the id it follows up."""
    vorig = vorig or {}
    rijen = []
    for i in ids:
        g = {"bronorganisatie": BRON, "registratiedatum": NU + dt.timedelta(seconds=i), "kanaal": f"k{i % 7}",
             "voorkeurskanaal": "", "voorkeurstaal": "nld", "tekst": f"tekst {i}", "onderwerpLinks": [],
             "initiatiefnemer": "klant", "medewerker": "https://medewerker.example/1",
             "medewerkerIdentificatie": {"identificatie": f"m{i}", "achternaam": "Buurman", "voorletters": "B",
                                         "voorvoegselAchternaam": ""} if i % 2 else None}
        rijen.append({"id": i, "uuid": uuid.uuid4(), "aangemaakt": NU, **naar_kolommen(g, vorig.get(i))})
    for begin in range(0, len(rijen), 200):
        conn.execute(sa.insert(contactmoment).values(rijen[begin:begin + 200]))


def sequence_bijwerken(engine) -> None:
    if POSTGRES:                     # the API's creates continue after the ids written here
        with engine.begin() as conn:
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('contactmoment', 'id'), "
                                 "(SELECT max(id) FROM contactmoment))")


def verwachte_uuids(engine) -> list[str]:
    with engine.connect() as conn:
        return [str(uuid.UUID(str(u))) for u in
                conn.exec_driver_sql("SELECT uuid FROM contactmoment ORDER BY id").scalars()]


def pagina_klopt_met_tabel(engine) -> None:
    """contactmoment_pagina holds, per blok, exactly the number of contactmomenten of that blok (and so, summed, the
    number of contactmomenten)."""
    with engine.connect() as conn:
        echt = dict(conn.exec_driver_sql(f"SELECT id / {PAGINA_BLOK}, count(*) FROM contactmoment GROUP BY 1").all())
        gehouden = {b: n for b, n in conn.exec_driver_sql(
            "SELECT blok, sum(aantal) FROM contactmoment_pagina GROUP BY blok").all() if n}
        assert conn.execute(_AANTAL).scalar_one() == sum(echt.values())
    assert gehouden == echt


def alle_paginas_kloppen(cm: CmApi, engine, *, met_oud: bool = True) -> None:
    """Every page over HTTP: its uuids in id order, the count, the links, `page=last` and the page beyond the last;
    with `met_oud` each page's count and results are also exactly those of the old path (a filter on everything)."""
    uuids = verwachte_uuids(engine)
    laatste = max(1, -(-len(uuids) // GROOTTE))
    for pagina in range(1, laatste + 1):
        resp = cm.get("/contactmomenten", params={"page": pagina} if pagina > 1 else None)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["count"] == len(uuids)
        verwacht = uuids[(pagina - 1) * GROOTTE:pagina * GROOTTE]
        assert [r["url"].rsplit("/", 1)[1] for r in body["results"]] == verwacht, f"page {pagina}"
        assert body["next"] == (f"{cm.root}/contactmomenten?page={pagina + 1}" if pagina < laatste else None)
        assert body["previous"] == (None if pagina == 1 else
                                    f"{cm.root}/contactmomenten" + (f"?page={pagina - 1}" if pagina > 2 else ""))
        if met_oud and uuids:
            oud = cm.get("/contactmomenten", params={**ALLES, "page": pagina}).json()
            assert (oud["count"], oud["results"]) == (body["count"], body["results"]), f"page {pagina}"
    assert cm.get("/contactmomenten", params={"page": "last"}).content == resp.content
    voorbij = cm.get("/contactmomenten", params={"page": laatste + 1})
    assert voorbij.status_code == 404 and voorbij.json()["detail"] == "Ongeldige pagina.", voorbij.text


def test_paginas_over_blokgrenzen_na_verwijderen_gelijktijdig_aanmaken_en_een_gat(cm, engine):
    # rows on both sides of three blok boundaries, written by several statements and transactions (on PostgreSQL
    # several slots of one blok); some follow up an earlier one, across a page and a blok boundary too
    vorig = {i: i - 1 for i in range(PAGINA_BLOK - 140, PAGINA_BLOK + 60, 5)}
    vorig[PAGINA_BLOK + 2] = PAGINA_BLOK - 149
    with engine.begin() as conn:
        invoegen(conn, range(PAGINA_BLOK - 150, PAGINA_BLOK + 60), vorig=vorig)
    with engine.begin() as conn:
        invoegen(conn, range(PAGINA_BLOK + 60, PAGINA_BLOK + 130))
    for begin in (2 * PAGINA_BLOK - 40, 3 * PAGINA_BLOK - 3):
        with engine.begin() as conn:
            invoegen(conn, range(begin, begin + 90), vorig={begin + 50: begin + 49})
    sequence_bijwerken(engine)
    pagina_klopt_met_tabel(engine)
    alle_paginas_kloppen(cm, engine)
    # the joins are exercised: pages carry vorig and volgend links
    tweede = cm.get("/contactmomenten", params={"page": 2}).json()["results"]
    assert any(r["vorigContactmoment"] for r in tweede) and any(r["volgendContactmoment"] for r in tweede)

    # deletes in the early bloks: over HTTP (contactmomenten that no later one follows up) and a bulk statement
    # past the API
    with engine.connect() as conn:
        vrij = [str(uuid.UUID(str(u))) for u in conn.exec_driver_sql(
            "SELECT uuid FROM contactmoment c WHERE NOT EXISTS (SELECT 1 FROM contactmoment v "
            "WHERE v.vorig_contactmoment_id = c.id) ORDER BY id").scalars()]
    for u in vrij[5:60:4]:
        assert cm.delete(f"/contactmomenten/{u}").status_code == 204
    with engine.begin() as conn:
        grenzen = {"a": PAGINA_BLOK + 10, "b": PAGINA_BLOK + 70}
        conn.execute(sa.text("UPDATE contactmoment SET vorig_contactmoment_id = NULL "
                             "WHERE vorig_contactmoment_id BETWEEN :a AND :b"), grenzen)
        conn.execute(sa.text("DELETE FROM contactmoment WHERE id BETWEEN :a AND :b"), grenzen)
    pagina_klopt_met_tabel(engine)
    alle_paginas_kloppen(cm, engine)

    # concurrent creates from several threads
    fouten: list = []
    barrier = threading.Barrier(6)

    def werk(i: int) -> None:
        a = CmApi(cm.base)
        barrier.wait(10)
        try:
            for j in range(12):
                resp = a.post("/contactmomenten", cm_body(tekst=f"gelijktijdig {i} {j}"))
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
                conn.execute(sa.text(
                    "INSERT INTO contactmoment (uuid, bronorganisatie, registratiedatum, kanaal, voorkeurskanaal, "
                    "voorkeurstaal, tekst, onderwerp_links, initiatiefnemer, medewerker, medewerker_sleutel, "
                    "mw_aanwezig, aangemaakt) SELECT gen_random_uuid(), :b, now(), '', '', '', 'weg', '[]', '', "
                    "'https://m.example', repeat('0', 64), false, now() FROM generate_series(1, 250)"),
                    {"b": BRON})
            else:
                invoegen(conn, range(10 * PAGINA_BLOK, 10 * PAGINA_BLOK + 250))
            tx.rollback()
    for _ in range(3):
        assert cm.post("/contactmomenten", cm_body()).status_code == 201
    pagina_klopt_met_tabel(engine)
    alle_paginas_kloppen(cm, engine)
    if POSTGRES:
        # the creates folded the slot rows of the older bloks: one row per blok, whatever wrote them
        with engine.connect() as conn:
            nieuwste = conn.exec_driver_sql("SELECT max(blok) FROM contactmoment_pagina").scalar_one()
            ongevouwen = conn.exec_driver_sql("SELECT count(*) FROM contactmoment_pagina WHERE slot >= 0 AND blok < "
                                              f"{nieuwste}").scalar_one()
        assert ongevouwen == 0


def test_lege_lijst_en_ordering_klant(cm, engine):
    """No contactmomenten: page 1 is empty, page 2 is 404. `ordering=klant` sorts on nothing (DECISIONS #20), so it
    is the unfiltered list too, with the query kept in its links."""
    assert cm.get("/contactmomenten").content == cm.get("/contactmomenten", params=ALLES).content
    assert cm.get("/contactmomenten").json() == {"count": 0, "next": None, "previous": None, "results": []}
    assert cm.get("/contactmomenten", params={"page": "last"}).json()["count"] == 0
    assert cm.get("/contactmomenten", params={"page": 2}).status_code == 404
    with engine.begin() as conn:
        invoegen(conn, range(1, 251))
    sequence_bijwerken(engine)
    for ordering in ("klant", "-klant"):
        for pagina in (1, 3):
            body = cm.get("/contactmomenten", params={"ordering": ordering, "page": pagina}).json()
            oud = cm.get("/contactmomenten", params={**ALLES, "page": pagina}).json()
            assert (body["count"], body["results"]) == (oud["count"], oud["results"]) and body["count"] == 250
            if pagina == 1:
                assert body["next"] == f"{cm.root}/contactmomenten?ordering={ordering}&page=2"
            else:
                assert body["next"] is None
                assert body["previous"] == f"{cm.root}/contactmomenten?ordering={ordering}&page=2"
    # other orderings keep their order
    body = cm.get("/contactmomenten", params={"ordering": "-registratiedatum"}).json()
    assert [r["tekst"] for r in body["results"][:2]] == ["tekst 250", "tekst 249"]


@pytest.mark.skipif(not POSTGRES, reason="TRUNCATE is PostgreSQL's")
def test_truncate_leegt_contactmoment_pagina(cm, engine):
    with engine.begin() as conn:
        invoegen(conn, range(1, 30))
        conn.exec_driver_sql("TRUNCATE contactmoment CASCADE")
        conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('contactmoment', 'id'), 1, false)")
    assert cm.post("/contactmomenten", cm_body()).status_code == 201
    pagina_klopt_met_tabel(engine)
    alle_paginas_kloppen(cm, engine)


# ---------- migration 0008 on a database that already holds contactmomenten, and back ----------
def test_migratie_vult_contactmoment_pagina_en_terug(tmp_path, server_factory):
    def met_database(url):
        upgrade(url, "0007")
        eng = make_engine(url, pool_size=2, max_overflow=0)
        try:
            with eng.begin() as conn:
                invoegen(conn, [*range(1, 120), *range(PAGINA_BLOK - 5, PAGINA_BLOK + 200)],
                         vorig={PAGINA_BLOK: 3, 50: 49})
            upgrade(url, "0008")
            sequence_bijwerken(eng)
            pagina_klopt_met_tabel(eng)
            cm = CmApi(server_factory(database_url=url).url)
            alle_paginas_kloppen(cm, eng)
            # downgrade: table, triggers (and functions) gone; writes go on; upgrade again counts what is there
            from alembic import command

            from storage.migrate import alembic_config
            eng.dispose()
            command.downgrade(alembic_config(url), "0007")
            with eng.begin() as conn:
                assert not sa.inspect(conn).has_table("contactmoment_pagina")
                invoegen(conn, range(3 * PAGINA_BLOK, 3 * PAGINA_BLOK + 10))
                conn.exec_driver_sql("DELETE FROM contactmoment WHERE id = 7")
            upgrade(url, "0008")
            sequence_bijwerken(eng)
            pagina_klopt_met_tabel(eng)
            alle_paginas_kloppen(cm, eng)
        finally:
            eng.dispose()

    if not POSTGRES:
        met_database(f"sqlite:///{tmp_path / 'oud.sqlite3'}")
        return
    with eigen_postgres_database("cm_pagina_migratie") as (url, _admin):
        met_database(url)


# ---------- PostgreSQL: a COPY seeding as the benchmark's keeps contactmoment_pagina exact ----------
@pytest.mark.skipif(not POSTGRES, reason="the benchmark seeds PostgreSQL with COPY")
def test_copy_seeding_houdt_contactmoment_pagina_exact():
    """As bench/dataset.py seed_contactmomenten: one transaction, COPY statements of a few thousand rows with their
    ids (statement triggers fire for COPY too), the sequence set after, over two blok boundaries."""
    import psycopg

    aantal, batch = 2 * PAGINA_BLOK + 500, 3000
    with eigen_postgres_database("cm_pagina_copy") as (url, _admin):
        upgrade(url)
        eng = make_engine(url, pool_size=1, max_overflow=0)
        try:
            with eng.begin() as conn:        # the column order of COPY, from rows the storage itself composes
                invoegen(conn, [1])
                kolommen = list(conn.execute(sa.select(contactmoment)).mappings().one())
                conn.exec_driver_sql("DELETE FROM contactmoment")
            uuids = [uuid.uuid4() for _ in range(aantal)]
            with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as pg:
                with pg.cursor() as cur:
                    for begin in range(0, aantal, batch):
                        with cur.copy(f"COPY contactmoment ({', '.join(kolommen)}) FROM STDIN") as copy:
                            for i in range(begin + 1, min(aantal, begin + batch) + 1):
                                g = {"bronorganisatie": BRON, "registratiedatum": NU, "kanaal": "telefoon",
                                     "voorkeurskanaal": "", "voorkeurstaal": "", "tekst": f"copy {i}",
                                     "onderwerpLinks": [], "initiatiefnemer": "klant",
                                     "medewerker": "https://medewerker.example/1", "medewerkerIdentificatie": None}
                                rij = {"id": i, "uuid": uuids[i - 1], "aangemaakt": NU,
                                       **naar_kolommen(g, i - 1 if i % 5 == 0 else None)}
                                copy.write_row([json.dumps(rij[k]) if k == "onderwerp_links" else rij[k]
                                                for k in kolommen])
                    cur.execute("SELECT setval(pg_get_serial_sequence('contactmoment', 'id'), "
                                "(SELECT max(id) FROM contactmoment))")
                pg.commit()
            pagina_klopt_met_tabel(eng)
            with eng.connect() as conn:
                diep = 2 * PAGINA_BLOK - 50
                count, items = ContactmomentenRepository(conn).zoeken({}, [], diep, GROOTTE)
                assert count == aantal
                assert [c.uuid for c in items] == uuids[diep:diep + GROOTTE]
                assert [c.vorig_id for c in items[:5]] == [i - 1 if i % 5 == 0 else None
                                                          for i in range(diep + 1, diep + 6)]
        finally:
            eng.dispose()


# ---------- PostgreSQL: what a page and the count cost, by EXPLAIN (ANALYZE, BUFFERS) ----------
def seed_postgres(url: str, aantal: int) -> None:
    """`aantal` contactmomenten in one INSERT ... SELECT (the triggers on, as any insert), one in five following up
    the one before it, then VACUUM ANALYZE."""
    eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), poolclass=sa.pool.NullPool)
    try:
        with eng.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO contactmoment (id, uuid, vorig_contactmoment_id, bronorganisatie, registratiedatum, "
                "kanaal, voorkeurskanaal, voorkeurstaal, tekst, onderwerp_links, initiatiefnemer, medewerker, "
                "medewerker_sleutel, mw_aanwezig, mw_identificatie, mw_achternaam, mw_voorletters, "
                "mw_voorvoegsel_achternaam, aangemaakt) "
                "SELECT i, gen_random_uuid(), CASE WHEN mod(i, 5) = 0 THEN i - 1 END, :b, "
                "now() - make_interval(mins => :n - i), 'telefoon', 'email', 'nld', 'Vraag over ' || i, '[]', "
                "'klant', 'https://medewerker.example/' || mod(i, 40), md5(mod(i, 40)::text) || md5('x'), true, "
                "'m' || mod(i, 40), 'Buurman', 'B', '', now() FROM generate_series(1, :n) i"),
                {"b": BRON, "n": aantal})
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('contactmoment', 'id'), "
                                 "(SELECT max(id) FROM contactmoment))")
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE contactmoment")
            conn.exec_driver_sql("VACUUM ANALYZE contactmoment_pagina")
    finally:
        eng.dispose()



def meet_paginas(url: str, aantal: int) -> dict:
    eng = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with eng.connect() as conn:
            laatste = (aantal - 1) // GROOTTE * GROOTTE
            count, items = ContactmomentenRepository(conn).zoeken({}, [], laatste, GROOTTE)
            assert count == aantal and len(items) == aantal - laatste
            # page 1, the last page, and the page that skips the most inside its blok (its position just before
            # the end of a blok)
            offsets = {"eerste": 0, "laatste": laatste,
                       "diepste_in_blok": ((aantal // 2) // PAGINA_BLOK * PAGINA_BLOK - 1) // GROOTTE * GROOTTE}
            uit = {naam: kosten(conn, _ONGEFILTERDE_PAGINA.params(offset=o, limit=GROOTTE), "contactmoment")
                   for naam, o in offsets.items()}
            # as it was: OFFSET over the joins, and a count(*) of the whole table per page
            from storage.contactmomenten import _SELECT
            uit["laatste_zoals_vroeger"] = kosten(
                conn, _SELECT.order_by(contactmoment.c.id).offset(laatste).limit(GROOTTE), "contactmoment")
            uit["telling"] = kosten(conn, _AANTAL, "contactmoment")
            uit["telling_zoals_vroeger"] = kosten(conn, sa.select(sa.func.count()).select_from(contactmoment),
                                                  "contactmoment")
    finally:
        eng.dispose()
    print(f"\n{aantal} contactmomenten:")
    for naam, k in uit.items():
        print(f"  {naam:24} {k}")
    return uit


@pytest.mark.skipif(not POSTGRES, reason="EXPLAIN (ANALYZE, BUFFERS) is about PostgreSQL")
def test_een_diepe_pagina_kost_wat_pagina_1_kost_bij_100k():
    with eigen_postgres_database("cm_pagina_100k") as (url, _admin):
        upgrade(url)
        seed_postgres(url, 100_000)
        uit = meet_paginas(url, 100_000)
    eerste = uit["eerste"]
    assert eerste["rijen"] <= 3 * GROOTTE        # the page's rows and their vorig / volgend, nothing more
    for naam in ("laatste", "diepste_in_blok"):
        k = uit[naam]
        assert not k["seq_scan"], (naam, k)
        assert k["buffers"] <= 1.5 * eerste["buffers"], (naam, k, eerste)
        assert k["rijen"] <= 1.5 * eerste["rijen"], (naam, k, eerste)
        # what the page still reads besides its own rows: fewer than a blok of index entries, a row per blok
        assert k["index_alleen"] < PAGINA_BLOK + GROOTTE, (naam, k)
        assert k["pagina_rijen"] < 100_000 / PAGINA_BLOK + 70, (naam, k)
    # as it was: the last page read every contactmoment before it
    assert uit["laatste_zoals_vroeger"]["buffers"] > 10 * uit["laatste"]["buffers"]
    # the count: a sum over contactmoment_pagina, no contactmoment read at all
    telling = uit["telling"]
    assert telling["rijen"] == telling["index_alleen"] == 0, telling
    assert telling["buffers"] * 20 < uit["telling_zoals_vroeger"]["buffers"], uit
