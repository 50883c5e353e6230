"""The version (etag) of each record as our last write left it, for CRMs that write conditionally.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        batch.add_column(sa.Column("crm_version", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        batch.drop_column("crm_version")
