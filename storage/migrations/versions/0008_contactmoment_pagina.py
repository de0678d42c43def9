"""contactmoment_pagina: where each page of the unfiltered contactmoment list starts, and how many there are, kept
exact by triggers (issue #14, point 2)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-13

Why: `GET /contactmomenten?page=N` used OFFSET (N-1)*100 over contactmoment joined to its vorig and volgend, and
every page counted the whole table. contactmoment_pagina counts the contactmomenten per blok of PAGINA_BLOK
consecutive ids, as klant_pagina does for klanten (migration 0006, the same triggers from
storage/migrations/pagina.py): a page costs a running sum over the bloks before it, a skip of fewer than
PAGINA_BLOK entries of contactmoment's primary key index and the 100 rows fetched by id; the count is the sum over
all bloks (storage.contactmomenten.ContactmomentenRepository.zoeken).
"""
from storage.migrations import pagina

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

VOUW_SLOT = 7_140_615       # the advisory lock key of contactmoment_pagina's folder (klant_pagina's + 1)


def upgrade() -> None:
    pagina.maken("contactmoment", VOUW_SLOT)


def downgrade() -> None:
    pagina.verwijderen("contactmoment")
