"""A fake Bullhorn REST API: Notes under one corporation's REST URL, with its session token and errors.

Shapes follow bullhorn.github.io/rest-api-docs: the session token comes as the BhRestToken header
(or query parameter); PUT entity/Note creates and POST entity/Note/{id} updates, both answering
{"changedEntityId", "changeType"}; errors are {"errorMessage", "errorMessageKey", "errorCode"}
(entity errors add "errors": [{"propertyName", "severity", "type"}]). A 429 carries no Retry-After,
as the docs only say to wait one second.
"""

from __future__ import annotations

import time
from typing import Any

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse

CORP_TOKEN = "abc123"
_NOTE_FIELDS = {
    "action",
    "comments",
    "commentingPerson",
    "dateAdded",
    "externalID",
    "isDeleted",
    "jobOrder",
    "minutesSpent",
    "personReference",
}


def _error(status: int, key: str, message: str, **extra: Any) -> FakeResponse:
    return FakeResponse(
        status, {"errorMessage": message, "errorMessageKey": key, "errorCode": status, **extra}
    )


def _invalid(property_name: str, kind: str) -> FakeResponse:
    return _error(
        400,
        "errors.cannotPersistEntity",
        "error persisting an entity of type: Note",
        errors=[{"propertyName": property_name, "severity": "ERROR", "type": kind}],
        entityName="Note",
    )


class FakeBullhorn(FakeCrm):
    name = "bullhorn"
    identity_route = r"/rest-services/[^/]+/settings/corporationId"

    def __init__(
        self, *, token: str = "bh-rest-token", action_required: bool = False, per_second_limit: int = 50
    ) -> None:
        super().__init__()
        # The account the fake's credential belongs to.
        self.corporation_id = 22
        self.token = token
        self.action_required = action_required
        self.actions = {"SMS", "Voicemail", "Fax"}
        self.notes: dict[int, dict[str, Any]] = {}
        self.per_second_limit = per_second_limit
        self._window_start = time.monotonic()
        self._window_count = 0
        self._next_id = 1488
        prefix = f"/rest-services/{CORP_TOKEN}/entity/Note"
        self.route("PUT", prefix, self._create)
        self.route("POST", prefix + r"/(\d+)", self._update)
        self.route("GET", f"/rest-services/{CORP_TOKEN}/settings/corporationId", self._corporation)

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        token = request.headers.get("bhresttoken") or request.query.get("BhRestToken")
        if token != self.token:
            return _error(401, "errors.authentication.invalidRestToken", "Bad 'BhRestToken' or timed-out.")
        now = time.monotonic()
        if now - self._window_start >= 1:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        if self._window_count > self.per_second_limit:
            return _error(429, "errors.rateLimited", "Too many requests. Wait 1 second then retry.")
        return None

    def not_found(self, request: FakeRequest) -> FakeResponse:
        return _error(404, "errors.notFound", f"No such resource: {request.path}")

    def _check(self, body: Any, *, creating: bool) -> FakeResponse | None:
        if not isinstance(body, dict):
            return _error(400, "errors.badRequest", "The request body is not a JSON object")
        unknown = sorted(set(body) - _NOTE_FIELDS)
        if unknown:
            return _invalid(unknown[0], "UNKNOWN_PROPERTY")
        if creating and not isinstance(body.get("comments"), str):
            return _invalid("comments", "MISSING_VALUE")
        person = body.get("personReference")
        if creating and not (isinstance(person, dict) and isinstance(person.get("id"), int)):
            return _invalid("personReference", "MISSING_VALUE")
        if "action" in body and body["action"] not in self.actions:
            return _invalid("action", "INVALID_VALUE")
        if creating and self.action_required and "action" not in body:
            return _invalid("action", "MISSING_VALUE")
        return None

    def _create(self, request: FakeRequest) -> FakeResponse:
        refusal = self._check(request.body, creating=True)
        if refusal:
            return refusal
        self._next_id += 1
        self.notes[self._next_id] = dict(request.body)
        return FakeResponse(200, {"changedEntityId": self._next_id, "changeType": "INSERT"})

    def _update(self, request: FakeRequest, note_id: str) -> FakeResponse:
        note = self.notes.get(int(note_id))
        if note is None:
            return _error(404, "errors.cannotFindEntity", f"Cannot find Note with id {note_id}")
        refusal = self._check(request.body, creating=False)
        if refusal:
            return refusal
        note.update(request.body)
        return FakeResponse(200, {"changedEntityId": int(note_id), "changeType": "UPDATE"})

    record_store = "notes"
    body_path = ("comments",)
    write_path = r"/entity/Note"

    def _corporation(self, request: FakeRequest) -> FakeResponse:
        # GET settings/corporationId: the corporation of the session.
        return FakeResponse(200, {"corporationId": self.corporation_id})
