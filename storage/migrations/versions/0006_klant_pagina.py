"""klant_pagina: where each page of the unfiltered klant list starts, kept exact by triggers (issue #14, point 2)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-12

Why: `?page=N` used OFFSET (N-1)*100, so PostgreSQL read every klant before the page: 20-30 ms per page at
100,000 klanten and a quadratic walk over all pages at a million. klant_pagina counts the klanten per blok of
PAGINA_BLOK consecutive ids (blok = id / PAGINA_BLOK; ids only grow). A page then costs a running sum over the
bloks before it (one small row per blok), a skip of fewer than PAGINA_BLOK entries of klant's primary key index
inside its blok, and the 100 rows fetched by id (storage.klanten.KlantenRepository.zoeken).

The triggers run in the transaction of every insert and delete, as klant_telling's (migration 0002), so the
table is exact for every snapshot. On PostgreSQL a statement adds to the row (blok, slot) of its transaction's
slot (mod(txid_current(), 64), the slot klant_telling uses too), so concurrent creates in the newest blok rarely
wait for each other. Those slot rows would multiply the rows a page has to sum, so an insert folds the slot rows of
the older bloks into one row per blok (slot -1): only under a transaction-level advisory lock taken with `try`
(one folder at a time, the others skip it) and only rows no one else holds (SKIP LOCKED), so folding never
makes a write wait and cannot deadlock; what is skipped is folded by a later insert. SQLite writes are
serialised anyway: one row per blok (slot -1), row triggers.
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PAGINA_BLOK = 4096          # ids per blok; storage.tables.PAGINA_BLOK must say the same
TELLING_SLOTS = 64          # as migration 0002
GEVOUWEN = -1               # the slot of a blok's folded count
VOUW_SLOT = 7_140_614       # the advisory lock key of the folder (any constant of ours)

PG_PAGINA = f"""
CREATE FUNCTION klant_pagina_bij() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    eigen_slot integer := mod(txid_current(), {TELLING_SLOTS});
    nieuwste bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO klant_pagina (blok, slot, aantal)
        SELECT id / {PAGINA_BLOK}, eigen_slot, count(*) FROM klant_nieuw GROUP BY 1 ORDER BY 1
        ON CONFLICT (blok, slot) DO UPDATE SET aantal = klant_pagina.aantal + EXCLUDED.aantal;
        SELECT max(id) / {PAGINA_BLOK} INTO nieuwste FROM klant_nieuw;
        IF EXISTS (SELECT 1 FROM klant_pagina WHERE slot >= 0 AND blok < nieuwste)
                AND pg_try_advisory_xact_lock({VOUW_SLOT}) THEN
            WITH vrij AS (
                SELECT blok, slot FROM klant_pagina WHERE slot >= 0 AND blok < nieuwste
                ORDER BY blok, slot FOR UPDATE SKIP LOCKED
            ), weg AS (
                DELETE FROM klant_pagina p USING vrij WHERE p.blok = vrij.blok AND p.slot = vrij.slot
                RETURNING p.blok, p.aantal
            )
            INSERT INTO klant_pagina (blok, slot, aantal)
            SELECT blok, {GEVOUWEN}, sum(aantal) FROM weg GROUP BY blok ORDER BY blok
            ON CONFLICT (blok, slot) DO UPDATE SET aantal = klant_pagina.aantal + EXCLUDED.aantal;
        END IF;
    ELSE
        INSERT INTO klant_pagina (blok, slot, aantal)
        SELECT id / {PAGINA_BLOK}, eigen_slot, -count(*) FROM klant_oud GROUP BY 1 ORDER BY 1
        ON CONFLICT (blok, slot) DO UPDATE SET aantal = klant_pagina.aantal + EXCLUDED.aantal;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION klant_pagina_leeg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM klant_pagina;
    RETURN NULL;
END $$;

CREATE TRIGGER klant_pagina_insert AFTER INSERT ON klant REFERENCING NEW TABLE AS klant_nieuw
    FOR EACH STATEMENT EXECUTE FUNCTION klant_pagina_bij();

CREATE TRIGGER klant_pagina_delete AFTER DELETE ON klant REFERENCING OLD TABLE AS klant_oud
    FOR EACH STATEMENT EXECUTE FUNCTION klant_pagina_bij();

CREATE TRIGGER klant_pagina_truncate AFTER TRUNCATE ON klant
    FOR EACH STATEMENT EXECUTE FUNCTION klant_pagina_leeg();
"""

SQLITE_PAGINA = f"""
CREATE TRIGGER klant_pagina_insert AFTER INSERT ON klant BEGIN
    INSERT INTO klant_pagina (blok, slot, aantal) VALUES (NEW.id / {PAGINA_BLOK}, {GEVOUWEN}, 1)
    ON CONFLICT (blok, slot) DO UPDATE SET aantal = aantal + 1;
END;
CREATE TRIGGER klant_pagina_delete AFTER DELETE ON klant BEGIN
    INSERT INTO klant_pagina (blok, slot, aantal) VALUES (OLD.id / {PAGINA_BLOK}, {GEVOUWEN}, -1)
    ON CONFLICT (blok, slot) DO UPDATE SET aantal = aantal - 1;
END;
"""


def upgrade() -> None:
    op.create_table(
        "klant_pagina",
        sa.Column("blok", sa.BigInteger(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("aantal", sa.Integer(), nullable=False),     # |aantal| <= PAGINA_BLOK
        sa.PrimaryKeyConstraint("blok", "slot", name="pk_klant_pagina"),
    )
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        # what the folder looks for: the slot rows not folded yet (a handful, whatever the size of the register)
        conn.exec_driver_sql("CREATE INDEX ix_klant_pagina_ongevouwen ON klant_pagina (blok) WHERE slot >= 0")
        conn.exec_driver_sql("LOCK TABLE klant IN SHARE MODE")     # nothing changes until the triggers exist
    conn.exec_driver_sql(f"INSERT INTO klant_pagina (blok, slot, aantal) SELECT id / {PAGINA_BLOK}, {GEVOUWEN}, "
                         f"count(*) FROM klant GROUP BY id / {PAGINA_BLOK}")
    if conn.dialect.name == "postgresql":
        for sql in (s.strip() for s in PG_PAGINA.split("\n\n")):
            if sql:
                conn.exec_driver_sql(sql)
    else:
        for sql in SQLITE_PAGINA.split("END;"):
            if sql.strip():
                conn.exec_driver_sql(sql + "END;")


def downgrade() -> None:
    conn = op.get_bind()
    for trigger in ("klant_pagina_insert", "klant_pagina_delete", "klant_pagina_truncate"):
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"DROP TRIGGER {trigger} ON klant")
        elif trigger != "klant_pagina_truncate":
            conn.exec_driver_sql(f"DROP TRIGGER {trigger}")
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("DROP FUNCTION klant_pagina_bij()")
        conn.exec_driver_sql("DROP FUNCTION klant_pagina_leeg()")
    op.drop_table("klant_pagina")
