"""notificatie: the W3C traceparent of the write that queued a message

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10

Why: with OpenTelemetry tracing on (README "Tracing"), the relay's delivery of a notification continues the
trace of the request that wrote it, so an operator sees a write and its delivery, minutes later and in another
process, in one trace. NULL when tracing is off (and for every message queued before this migration).
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notificatie", sa.Column("traceparent", sa.String(55), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notificatie") as batch:
        batch.drop_column("traceparent")
