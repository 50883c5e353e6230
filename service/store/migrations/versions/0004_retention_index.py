"""An index on the digests' local day, for the retention purge.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_digests_local_date", "digests", ["local_date"])


def downgrade() -> None:
    op.drop_index("ix_digests_local_date", "digests")
