"""Tables of the store. Changing them needs a new migration in migrations/versions/."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# One row per CRM record this service writes: an SMS conversation-day, a voicemail or a fax.
digests = sa.Table(
    "digests",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    # sha256 of (crm, account host, CRM user id, contact id): who the record is for.
    sa.Column("scope", sa.String(64), nullable=False),
    # "sms:<conversation id>", "voicemail:<message id>" or "fax:<message id>".
    sa.Column("thread_key", sa.String(300), nullable=False),
    # The day in the user's time zone, YYYY-MM-DD.
    sa.Column("local_date", sa.String(10), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("crm", sa.String(32), nullable=False),
    sa.Column("account_host", sa.String(253), nullable=False),
    sa.Column("crm_user_id", sa.String(255), nullable=False),
    sa.Column("contact_id", sa.String(255), nullable=False),
    # The CRM's id of the record; NULL until the create succeeded.
    sa.Column("crm_log_id", sa.String(255)),
    # Written into the CRM record, so a record whose create got no clear answer can be found.
    sa.Column("ref", sa.String(16), nullable=False, server_default=""),
    # Set when a create is sent and cleared when its result is recorded: a create that was sent
    # and never recorded (a timeout, a crash) may have made a record the next writer must look for.
    sa.Column("create_sent_ms", sa.BigInteger()),
    # A write that got no reply may still be applied until then (epoch ms): nobody writes before it,
    # or the late write could overwrite a newer one.
    sa.Column("settle_until_ms", sa.BigInteger()),
    # Fingerprint of the text we last wrote to the record (service.render.fingerprint): a record
    # that reads differently was edited by a person.
    sa.Column("written_fingerprint", sa.String(64)),
    # Fingerprints of writes sent since the last confirmed one (space-separated, newest last): a
    # write whose answer was lost may have landed, and its text is ours, not a person's edit.
    sa.Column("sent_fingerprints", sa.Text()),
    # A person's edit of the record, kept verbatim; later messages are written after it.
    sa.Column("kept_body", sa.Text()),
    # The record's version (an etag) as our last write left it, for CRMs that write conditionally:
    # the next write expects it, and the CRM refuses it when someone changed the record since.
    sa.Column("crm_version", sa.Text()),
    # The lease serializes writes to one record across processes; expiry is epoch milliseconds.
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires_ms", sa.BigInteger()),
    sa.Column("created_ms", sa.BigInteger(), nullable=False),
    # The digest's last write (epoch ms): retention keeps a digest this long after it.
    sa.Column("updated_ms", sa.BigInteger(), nullable=False),
    sa.UniqueConstraint("scope", "thread_key", "local_date", name="uq_digests_thread_day"),
    sa.Index("ix_digests_crm_log_id", "scope", "crm_log_id"),
    sa.Index("ix_digests_updated_ms", "updated_ms"),
)

# One row per message handed to the service; a message id is logged once per scope.
messages = sa.Table(
    "messages",
    metadata,
    sa.Column("scope", sa.String(64), primary_key=True),
    sa.Column("message_id", sa.String(255), primary_key=True),
    sa.Column(
        "digest_id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.ForeignKey("digests.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # The message's creation time, epoch milliseconds: the record's order.
    sa.Column("created_ms", sa.BigInteger(), nullable=False),
    # "pending" until a CRM write holding it succeeded, then "logged".
    sa.Column("state", sa.String(8), nullable=False),
    # "create" or "append": how the CRM write that logged it went.
    sa.Column("logged_via", sa.String(8)),
    # The call that handed the message over, so a failed call withdraws only its own message.
    sa.Column("owner", sa.String(64), nullable=False),
    # The entry as the record shows it (JSON of service.model.Entry).
    sa.Column("entry", sa.Text(), nullable=False),
    sa.Column("recorded_ms", sa.BigInteger(), nullable=False),
    # Its entry is inside the digest's kept_body (it was logged before a person edited the record).
    sa.Column("in_kept", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Index("ix_messages_digest", "digest_id", "created_ms"),
)
