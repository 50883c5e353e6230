"""A fake Zoho CRM (API v8): notes under Contacts and Leads, with Zoho's auth, replies and API credits.

Record writes answer {"data": [{"code", "details", "message", "status"}]}: 201 on create, 200 on
update, 400 with the same shape for invalid data. Request-level errors are a bare
{"code", "details", "message", "status": "error"}. Every call spends one API credit; when the
credits run out Zoho answers 429 TOO_MANY_REQUESTS.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse

_NOTE_FIELDS = {"Note_Title", "Note_Content", "Parent_Id", "se_module"}


def _failure(status: int, code: str, message: str) -> FakeResponse:
    return FakeResponse(status, {"code": code, "details": {}, "message": message, "status": "error"})


def _record_reply(status: int, code: str, message: str, details: dict[str, Any]) -> FakeResponse:
    outcome = "success" if code == "SUCCESS" else "error"
    return FakeResponse(
        status, {"data": [{"code": code, "details": details, "message": message, "status": outcome}]}
    )


class FakeZoho(FakeCrm):
    name = "zoho"
    identity_route = r"/crm/v8/org"

    def __init__(self, *, token: str = "zoho-token", credits: int = 5000) -> None:
        super().__init__()
        # The account the fake's credential belongs to.
        self.org_id = "20071234"
        self.token = token
        self.credits = credits
        self.notes: dict[str, dict[str, Any]] = {}
        self._next_id = 5_725_767_000_000_400_000
        self.route("POST", r"/crm/v8/(Contacts|Leads)/(\d+)/Notes", self._create)
        self.route("PUT", r"/crm/v8/Notes/(\d+)", self._update)
        self.route("GET", r"/crm/v8/org", self._org)

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.headers.get("authorization") != f"Zoho-oauthtoken {self.token}":
            return _failure(401, "INVALID_TOKEN", "invalid oauth token")
        if self.credits <= 0:
            return _failure(429, "TOO_MANY_REQUESTS", "You have exceeded the API credits limit")
        self.credits -= 1
        return None

    def not_found(self, request: FakeRequest) -> FakeResponse:
        return _failure(
            404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"
        )

    @staticmethod
    def _note(body: Any) -> dict[str, Any] | FakeResponse:
        records = body.get("data") if isinstance(body, dict) and set(body) == {"data"} else None
        if not isinstance(records, list) or len(records) != 1 or not isinstance(records[0], dict):
            return _failure(400, "INVALID_DATA", "body must be {data: [one note]}")
        note: dict[str, Any] = records[0]
        unknown = sorted(set(note) - _NOTE_FIELDS)
        if unknown:
            return _record_reply(400, "INVALID_DATA", "invalid data", {"api_name": unknown[0]})
        for name in ("Note_Title", "Note_Content"):
            if name in note and not isinstance(note[name], str):
                return _record_reply(400, "INVALID_DATA", "invalid data", {"api_name": name})
        return note

    def _create(self, request: FakeRequest, module: str, parent_id: str) -> FakeResponse:
        note = self._note(request.body)
        if isinstance(note, FakeResponse):
            return note
        if not note.get("Note_Content"):
            return _record_reply(
                400, "MANDATORY_NOT_FOUND", "required field not found", {"api_name": "Note_Content"}
            )
        self._next_id += 1
        note_id = str(self._next_id)
        self.notes[note_id] = {**note, "Parent_Id": {"module": {"api_name": module}, "id": parent_id}}
        return _record_reply(201, "SUCCESS", "record added", _details(note_id))

    def _update(self, request: FakeRequest, note_id: str) -> FakeResponse:
        if note_id not in self.notes:
            return _record_reply(
                404, "INVALID_DATA", "the related id given seems to be invalid", {"id": note_id}
            )
        note = self._note(request.body)
        if isinstance(note, FakeResponse):
            return note
        self.notes[note_id].update(note)
        return _record_reply(200, "SUCCESS", "record updated", _details(note_id))

    def _org(self, request: FakeRequest) -> FakeResponse:
        # GET /crm/v8/org: the organization of the token.
        return FakeResponse(200, {"org": [{"id": self.org_id, "company_name": "Acme", "zgid": "7000"}]})

    record_store = "notes"
    body_path = ("Note_Content",)
    write_path = r"^/crm/v8/(Contacts/\d+/|Leads/\d+/)?Notes"


def _details(note_id: str) -> dict[str, Any]:
    now = datetime.now().astimezone().isoformat(timespec="seconds")
    user = {"name": "Alice Agent", "id": "5725767000000411001"}
    return {"Modified_Time": now, "Modified_By": user, "Created_Time": now, "id": note_id, "Created_By": user}
