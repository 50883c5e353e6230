"""A reference per digest written into its CRM record, the time a create was sent, and a settle time.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        batch.add_column(sa.Column("ref", sa.String(16), nullable=False, server_default=""))
        batch.add_column(sa.Column("create_sent_ms", sa.BigInteger()))
        batch.add_column(sa.Column("settle_until_ms", sa.BigInteger()))


def downgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        batch.drop_column("settle_until_ms")
        batch.drop_column("create_sent_ms")
        batch.drop_column("ref")
