"""What we last wrote to each record, and a person's edit of it when one was found.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("digests") as batch:
        batch.add_column(sa.Column("written_fingerprint", sa.String(64)))
        batch.add_column(sa.Column("sent_fingerprints", sa.Text()))
        batch.add_column(sa.Column("kept_body", sa.Text()))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("in_kept", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("in_kept")
    with op.batch_alter_table("digests") as batch:
        batch.drop_column("kept_body")
        batch.drop_column("sent_fingerprints")
        batch.drop_column("written_fingerprint")
