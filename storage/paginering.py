"""Where a page of an unfiltered list starts, from its `<tabel>_pagina` table (issue #14, point 2).

`<tabel>_pagina` (storage/migrations/pagina.py; migrations 0006 klant, 0008 contactmoment) holds, per blok of
PAGINA_BLOK consecutive ids (blok = id / PAGINA_BLOK), the number of rows of that blok, spread over a few rows (one per
slot) that sum to it. So the position of a row in id order is a running sum over the bloks before it plus a skip
inside its own blok, and the number of rows is the sum over all of them: a page anywhere costs what page 1 costs.
"""
from __future__ import annotations

import sqlalchemy as sa

from .tables import PAGINA_BLOK


def aantal(pagina: sa.Table) -> sa.Select:
    """The exact number of rows of the table that `pagina` counts (a sum over a row or so per blok)."""
    return sa.select(sa.func.coalesce(sa.func.sum(pagina.c.aantal), 0))


def ongefilterde_ids(tabel: sa.Table, pagina: sa.Table) -> sa.Select:
    """The ids of the page at position :offset (from 0, in id order), at most :limit of them.

    First the blok that holds position :offset and how many rows of that blok come before it (a running sum over
    `pagina`, which stops at the first blok that reaches the position); then, from the blok's first id, a skip of
    those rows (fewer than PAGINA_BLOK entries of the primary key index, index only) and :limit ids."""
    n = sa.cast(sa.func.sum(pagina.c.aantal), sa.Integer)
    per_blok = sa.select(pagina.c.blok, n.label("n"),
                         sa.func.sum(n).over(order_by=pagina.c.blok, rows=(None, 0)).label("tot")
                         ).group_by(pagina.c.blok).subquery("per_blok")
    offset = sa.bindparam("offset", type_=sa.Integer)
    doel = (sa.select(per_blok.c.blok, (offset - (per_blok.c.tot - per_blok.c.n)).label("binnen"))
            .where(per_blok.c.tot > offset).order_by(per_blok.c.blok).limit(1).cte("doel"))
    ids = tabel.alias("pagina_ids")
    return (sa.select(ids.c.id).where(ids.c.id >= sa.select(doel.c.blok * PAGINA_BLOK).scalar_subquery())
            .order_by(ids.c.id).offset(sa.select(doel.c.binnen).scalar_subquery())
            .limit(sa.bindparam("limit", type_=sa.Integer)))
