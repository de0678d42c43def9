"""klant_telling (exact klant count kept by triggers) and, on PostgreSQL, one sequence per bronorganisatie

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Why: an unfiltered list page needs the exact number of klanten; `count(*)` reads the whole table, so it
grows with the register (about 40 ms per page at a million klanten). The count is now kept in
klant_telling by triggers in the same transaction as every insert and delete, so it is exact and costs a
sum over a few rows. On PostgreSQL the count is spread over TELLING_SLOTS rows (each transaction adds to
the row of its transaction id), so concurrent creates rarely wait for each other and a transaction only
ever locks one of them (no deadlocks between them).

kla-001 on PostgreSQL: generated klantnummers come from a sequence per bronorganisatie
(`klantnummer_<bronorganisatie>`, made on first use by the function klantnummer_volgende), drawn inside
the create's own transaction. A sequence takes no row lock, so concurrent creates of one bronorganisatie no
longer queue behind a counter row; numbers that clients chose themselves are skipped. SQLite keeps the
counter row in klantnummer_reeks (its writers are serialised anyway).
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TELLING_SLOTS = 64
MAX_KLANTNUMMER = 99_999_999

PG_TELLING = f"""
CREATE FUNCTION klant_telling_bij() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    verschil bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO verschil FROM klant_nieuw;
    ELSE
        SELECT -count(*) INTO verschil FROM klant_oud;
    END IF;
    IF verschil <> 0 THEN
        INSERT INTO klant_telling (slot, aantal) VALUES (mod(txid_current(), {TELLING_SLOTS}), verschil)
        ON CONFLICT (slot) DO UPDATE SET aantal = klant_telling.aantal + EXCLUDED.aantal;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION klant_telling_leeg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM klant_telling;
    RETURN NULL;
END $$;

CREATE TRIGGER klant_telling_insert AFTER INSERT ON klant REFERENCING NEW TABLE AS klant_nieuw
    FOR EACH STATEMENT EXECUTE FUNCTION klant_telling_bij();
CREATE TRIGGER klant_telling_delete AFTER DELETE ON klant REFERENCING OLD TABLE AS klant_oud
    FOR EACH STATEMENT EXECUTE FUNCTION klant_telling_bij();
CREATE TRIGGER klant_telling_truncate AFTER TRUNCATE ON klant
    FOR EACH STATEMENT EXECUTE FUNCTION klant_telling_leeg();
"""

# the sequence is created by the first transaction that needs it; a transaction that races it waits for that
# one to commit and then finds it (duplicate_table / unique_violation); client-chosen numbers are skipped
PG_REEKS = f"""
CREATE FUNCTION klantnummer_reeks_maken(bron text) RETURNS regclass LANGUAGE plpgsql AS $$
DECLARE
    reeks text := 'klantnummer_' || bron;
BEGIN
    IF to_regclass(reeks) IS NULL THEN
        BEGIN
            EXECUTE 'CREATE SEQUENCE ' || quote_ident(reeks) || ' AS bigint MINVALUE 1 MAXVALUE {MAX_KLANTNUMMER} NO CYCLE';
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL;
        END;
    END IF;
    RETURN to_regclass(reeks);
END $$;

CREATE FUNCTION klantnummer_volgende(bron text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    reeks regclass := to_regclass('klantnummer_' || bron);
    nummer bigint;
BEGIN
    IF reeks IS NULL THEN
        reeks := klantnummer_reeks_maken(bron);
    END IF;
    LOOP
        nummer := nextval(reeks);
        EXIT WHEN NOT EXISTS (SELECT 1 FROM klant WHERE bronorganisatie = bron AND klantnummer = nummer::text);
    END LOOP;
    RETURN nummer;
END $$;
"""

SQLITE_TELLING = """
CREATE TRIGGER klant_telling_insert AFTER INSERT ON klant BEGIN
    INSERT INTO klant_telling (slot, aantal) VALUES (0, 1)
    ON CONFLICT (slot) DO UPDATE SET aantal = aantal + 1;
END;
CREATE TRIGGER klant_telling_delete AFTER DELETE ON klant BEGIN
    INSERT INTO klant_telling (slot, aantal) VALUES (0, -1)
    ON CONFLICT (slot) DO UPDATE SET aantal = aantal - 1;
END;
"""


def _statements(sql: str) -> list[str]:
    """Split on blank lines (each block is one statement; the function bodies hold no blank line)."""
    return [s.strip() for s in sql.split("\n\n") if s.strip()]


def upgrade() -> None:
    op.create_table(
        "klant_telling",
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("aantal", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("slot", name="pk_klant_telling"),
    )
    conn = op.get_bind()
    # the count of the klanten already there (the migration holds the tables: nothing changes meanwhile)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE klant IN SHARE MODE")
    conn.exec_driver_sql("INSERT INTO klant_telling (slot, aantal) SELECT 0, count(*) FROM klant")
    if conn.dialect.name == "postgresql":
        for sql in _statements(PG_TELLING) + _statements(PG_REEKS):
            conn.exec_driver_sql(sql)
        # the counters of kla-001 so far become sequences that continue after them
        for bron, laatste in conn.exec_driver_sql("SELECT bronorganisatie, laatste FROM klantnummer_reeks").all():
            conn.execute(sa.text("SELECT klantnummer_reeks_maken(:b)"), {"b": bron})
            if laatste > 0:
                conn.execute(sa.text("SELECT setval(to_regclass('klantnummer_' || :b), :n)"),
                             {"b": bron, "n": laatste})
        conn.exec_driver_sql("DELETE FROM klantnummer_reeks")
    else:
        for sql in SQLITE_TELLING.split("END;"):
            if sql.strip():
                conn.exec_driver_sql(sql + "END;")


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        reeksen = conn.exec_driver_sql(
            "SELECT substr(sequencename, 13), last_value FROM pg_sequences "
            "WHERE schemaname = current_schema() AND sequencename ~ '^klantnummer_[0-9]{9}$'").all()
        for bron, laatste in reeksen:
            conn.execute(sa.text("INSERT INTO klantnummer_reeks (bronorganisatie, laatste) VALUES (:b, :n)"),
                         {"b": bron, "n": laatste or 0})
            conn.exec_driver_sql(f'DROP SEQUENCE "klantnummer_{bron}"')
        for trigger in ("klant_telling_insert", "klant_telling_delete", "klant_telling_truncate"):
            conn.exec_driver_sql(f"DROP TRIGGER {trigger} ON klant")
        for functie in ("klant_telling_bij()", "klant_telling_leeg()", "klantnummer_volgende(text)",
                        "klantnummer_reeks_maken(text)"):
            conn.exec_driver_sql(f"DROP FUNCTION {functie}")
    else:
        conn.exec_driver_sql("DROP TRIGGER klant_telling_insert")
        conn.exec_driver_sql("DROP TRIGGER klant_telling_delete")
    op.drop_table("klant_telling")
