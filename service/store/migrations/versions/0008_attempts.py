"""Failed attempts per message, so GetMessageLog and ListMessageLogs can say why a message is not
in the CRM; and the indexes those two read by (an account's days, a message id alone).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per message some call handed over and failed to log, under the verified account
    # (account_host holds LogRequest.account, as digests do). A message withdrawn after a failure
    # has no row in messages, so this row keeps what finds it (account, user, contact, thread, day).
    # failures counts the failed calls; last_* describe the latest: gRPC status name, ErrorInfo
    # reason, the CRM reply's HTTP status (0: none) and when (epoch ms).
    op.create_table(
        "attempts",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("message_id", sa.String(255), primary_key=True),
        sa.Column("crm", sa.String(32), nullable=False),
        sa.Column("account_host", sa.String(253), nullable=False),
        sa.Column("crm_user_id", sa.String(255), nullable=False),
        sa.Column("contact_id", sa.String(255), nullable=False),
        sa.Column("thread_key", sa.String(300), nullable=False),
        sa.Column("local_date", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.String(32), nullable=False),
        sa.Column("last_reason", sa.String(64), nullable=False),
        sa.Column("last_crm_http_status", sa.Integer(), nullable=False),
        sa.Column("last_failure_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_attempts_account_day", "attempts", ["crm", "account_host", "local_date"])
    op.create_index("ix_digests_account_day", "digests", ["crm", "account_host", "local_date"])
    op.create_index("ix_messages_message_id", "messages", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_messages_message_id", "messages")
    op.drop_index("ix_digests_account_day", "digests")
    op.drop_table("attempts")
