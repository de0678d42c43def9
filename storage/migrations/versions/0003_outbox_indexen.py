"""notificatie: partial indexes on the messages still to send

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

Why: the outbox keeps sent messages. The relay's claim (oldest pending message per klant, in id order) used
the index on (status, volgende_poging, id) and then sorted, or walked the primary key past every sent
message: its cost grew with the history of the outbox. Partial indexes on the pending (and the failed)
messages only hold what the relay and the operator commands look for.
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _waar(status: str) -> dict:
    return {"postgresql_where": sa.text(f"status = '{status}'"), "sqlite_where": sa.text(f"status = '{status}'")}


def upgrade() -> None:
    op.create_index("ix_notificatie_wachtend", "notificatie", ["id"], **_waar("pending"))
    op.create_index("ix_notificatie_wachtend_per_klant", "notificatie", ["klant_uuid", "id"], **_waar("pending"))
    op.create_index("ix_notificatie_mislukt", "notificatie", ["id"], **_waar("failed"))
    op.drop_index("ix_notificatie_status", table_name="notificatie")


def downgrade() -> None:
    op.create_index("ix_notificatie_status", "notificatie", ["status", "volgende_poging", "id"])
    op.drop_index("ix_notificatie_mislukt", table_name="notificatie")
    op.drop_index("ix_notificatie_wachtend_per_klant", table_name="notificatie")
    op.drop_index("ix_notificatie_wachtend", table_name="notificatie")
