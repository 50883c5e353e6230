"""An index on the digests' local day, for the retention purge.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_digests_local_date", "digests", ["local_date"])


def downgrade() -> None:
    op.drop_index("ix_digests_local_date", "digests")
