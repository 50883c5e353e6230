"""A fake Zoho CRM (API v8): Notes (create, get, list, update) and the org, with Zoho's auth, replies
and API credits.

Paths and fields follow the official SDK zoho/zohocrm-python-sdk-8.0 (notes/notes_operations.py,
notes/note.py, notes/parent_id.py, notes/info.py, org/). Record writes answer {"data": [{"code",
"details", "message", "status"}]}: 201 on create, 200 on update, 400 with the same shape for invalid
data. Request-level errors are a bare {"code", "details", "message", "status": "error"}. Every call
spends one API credit; when the credits run out Zoho answers 429 TOO_MANY_REQUESTS.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse, Refusal

# What a note takes (notes/note.py, the writable part).
_NOTE_FIELDS = {"Note_Title", "Note_Content", "Parent_Id"}
# The modules a note can belong to that the adapter uses (Parent_Id.module.api_name).
_PARENT_MODULES = {"Contacts", "Leads", "Accounts", "Deals"}
# GetNotesParam.per_page: Zoho pages hold at most 200 records.
_MAX_PER_PAGE = 200
_USER = {"name": "Alice Agent", "id": "5725767000000411001"}


def _failure(status: int, code: str, message: str) -> FakeResponse:
    return FakeResponse(status, {"code": code, "details": {}, "message": message, "status": "error"})


def _record_reply(status: int, code: str, message: str, details: dict[str, Any]) -> FakeResponse:
    outcome = "success" if code == "SUCCESS" else "error"
    return FakeResponse(
        status, {"data": [{"code": code, "details": details, "message": message, "status": outcome}]}
    )


def _mandatory(api_name: str) -> FakeResponse:
    return _record_reply(400, "MANDATORY_NOT_FOUND", "required field not found", {"api_name": api_name})


def _invalid(api_name: str) -> FakeResponse:
    return _record_reply(400, "INVALID_DATA", "invalid data", {"api_name": api_name})


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


class FakeZoho(FakeCrm):
    name = "zoho"
    identity_route = r"/crm/v8/org"
    documented_refusals = (
        Refusal(
            "POST",
            "/crm/v8/Notes",
            {"data": [{"Note_Title": "SMS", "Note_Content": "hello"}]},
            400,
            ("data", 0, "code"),
            source="zoho/zohocrm-python-sdk-8.0 notes/notes_operations.py (create_notes: POST "
            "/crm/v8/Notes, the parent only in Parent_Id) and samples/notes/create_notes.py; Parent_Id "
            "is mandatory in Zoho's Create Notes docs (up to v7)",
        ),
        Refusal(
            "POST",
            "/crm/v8/Notes",
            {"data": [{"Note_Title": "SMS", "Parent_Id": {"id": "1", "module": {"api_name": "Contacts"}}}]},
            400,
            ("data", 0, "code"),
            source="Zoho CRM API Create Notes docs (up to v7): Note_Content is mandatory",
        ),
    )

    def __init__(self, *, token: str = "zoho-token", credits: int = 5000) -> None:
        super().__init__()
        # The account the fake's credential belongs to.
        self.org_id = "20071234"
        self.token = token
        self.credits = credits
        self.notes: dict[str, dict[str, Any]] = {}
        self._next_id = 5_725_767_000_000_400_000
        self.route("POST", r"/crm/v8/Notes", self._create)
        self.route("GET", r"/crm/v8/Notes", self._list)
        self.route("GET", r"/crm/v8/Notes/(\d+)", self._get)
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
            return _invalid(unknown[0])
        for name in ("Note_Title", "Note_Content"):
            if name in note and not isinstance(note[name], str):
                return _invalid(name)
        return note

    def _create(self, request: FakeRequest) -> FakeResponse:
        note = self._note(request.body)
        if isinstance(note, FakeResponse):
            return note
        if not note.get("Note_Content"):
            return _mandatory("Note_Content")
        parent = note.get("Parent_Id")
        if parent is None:
            return _mandatory("Parent_Id")
        # Parent_Id is {id, module {api_name}} (notes/parent_id.py, a MinifiedModule).
        module = parent.get("module") if isinstance(parent, dict) else None
        if (
            not isinstance(parent, dict)
            or not isinstance(module, dict)
            or module.get("api_name") not in _PARENT_MODULES
            or not str(parent.get("id", "")).isdigit()
        ):
            return _invalid("Parent_Id")
        self._next_id += 1
        note_id = str(self._next_id)
        now = _now()
        self.notes[note_id] = {
            **note,
            "id": note_id,
            "Parent_Id": {"module": {"api_name": module["api_name"]}, "id": str(parent["id"])},
            "Created_Time": now,
            "Modified_Time": now,
            "Created_By": _USER,
            "Modified_By": _USER,
        }
        return _record_reply(201, "SUCCESS", "record added", _details(self.notes[note_id]))

    def _get(self, request: FakeRequest, note_id: str) -> FakeResponse:
        # GET /crm/v8/Notes/{id}?fields=... (get_note, GetNoteParam.fields): {"data": [note]}.
        note = self.notes.get(note_id)
        if note is None:
            return _record_reply(
                404, "INVALID_DATA", "the related id given seems to be invalid", {"id": note_id}
            )
        return FakeResponse(200, {"data": [_fields(note, request.query.get("fields", ""))]})

    def _list(self, request: FakeRequest) -> FakeResponse:
        # GET /crm/v8/Notes (get_notes, GetNotesParam: page, per_page, fields, sort_by, sort_order);
        # the reply's info is notes/info.py's; no note at all is 204 with no body.
        query = request.query
        per_page, page = query.get("per_page", str(_MAX_PER_PAGE)), query.get("page", "1")
        if not per_page.isdigit() or not 1 <= int(per_page) <= _MAX_PER_PAGE or not page.isdigit():
            return _failure(400, "INVALID_DATA", "per_page or page is invalid")
        if query.get("sort_order", "desc") not in ("asc", "desc"):
            return _failure(400, "INVALID_DATA", "sort_order is invalid")
        sort_by = query.get("sort_by", "id")
        if sort_by not in ("id", "Created_Time", "Modified_Time"):
            return _failure(400, "INVALID_DATA", "sort_by is invalid")
        notes = sorted(self.notes.values(), key=lambda n: (n[sort_by], n["id"]))
        if query.get("sort_order", "desc") == "desc":
            notes.reverse()
        start = (int(page) - 1) * int(per_page)
        shown = notes[start : start + int(per_page)]
        if not shown:
            return FakeResponse(204)
        info = {
            "per_page": int(per_page),
            "count": len(shown),
            "page": int(page),
            "sort_by": sort_by,
            "sort_order": query.get("sort_order", "desc"),
            "more_records": start + len(shown) < len(notes),
        }
        fields = query.get("fields", "")
        return FakeResponse(200, {"data": [_fields(n, fields) for n in shown], "info": info})

    def _update(self, request: FakeRequest, note_id: str) -> FakeResponse:
        if note_id not in self.notes:
            return _record_reply(
                404, "INVALID_DATA", "the related id given seems to be invalid", {"id": note_id}
            )
        note = self._note(request.body)
        if isinstance(note, FakeResponse):
            return note
        self.notes[note_id].update(note, Modified_Time=_now())
        return _record_reply(200, "SUCCESS", "record updated", _details(self.notes[note_id]))

    def _org(self, request: FakeRequest) -> FakeResponse:
        # GET /crm/v8/org: the organization of the token (org/response_wrapper.py: "org").
        return FakeResponse(200, {"org": [{"id": self.org_id, "company_name": "Acme", "zgid": "7000"}]})

    record_store = "notes"
    body_path = ("Note_Content",)
    write_path = r"^/crm/v8/Notes(/\d+)?$"


def _fields(note: dict[str, Any], fields: str) -> dict[str, Any]:
    """The note with the fields asked for (and its id), as Zoho returns it."""
    wanted = [f for f in fields.split(",") if f]
    if not wanted:
        return dict(note)
    return {"id": note["id"], **{f: note[f] for f in wanted if f in note}}


def _details(note: dict[str, Any]) -> dict[str, Any]:
    return {
        "Modified_Time": note["Modified_Time"],
        "Modified_By": _USER,
        "Created_Time": note["Created_Time"],
        "id": note["id"],
        "Created_By": _USER,
    }
