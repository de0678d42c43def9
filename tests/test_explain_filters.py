"""Every filter of klant_list is served by an index on PostgreSQL (issue: flat up to a million klanten).

The statements are the repository's own (count and page), compiled for PostgreSQL and EXPLAINed on a
seeded table; a selective filter must not need a sequential scan of klant.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import uuid

import pytest
import sqlalchemy as sa

from service.klanten import FILTERS
from storage.klanten import naar_kolommen
from storage.tables import klant

pytestmark = pytest.mark.skipif(not os.environ.get("KLANTEN_TEST_DATABASE_URL", "").startswith("postgres"),
                                reason="EXPLAIN is about the production database (PostgreSQL)")
AANTAL = 6000


def gegevens(i: int) -> dict:
    soort = ("natuurlijk_persoon", "niet_natuurlijk_persoon", "vestiging")[i % 3]
    sid = {"natuurlijk_persoon": {"inpBsn": f"{i:09d}", "anpIdentificatie": f"anp{i}", "inpANummer": f"1{i:09d}"},
           "niet_natuurlijk_persoon": {"innNnpId": f"{i:09d}", "annIdentificatie": f"ann{i}"},
           "vestiging": {"vestigingsNummer": f"v{i}"}}[soort]
    return {"bronorganisatie": f"{i % 50:09d}", "klantnummer": str(i), "bedrijfsnaam": f"bedrijf{i}",
            "functie": f"functie{i}", "websiteUrl": "http://example.com", "voornaam": "", "voorvoegselAchternaam": "",
            "achternaam": f"achternaam{i}", "telefoonnummer": f"06{i:08d}", "emailadres": f"k{i}@example.com",
            "adres": {"straatnaam": f"straat{i}", "huisnummer": i % 999, "huisletter": "", "huisnummertoevoeging": "",
                      "postcode": f"{i % 9999:04d}AB", "woonplaatsnaam": f"plaats{i}", "landcode": f"{i % 9999}"},
            "subject": f"https://subject.example/{i}", "subjectType": soort, "subjectIdentificatie": sid}


@pytest.fixture
def seeded(engine):
    nu = dt.datetime.now(dt.timezone.utc)
    with engine.begin() as conn:
        conn.execute(sa.insert(klant), [{"uuid": uuid.uuid4(), "aangemaakt": nu, **naar_kolommen(gegevens(i))}
                                        for i in range(AANTAL)])
        conn.exec_driver_sql("ANALYZE klant")
    return engine


def plan(conn, statement) -> str:
    sql = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    return "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}"))


WAARDE = {"bronorganisatie": "000000007", "subject_type": "vestiging", "zoek_inp_bsn": "000004242"}


@pytest.mark.parametrize("naam", sorted(FILTERS))
def test_each_filter_uses_an_index(seeded, naam):
    kolom = FILTERS[naam]
    waarde = WAARDE.get(kolom, "onbekende-waarde")
    where = klant.c[kolom] == waarde
    count = sa.select(sa.func.count()).select_from(klant).where(where)
    page = sa.select(klant).where(where).order_by(klant.c.id).offset(0).limit(100)
    with seeded.connect() as conn:
        for statement in (count, page):
            if kolom != "subject_type":            # 3 values: a third of the table, any plan is fair
                text = plan(conn, statement)
                assert "Seq Scan on klant" not in text, text
            conn.exec_driver_sql("SET enable_seqscan = off")     # and an index exists for it at all
            text = plan(conn, statement)
            assert "Seq Scan on klant" not in text, text
            conn.exec_driver_sql("RESET enable_seqscan")


def test_the_unfiltered_count_does_not_read_klant(seeded):
    """A list without filters takes its count from klant_telling (kept by triggers), not from a scan of klant."""
    from storage.klanten import KlantenRepository
    with seeded.connect() as conn:
        statements = []
        sa.event.listen(conn, "before_cursor_execute",
                        lambda c, cur, statement, parameters, *a: statements.append((statement, parameters)))
        count, rijen = KlantenRepository(conn).zoeken({}, 0, 100)
        assert count == AANTAL and len(rijen) == 100
        (tellen, parameters), _pagina = statements
        assert "klant_telling" in tellen and " klant " not in f"{tellen} "
        text = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {tellen}", parameters))
        assert "on klant " not in text and "on klant\n" not in text, text


def test_the_relay_claim_reads_pending_messages_only(engine, tmp_path):
    """However many sent messages the outbox keeps, claiming walks the partial index of pending ones."""
    from klanten_api.settings import Settings
    from notificaties.relay import Relay
    from storage.tables import notificatie
    nu = dt.datetime.now(dt.timezone.utc)
    rijen = [{"klant_uuid": uuid.uuid4(), "kanaal": "klanten", "bericht": "{}", "pogingen": 1, "volgende_poging": nu,
              "laatste_fout": "", "aangemaakt": nu,
              "status": "sent" if i < 20_000 else "failed" if i < 20_030 else "pending"}
             for i in range(20_080)]
    with engine.begin() as conn:
        conn.execute(sa.insert(notificatie), rijen)
        conn.exec_driver_sql("ANALYZE notificatie")
    relay = Relay(engine, Settings(database_url="postgresql://", notifications_api_url="http://127.0.0.1:9/"))
    with engine.connect() as conn:
        text = plan(conn, relay.claim_statement(conn))
        assert "ix_notificatie_wachtend on notificatie kandidaat" in text and "Seq Scan" not in text, text
        # the check for an older pending or failed message of the same klant (order per klant) reads those only
        assert "ix_notificatie_open_per_klant on notificatie ouder" in text, text
        # as the server runs it: psycopg prepares a statement it has executed a few times, and PostgreSQL may
        # then use a generic plan (no parameter values known); the partial index must serve that plan too
        conn.rollback()
        gezien = []
        with engine.connect() as apart:              # the statement exactly as the relay sends it (rolled back)
            sa.event.listen(apart, "before_cursor_execute",
                            lambda c, cur, st, params, *a: gezien.append((st, params)))
            apart.execute(relay.claim_statement(apart), relay.claim_parameters(apart))
            apart.rollback()
        (sql, params), = gezien
        namen = re.findall(r"%\((\w+)\)s", sql)
        for i, naam in enumerate(namen, start=1):
            sql = sql.replace(f"%({naam})s", f"${i}")
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        conn.exec_driver_sql(f"PREPARE claim AS {sql}")
        argumenten = ", ".join(f"'{params[n].total_seconds()} seconds'::interval" if isinstance(params[n], dt.timedelta)
                               else str(int(params[n])) for n in namen)
        text = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN EXECUTE claim({argumenten})"))
        assert "ix_notificatie_wachtend on notificatie kandidaat" in text and "Seq Scan" not in text, text
        assert "ix_notificatie_open_per_klant on notificatie ouder" in text, text
        conn.exec_driver_sql("DEALLOCATE claim")
        conn.exec_driver_sql("RESET plan_cache_mode")
        assert len(conn.execute(relay.claim_statement(conn), relay.claim_parameters(conn)).all()) == relay.batch
