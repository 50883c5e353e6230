"""Request-field helpers several adapters share: CRM record ids and CRM timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.errors import FieldViolation, InvalidRequest


def digits_id(field: str, value: str, crm: str) -> str:
    """Reads a CRM id that must be digits, refusing the request (naming the field) otherwise.

    Kept as text: some CRMs' ids (Zoho's 19 digits) do not survive a JSON number."""
    # isascii: str.isdigit() also accepts digits like "²" that int() or the CRM would refuse.
    if not (value.isascii() and value.isdigit()):
        raise InvalidRequest([FieldViolation(field, f"must be a {crm} id (digits only)")])
    return value


def numeric_id(field: str, value: str, crm: str) -> int:
    """digits_id for CRMs whose API wants the id as a JSON number."""
    return int(digits_id(field, value, crm))


def utc_iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, the one form every CRM here parses."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# How far before a lost create was sent a search for the record it made still looks: the CRM
# stamps the record by its own clock, which may be behind ours.
CLOCK_SKEW = timedelta(minutes=5)


def created_after(sent: datetime) -> datetime:
    """The earliest creation time a search for the record of a create sent at `sent` asks for."""
    return sent - CLOCK_SKEW
