"""A fake Bullhorn REST API: Notes under one corporation's REST URL, with its session token and errors.

Shapes follow bullhorn/rest-api-docs (the source of bullhorn.github.io/rest-api-docs): the session
token comes as the BhRestToken header (or query parameter); PUT entity/Note creates and POST
entity/Note/{id} updates, both answering {"changedEntityId", "changeType"} (_entity.md); errors are
{"errorMessage", "errorMessageKey", "errorCode"} (entity errors add "errors": [{"propertyName",
"severity", "type"}]); the error body's shape is not in the docs (unverified). A 429 carries no
Retry-After, as the docs only say to wait one second (_errors.md).
"""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse, Refusal

CORP_TOKEN = "abc123"
_ROOT = f"/rest-services/{CORP_TOKEN}"
# entityref/_note.md: the Note fields a client may write (the read-only ones, such as
# dateLastModified, entities, people and the to-many lists, are refused).
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
_READ_ONLY = {"dateLastModified", "entities", "jobOrders", "leads", "opportunities", "people", "placements"}
# entityref/_note.md: action is a String (30).
_ACTION_LIMIT = 30
# The one Lucene query the adapter sends (search/Note): a person's notes that are not deleted.
_PERSON_QUERY = re.compile(r"personReference\.id:(\d+) AND isDeleted:(0|false)")


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
    identity_route = rf"{_ROOT}/settings/[^/]*corporationId[^/]*"
    documented_refusals: ClassVar[tuple[Refusal, ...]] = (
        Refusal(
            "PUT",
            f"{_ROOT}/entity/Note",
            {"personReference": {"id": 42}, "comments": "x", "subject": "y"},
            400,
            ("errorMessage",),
            source="an unknown field is refused with 400 (bullhorn/rest-api-docs _entity.md, "
            "the Note's fields in entityref/_note.md)",
        ),
        Refusal(
            "PUT",
            f"{_ROOT}/entity/Note",
            {"personReference": {"id": 42}},
            400,
            ("errorMessage",),
            source="comments is Not null, and a missing mandatory field is refused with 400 "
            "(entityref/_note.md, _entity.md)",
        ),
        Refusal(
            "PUT",
            f"{_ROOT}/entity/Note",
            {"personReference": {"id": 42}, "comments": "x", "action": "A" * 31},
            400,
            ("errorMessage",),
            source="action is a String (30) (entityref/_note.md)",
        ),
    )

    def __init__(
        self, *, token: str = "bh-rest-token", action_required: bool = False, per_second_limit: int = 50
    ) -> None:
        super().__init__()
        # The account the fake's credential belongs to, and the session's user.
        self.corporation_id = 22
        self.user_id = 7
        self.token = token
        self.action_required = action_required
        self.actions = {"SMS", "Voicemail", "Fax"}
        self.notes: dict[int, dict[str, Any]] = {}
        self.added_ms: dict[int, int] = {}
        # NoteEntity associations: the notes shown on a person's Notes tab.
        self.notes_tab: dict[int, list[int]] = {}
        self.per_second_limit = per_second_limit
        self._window_start = time.monotonic()
        self._window_count = 0
        self._next_id = 1488
        self.route("PUT", f"{_ROOT}/entity/Note", self._create)
        self.route("POST", rf"{_ROOT}/entity/Note/(\d+)", self._update)
        self.route("GET", rf"{_ROOT}/entity/Note/(\d+)", self._read)
        self.route("GET", f"{_ROOT}/search/Note", self._search)
        self.route("GET", rf"{_ROOT}/settings/([\w,]+)", self._settings)

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
        read_only = sorted(set(body) & _READ_ONLY)
        if read_only:
            return _invalid(read_only[0], "READ_ONLY")
        unknown = sorted(set(body) - _NOTE_FIELDS)
        if unknown:
            return _invalid(unknown[0], "UNKNOWN_PROPERTY")
        if creating and not isinstance(body.get("comments"), str):
            return _invalid("comments", "MISSING_VALUE")
        person = body.get("personReference")
        if creating and not (isinstance(person, dict) and isinstance(person.get("id"), int)):
            return _invalid("personReference", "MISSING_VALUE")
        author = body.get("commentingPerson", {"id": self.user_id})
        if not (isinstance(author, dict) and author.get("id") == self.user_id):
            # A to-one association must name an existing entity (the fake knows one CorporateUser).
            return _invalid("commentingPerson", "INVALID_VALUE")
        action = body.get("action")
        if action is not None and (len(str(action)) > _ACTION_LIMIT or action not in self.actions):
            return _invalid("action", "INVALID_VALUE")
        if creating and self.action_required and action is None:
            return _invalid("action", "MISSING_VALUE")
        return None

    def _create(self, request: FakeRequest) -> FakeResponse:
        refusal = self._check(request.body, creating=True)
        if refusal:
            return refusal
        self._next_id += 1
        note = dict(request.body)
        self.notes[self._next_id] = note
        self.added_ms[self._next_id] = int(time.time() * 1000)
        if "commentingPerson" in note:
            # entityref/_note.md: with both commentingPerson and personReference, the NoteEntity
            # association is made, so the note shows on the person's Notes.
            self.notes_tab.setdefault(note["personReference"]["id"], []).append(self._next_id)
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

    def _fields(self, request: FakeRequest) -> list[str] | FakeResponse:
        # get.md: fields (or layout) is required; fields=* is blocked.
        names = [n for n in request.query.get("fields", "").split(",") if n]
        if not names or "*" in names:
            return _error(400, "errors.badRequest", "fields or layout is required")
        unknown = [n for n in names if n not in _NOTE_FIELDS | {"id"}]
        if unknown:
            return _error(400, "errors.badRequest", f"Invalid field '{unknown[0]}' on Note")
        return names

    def _view(self, note_id: int, names: list[str]) -> dict[str, Any]:
        note = {**self.notes[note_id], "id": note_id, "dateAdded": self.added_ms[note_id]}
        # get.md: "The id field is always returned, regardless of the fields requested."
        return {"id": note_id, **{n: note.get(n) for n in names}}

    def _read(self, request: FakeRequest, note_id: str) -> FakeResponse:
        names = self._fields(request)
        if isinstance(names, FakeResponse):
            return names
        if int(note_id) not in self.notes:
            return _error(404, "errors.cannotFindEntity", f"Cannot find Note with id {note_id}")
        # As the entity GETs in _savedsearch.md answer: the entity under "data".
        return FakeResponse(200, {"data": self._view(int(note_id), names)})

    def _search(self, request: FakeRequest) -> FakeResponse:
        # _search.md: GET search/Note?query=<Lucene>&fields=&sort=&count=, answered
        # {"total", "start", "count", "data": [...]}.
        names = self._fields(request)
        if isinstance(names, FakeResponse):
            return names
        query = _PERSON_QUERY.fullmatch(request.query.get("query", ""))
        if query is None:
            return _error(400, "errors.badRequest", "the fake answers only the adapter's person query")
        person = int(query[1])
        found = [i for i, n in self.notes.items() if n["personReference"]["id"] == person]
        if request.query.get("sort") == "-dateAdded":
            found.sort(key=lambda i: self.added_ms[i], reverse=True)
        found = found[: int(request.query.get("count", "20"))]
        data = [self._view(i, names) for i in found]
        return FakeResponse(200, {"total": len(data), "start": 0, "count": len(data), "data": data})

    def _settings(self, request: FakeRequest, names: str) -> FakeResponse:
        # _settings.md: GET settings/a,b answers {"a": ..., "b": ...}.
        known: dict[str, Any] = {
            "corporationId": self.corporation_id,
            "userId": self.user_id,
            "commentActionList": sorted(self.actions),
        }
        asked = names.split(",")
        unknown = [n for n in asked if n not in known]
        if unknown:
            return _error(400, "errors.badRequest", f"Unknown setting: {unknown[0]}")
        return FakeResponse(200, {n: known[n] for n in asked})

    record_store = "notes"
    body_path = ("comments",)
    write_path = r"/entity/Note"
