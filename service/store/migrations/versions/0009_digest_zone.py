"""The time zone a digest is rendered in: the zone of its first message's call, for every write.

Revision ID: 0009
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for digests made before: they are rendered in the zone of each write's call, as before.
    with op.batch_alter_table("digests") as batch:
        batch.add_column(sa.Column("zone", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        batch.drop_column("zone")
