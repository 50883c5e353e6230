"""A digest's time zone, and the parts a long conversation-day is split into.

zone: the zone of the digest's first call, in which every write renders it. part, is_full and
continues_log_id: a record holds at most so much (service.store.RecordCap); past it the day
continues in the next part, a digest of its own that names the CRM record it continues.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # zone is NULL for digests made before: they are rendered in each write's zone, as before.
    with op.batch_alter_table("digests") as batch:
        batch.add_column(sa.Column("zone", sa.String(64)))
        batch.add_column(sa.Column("part", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("is_full", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("continues_log_id", sa.String(255)))


def downgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        batch.drop_column("continues_log_id")
        batch.drop_column("is_full")
        batch.drop_column("part")
        batch.drop_column("zone")
