"""Retention by activity: the purge finds digests by their last write, not by their local day.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_digests_updated_ms", "digests", ["updated_ms"])
    # Only the purge read digests by their day; the (scope, thread_key, local_date) key stays.
    op.drop_index("ix_digests_local_date", "digests")


def downgrade() -> None:
    op.create_index("ix_digests_local_date", "digests", ["local_date"])
    op.drop_index("ix_digests_updated_ms", "digests")
