"""notificatie: time of the first failure (retry horizon), and failed messages hold back their klant's later ones

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

Why: transient failures (5xx, 408/425/429, time-outs, refused connections) are retried for a horizon measured
from a message's first failure (KLANTEN_NOTIFICATIONS_RETRY_HORIZON), no longer for a number of attempts:
`eerste_fout` holds that moment (NULL until the first failure; `notificaties retry` clears it).

Order per klant: a message is eligible only when no older message of its klant is pending *or failed*, so a
failed message blocks the later ones of its klant until an operator retries or discards it. The claim's
per-klant check therefore looks for pending and failed messages: the partial index on pending ones per klant
(0003) is replaced by one on both, whose predicate is exactly the claim's.
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OPEN = "status IN ('pending', 'failed')"


def upgrade() -> None:
    op.add_column("notificatie", sa.Column("eerste_fout", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_notificatie_open_per_klant", "notificatie", ["klant_uuid", "id"],
                    postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
    op.drop_index("ix_notificatie_wachtend_per_klant", table_name="notificatie")


def downgrade() -> None:
    op.create_index("ix_notificatie_wachtend_per_klant", "notificatie", ["klant_uuid", "id"],
                    postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
    op.drop_index("ix_notificatie_open_per_klant", table_name="notificatie")
    with op.batch_alter_table("notificatie") as batch:
        batch.drop_column("eerste_fout")
