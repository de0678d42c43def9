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

The statements come from storage/migrations/pagina.py (shared with migration 0007, frozen there; what it generates
for klant is exactly what this file held before it moved there).
"""
from storage.migrations import pagina

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

VOUW_SLOT = 7_140_614       # the advisory lock key of the folder (any constant of ours)


def upgrade() -> None:
    pagina.maken("klant", VOUW_SLOT)


def downgrade() -> None:
    pagina.verwijderen("klant")
