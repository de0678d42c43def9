"""The `<tabel>_pagina` table of a list (migrations 0006 klant, 0007 contactmoment): how many rows of `<tabel>` each
blok of PAGINA_BLOK consecutive ids holds (blok = id / PAGINA_BLOK; ids only grow), kept exact by triggers in the
transaction of every insert and delete. A page of the unfiltered list then starts from a running sum over the bloks
(storage.paginering), and the sum over all bloks is the exact number of rows.

On PostgreSQL a statement adds to the row (blok, slot) of its transaction's slot (mod(txid_current(), 64), the slot
klant_telling uses too), so concurrent creates in the newest blok rarely wait for each other. Those slot rows would
multiply the rows a page has to sum, so an insert folds the slot rows of the older bloks into one row per blok (slot
-1): only under a transaction-level advisory lock taken with `try` (one folder at a time, the others skip it) and only
rows no one else holds (SKIP LOCKED), so folding never makes a write wait and cannot deadlock; what is skipped is
folded by a later insert. Statement triggers fire for COPY too. SQLite writes are serialised anyway: one row per blok
(slot -1), row triggers.

Frozen: migrations run this code, so what it generates for a table must never change (migration 0006's statements
are exactly those it had when it held them itself). Another behaviour is a new function and a new migration.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

PAGINA_BLOK = 4096          # ids per blok; storage.tables.PAGINA_BLOK must say the same
TELLING_SLOTS = 64          # as migration 0002
GEVOUWEN = -1               # the slot of a blok's folded count


def pg_sql(tabel: str, vouw_slot: int) -> str:
    """The PostgreSQL functions and triggers of `<tabel>_pagina`; `vouw_slot` is the advisory lock key of its
    folder (a constant of ours, one per table). Statements are separated by blank lines."""
    p = f"{tabel}_pagina"
    return f"""
CREATE FUNCTION {p}_bij() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    eigen_slot integer := mod(txid_current(), {TELLING_SLOTS});
    nieuwste bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {p} (blok, slot, aantal)
        SELECT id / {PAGINA_BLOK}, eigen_slot, count(*) FROM {tabel}_nieuw GROUP BY 1 ORDER BY 1
        ON CONFLICT (blok, slot) DO UPDATE SET aantal = {p}.aantal + EXCLUDED.aantal;
        SELECT max(id) / {PAGINA_BLOK} INTO nieuwste FROM {tabel}_nieuw;
        IF EXISTS (SELECT 1 FROM {p} WHERE slot >= 0 AND blok < nieuwste)
                AND pg_try_advisory_xact_lock({vouw_slot}) THEN
            WITH vrij AS (
                SELECT blok, slot FROM {p} WHERE slot >= 0 AND blok < nieuwste
                ORDER BY blok, slot FOR UPDATE SKIP LOCKED
            ), weg AS (
                DELETE FROM {p} p USING vrij WHERE p.blok = vrij.blok AND p.slot = vrij.slot
                RETURNING p.blok, p.aantal
            )
            INSERT INTO {p} (blok, slot, aantal)
            SELECT blok, {GEVOUWEN}, sum(aantal) FROM weg GROUP BY blok ORDER BY blok
            ON CONFLICT (blok, slot) DO UPDATE SET aantal = {p}.aantal + EXCLUDED.aantal;
        END IF;
    ELSE
        INSERT INTO {p} (blok, slot, aantal)
        SELECT id / {PAGINA_BLOK}, eigen_slot, -count(*) FROM {tabel}_oud GROUP BY 1 ORDER BY 1
        ON CONFLICT (blok, slot) DO UPDATE SET aantal = {p}.aantal + EXCLUDED.aantal;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION {p}_leeg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {p};
    RETURN NULL;
END $$;

CREATE TRIGGER {p}_insert AFTER INSERT ON {tabel} REFERENCING NEW TABLE AS {tabel}_nieuw
    FOR EACH STATEMENT EXECUTE FUNCTION {p}_bij();

CREATE TRIGGER {p}_delete AFTER DELETE ON {tabel} REFERENCING OLD TABLE AS {tabel}_oud
    FOR EACH STATEMENT EXECUTE FUNCTION {p}_bij();

CREATE TRIGGER {p}_truncate AFTER TRUNCATE ON {tabel}
    FOR EACH STATEMENT EXECUTE FUNCTION {p}_leeg();
"""


def sqlite_sql(tabel: str) -> str:
    """The SQLite triggers of `<tabel>_pagina` (each statement ends with `END;`)."""
    p = f"{tabel}_pagina"
    return f"""
CREATE TRIGGER {p}_insert AFTER INSERT ON {tabel} BEGIN
    INSERT INTO {p} (blok, slot, aantal) VALUES (NEW.id / {PAGINA_BLOK}, {GEVOUWEN}, 1)
    ON CONFLICT (blok, slot) DO UPDATE SET aantal = aantal + 1;
END;
CREATE TRIGGER {p}_delete AFTER DELETE ON {tabel} BEGIN
    INSERT INTO {p} (blok, slot, aantal) VALUES (OLD.id / {PAGINA_BLOK}, {GEVOUWEN}, -1)
    ON CONFLICT (blok, slot) DO UPDATE SET aantal = aantal - 1;
END;
"""


def maken(tabel: str, vouw_slot: int) -> None:
    """Create `<tabel>_pagina`, fill it from the rows already there and install its triggers (in the migration's
    transaction; on PostgreSQL `<tabel>` is locked against writes until the triggers exist)."""
    p = f"{tabel}_pagina"
    op.create_table(
        p,
        sa.Column("blok", sa.BigInteger(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("aantal", sa.Integer(), nullable=False),     # |aantal| <= PAGINA_BLOK
        sa.PrimaryKeyConstraint("blok", "slot", name=f"pk_{p}"),
    )
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        # what the folder looks for: the slot rows not folded yet (a handful, whatever the size of the register)
        conn.exec_driver_sql(f"CREATE INDEX ix_{p}_ongevouwen ON {p} (blok) WHERE slot >= 0")
        conn.exec_driver_sql(f"LOCK TABLE {tabel} IN SHARE MODE")     # nothing changes until the triggers exist
    conn.exec_driver_sql(f"INSERT INTO {p} (blok, slot, aantal) SELECT id / {PAGINA_BLOK}, {GEVOUWEN}, "
                         f"count(*) FROM {tabel} GROUP BY id / {PAGINA_BLOK}")
    if conn.dialect.name == "postgresql":
        for sql in (s.strip() for s in pg_sql(tabel, vouw_slot).split("\n\n")):
            if sql:
                conn.exec_driver_sql(sql)
    else:
        for sql in sqlite_sql(tabel).split("END;"):
            if sql.strip():
                conn.exec_driver_sql(sql + "END;")


def verwijderen(tabel: str) -> None:
    """Drop the triggers, functions and table that `maken(tabel, ...)` made."""
    p = f"{tabel}_pagina"
    conn = op.get_bind()
    for trigger in (f"{p}_insert", f"{p}_delete", f"{p}_truncate"):
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"DROP TRIGGER {trigger} ON {tabel}")
        elif trigger != f"{p}_truncate":
            conn.exec_driver_sql(f"DROP TRIGGER {trigger}")
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"DROP FUNCTION {p}_bij()")
        conn.exec_driver_sql(f"DROP FUNCTION {p}_leeg()")
    op.drop_table(p)
