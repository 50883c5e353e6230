"""Digests and messages.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "digests",
        sa.Column("id", _id_type, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("thread_key", sa.String(300), nullable=False),
        sa.Column("local_date", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("crm", sa.String(32), nullable=False),
        sa.Column("account_host", sa.String(253), nullable=False),
        sa.Column("crm_user_id", sa.String(255), nullable=False),
        sa.Column("contact_id", sa.String(255), nullable=False),
        sa.Column("crm_log_id", sa.String(255)),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_expires_ms", sa.BigInteger()),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("scope", "thread_key", "local_date", name="uq_digests_thread_day"),
    )
    op.create_index("ix_digests_crm_log_id", "digests", ["scope", "crm_log_id"])
    op.create_table(
        "messages",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("message_id", sa.String(255), primary_key=True),
        sa.Column("digest_id", _id_type, sa.ForeignKey("digests.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("logged_via", sa.String(8)),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.Column("recorded_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_messages_digest", "messages", ["digest_id", "created_ms"])


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("digests")
