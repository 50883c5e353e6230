"""Request-field helpers several adapters share: CRM record ids and CRM timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

from service.errors import FieldViolation, InvalidRequest


def numeric_id(field: str, value: str, crm: str) -> int:
    """Reads a CRM id that must be digits, refusing the request (naming the field) otherwise."""
    # isascii: str.isdigit() also accepts digits like "²" that int() or the CRM would refuse.
    if not (value.isascii() and value.isdigit()):
        raise InvalidRequest([FieldViolation(field, f"must be a {crm} id (digits only)")])
    return int(value)


def utc_iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, the one form every CRM here parses."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
