"""A fake Clio Manage v4: communications and users/who_am_i, with its auth, errors and rate limits.

Shapes follow Clio's published OpenAPI spec (v4, `clio_client/specs/openapi.json` in
traviscrawford85/clio_cli; docs.developers.clio.com/api-reference): bodies are {"data": ...};
a User has a nested `account` (Account_base {id, name, ...}); GET /communications.json lists
{"data": [...]} filtered by contact_id and created_since, with limit 1..200; a create answers 201;
replies hold only id and etag unless ?fields= names more; every write gives the record a new etag,
and a PATCH with an IF-MATCH header that is not the record's etag answers 412; errors are
{"error": {"type": ..., "message": ...}}; every reply carries X-RateLimit-Limit, -Remaining and
-Reset (a unix time) for a 60-second window per token, and a 429 carries Retry-After.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse, Refusal

_FIELDS = {
    "type",
    "subject",
    "body",
    "date",
    "received_at",
    "matter",
    "senders",
    "receivers",
    "external_properties",
    "notification_event_subscribers",
}
# Communication create schema: required body, subject, type (spec, POST /communications.json).
_REQUIRED_ON_CREATE = {"type", "subject", "body"}
_ISO_TIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})"
# GET /communications.json `order` values (spec; the fake sorts by id only).
_LIST_ORDERS = {"id(asc)", "id(desc)"}
_WINDOW_SECONDS = 60
_SPEC = (
    "Clio OpenAPI v4 (traviscrawford85/clio_cli clio_client/specs/openapi.json), POST /communications.json"
)


def _error(status: int, kind: str, message: str) -> FakeResponse:
    return FakeResponse(status, {"error": {"type": kind, "message": message}})


class FakeClio(FakeCrm):
    name = "clio"
    identity_route = r"/api/v4/users/who_am_i\.json"
    documented_refusals = (
        # Communication `type` is an enum of PhoneCommunication and EmailCommunication (no SMS type).
        Refusal(
            "POST",
            "/api/v4/communications.json",
            {"data": {"type": "SmsCommunication", "subject": "s", "body": "b"}},
            422,
            ("error", "message"),
            source=f"{_SPEC}: data.type enum",
        ),
        # body, subject and type are required.
        Refusal(
            "POST",
            "/api/v4/communications.json",
            {"data": {"type": "PhoneCommunication", "subject": "s"}},
            422,
            ("error", "message"),
            source=f"{_SPEC}: required [body, subject, type]",
        ),
        # A field the Communication schema does not have.
        Refusal(
            "POST",
            "/api/v4/communications.json",
            {"data": {"type": "PhoneCommunication", "subject": "s", "body": "b", "channel": "sms"}},
            422,
            ("error", "message"),
            source=f"{_SPEC}: data properties",
        ),
    )

    def __init__(self, *, token: str = "clio-token", limit_per_minute: int = 50) -> None:
        super().__init__()
        self.token = token
        self.user = {"id": 1001, "name": "Alice Agent", "email": "alice@example.com", "account": {"id": 5501}}
        self.contact_ids = {42}
        self.matter_ids = {9001}
        self.communications: dict[int, dict[str, Any]] = {}
        self.limit_per_minute = limit_per_minute
        self._window_start = time.time()
        self._window_count = 0
        self._next_id = 7000
        self.route("GET", r"/api/v4/users/who_am_i\.json", self._who_am_i)
        self.route("POST", r"/api/v4/communications\.json", self._create)
        self.route("GET", r"/api/v4/communications\.json", self._list)
        self.route("GET", r"/api/v4/communications/(\d+)\.json", self._get)
        self.route("PATCH", r"/api/v4/communications/(\d+)\.json", self._patch)
        self.route("DELETE", r"/api/v4/communications/(\d+)\.json", self._delete)

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "AuthenticationError", "The access token is invalid or expired")
        now = time.time()
        if now - self._window_start >= _WINDOW_SECONDS:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        if self._window_count > self.limit_per_minute:
            response = _error(429, "RateLimited", "Rate limit exceeded")
            wait = round(_WINDOW_SECONDS - (now - self._window_start)) or 1
            response.headers = {**self.rate_limit_headers(), "Retry-After": str(wait)}
            return response
        return None

    def rate_limit_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit_per_minute),
            "X-RateLimit-Remaining": str(max(0, self.limit_per_minute - self._window_count)),
            "X-RateLimit-Reset": str(int(self._window_start + _WINDOW_SECONDS)),
        }

    def not_found(self, request: FakeRequest) -> FakeResponse:
        return _error(404, "RecordNotFound", "The requested resource was not found")

    def _shown(self, record: dict[str, Any], request: FakeRequest) -> dict[str, Any]:
        # Nested fields are asked for as name{subfields}; the fake answers the whole nested value.
        asked = request.query.get("fields", "").split(",")
        wanted = {"id", "etag", *(f.split("{", 1)[0] for f in asked if f)}
        return {k: v for k, v in record.items() if k in wanted}

    def _who_am_i(self, request: FakeRequest) -> FakeResponse:
        return FakeResponse(200, {"data": self._shown({**self.user, "etag": '"u1"'}, request)})

    def _check(self, body: Any, *, creating: bool) -> str | None:
        data = body.get("data") if isinstance(body, dict) and set(body) == {"data"} else None
        if not isinstance(data, dict):
            return 'the body must be {"data": {...}}'
        if unknown := set(data) - _FIELDS:
            return f"unknown fields: {sorted(unknown)}"
        if creating and (missing := _REQUIRED_ON_CREATE - set(data)):
            return f"missing fields: {sorted(missing)}"
        if "type" in data and data["type"] not in ("PhoneCommunication", "EmailCommunication"):
            return "type must be PhoneCommunication or EmailCommunication"
        if "date" in data and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(data["date"])):
            return "date must be an ISO date"
        if "received_at" in data and not re.fullmatch(_ISO_TIME, str(data["received_at"])):
            return "received_at must be an ISO date-time"
        if "matter" in data and data["matter"] != {"id": _known(data["matter"], self.matter_ids)}:
            return "matter must be {id} of an existing matter"
        for side in ("senders", "receivers"):
            parties = data.get(side, [])
            if not isinstance(parties, list) or not all(self._is_party(p) for p in parties):
                return f"{side} must be [{{id, type}}] of existing users or contacts"
        return None

    def _is_party(self, party: Any) -> bool:
        if not isinstance(party, dict) or set(party) != {"id", "type"}:
            return False
        ids = {"User": {self.user["id"]}, "Contact": self.contact_ids}.get(party["type"], set())
        return _known(party, ids) is not None

    def _create(self, request: FakeRequest) -> FakeResponse:
        if problem := self._check(request.body, creating=True):
            return _error(422, "InvalidFields", problem)
        self._next_id += 1
        record = {
            "id": self._next_id,
            **request.body["data"],
            "etag": _etag(self._next_id, 1),
            "created_at": datetime.now(UTC).isoformat(),
        }
        self.communications[self._next_id] = record
        return FakeResponse(201, {"data": self._shown(record, request)})

    def _list(self, request: FakeRequest) -> FakeResponse:
        query = request.query
        limit = query.get("limit", "200")
        if not limit.isdigit() or not 1 <= int(limit) <= 200:
            # spec: "Limit can range between 1 and 200".
            return _error(400, "InvalidParameters", "limit must be between 1 and 200")
        if query.get("order", "id(asc)") not in _LIST_ORDERS:
            return _error(400, "InvalidParameters", "order must be id(asc) or id(desc) in this fake")
        since = query.get("created_since")
        if since is not None and not re.fullmatch(_ISO_TIME, since):
            return _error(400, "InvalidParameters", "created_since must be an ISO-8601 timestamp")
        contact = query.get("contact_id")
        if contact is not None and not contact.isdigit():
            return _error(400, "InvalidParameters", "contact_id must be an integer")
        found = [
            record
            for record in self.communications.values()
            if (contact is None or _names_contact(record, int(contact)))
            and (since is None or _after(record["created_at"], since))
        ]
        found.sort(key=lambda record: record["id"], reverse=query.get("order") == "id(desc)")
        return FakeResponse(200, {"data": [self._shown(r, request) for r in found[: int(limit)]]})

    def _get(self, request: FakeRequest, record_id: str) -> FakeResponse:
        record = self.communications.get(int(record_id))
        if record is None:
            return self.not_found(request)
        return FakeResponse(200, {"data": self._shown(record, request)})

    def _patch(self, request: FakeRequest, record_id: str) -> FakeResponse:
        record = self.communications.get(int(record_id))
        if record is None:
            return self.not_found(request)
        if problem := self._check(request.body, creating=False):
            return _error(422, "InvalidFields", problem)
        if request.headers.get("if-match", record["etag"]) != record["etag"]:
            return _error(412, "PreconditionFailed", "The resource has changed since the given etag")
        record.update(request.body["data"])
        _changed(record)
        return FakeResponse(200, {"data": self._shown(record, request)})

    def _delete(self, request: FakeRequest, record_id: str) -> FakeResponse:
        if self.communications.pop(int(record_id), None) is None:
            return self.not_found(request)
        return FakeResponse(204)

    def edit_record(self, log_id: str, text: str) -> None:
        """What a person editing the communication's body in Clio does: it gets a new etag too."""
        super().edit_record(log_id, text)
        _changed(self.communications[int(log_id)])

    # What the contract suite reads back.
    record_store = "communications"
    body_path = ("body",)
    write_path = r"^/api/v4/communications"


def _etag(record_id: int, version: int) -> str:
    return f'"{record_id}-{version}"'


def _changed(record: dict[str, Any]) -> None:
    """Gives a record that was just written a new etag, as Clio does on every change."""
    record["etag"] = _etag(record["id"], int(record["etag"].strip('"').split("-")[1]) + 1)


def _known(reference: Any, ids: set[int]) -> int | None:
    """The id of a {id: ...} reference when it names one of ids (an integer, as Clio requires)."""
    value = reference.get("id") if isinstance(reference, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value not in ids:
        return None
    return value


def _names_contact(record: dict[str, Any], contact_id: int) -> bool:
    parties = [*record.get("senders", []), *record.get("receivers", [])]
    return {"id": contact_id, "type": "Contact"} in parties


def _after(created_at: str, since: str) -> bool:
    return datetime.fromisoformat(created_at) > datetime.fromisoformat(since)
