"""Bullhorn: each record is a Note on the contact (its personReference) whose comments hold the HTML digest.

- Host: the REST URL Bullhorn's login returns with the session, such as
  https://rest22.bullhornstaffing.com/rest-services/abc123/, sent in
  user.platform_additional_info["rest_url"]. It must be https on a rest*.bullhornstaffing.com host
  (rest, restNN and the data-centre hosts rest-east, rest-emea, rest-west9...); a base URL override
  replaces only its scheme and host, keeping /rest-services/{corpToken}. user.hostname is not used.
- Auth: crm-authorization carries the session's BhRestToken, sent as the BhRestToken header (not
  Authorization). An expired session answers 401: the caller logs in again and sends the new token
  and REST URL.
- Identity: GET settings/corporationId,userId. The settings call answers each setting named, comma
  separated (`GET /settings/setting1[,setting2...]`, bullhorn/rest-api-docs _settings.md); that
  corporationId and userId are among the settings is seen in Bullhorn apps' code, not in Bullhorn's
  docs (unverified). The corporation keys everything kept for the account (REST hosts are shared by
  corporations); the user is the session's CorporateUser, who is the Note's commentingPerson.
- Note: personReference is the contact and commentingPerson the session's user: "If you include a
  commentingPerson value and a personReference value when you create a Note, the association to an
  entity is made automatically" (entityref/_note.md), which puts the note on the contact's Notes.
- additional_submission: "noteActions" becomes the Note's action, a value of the account's
  commentActionList (at most 30 characters). Without it the Note has no action; an account whose
  settings require one refuses the Note with 400 (the old product's auto-log failed this way), which
  is CRM_REJECTED: nothing is marked logged, and the same call with noteActions logs it.
- CRM calls: create is one PUT entity/Note, answered {"changedEntityId": id, "changeType": "INSERT"};
  append is a GET entity/Note/{id}?fields=comments (a person's edit is found and kept) and one POST
  entity/Note/{id} replacing the comments. The user's name in the digest is the caller's user.name.
  Bullhorn's docs show a single entity's GET reply bare and other GETs under "data"; both are read.
- Lost create: one GET search/Note (Note is searched through its Lucene index; the query call is
  for entities without one, _search.md) for the contact's newest notes, whose comments are matched
  against the digest's marker here. How soon a new Note reaches the index is not documented
  (unverified): a Note not yet indexed is made again.
- Rate limit: 429 without a documented Retry-After; Bullhorn's docs say to wait one second, so a
  429 without the header reports that delay.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from service.adapters.base import (
    AccountLookup,
    CrmCall,
    CurrentRecord,
    ErrorFields,
    HttpCrmAdapter,
    Written,
    field_at,
    record_id,
)
from service.adapters.fields import numeric_id
from service.errors import CrmBadResponse, CrmError, CrmRateLimited, FieldViolation, InvalidRequest
from service.render import BodyFormat, RenderedRecord

_REST_URL_KEY = "rest_url"
_ACTION_KEY = "noteActions"
_ACTION_LIMIT = 30
_RATE_LIMIT_WAIT_SECONDS = 1.0
# How many of the contact's newest notes a lost create is looked for among.
_FIND_LIMIT = 50


class BullhornAdapter(HttpCrmAdapter):
    name = "bullhorn"
    error_fields = ErrorFields(code_at=("errorMessageKey",), message_at=("errorMessage",))
    body_format = BodyFormat.HTML
    host_patterns = (r"rest(-[a-z]+)?[0-9]*\.bullhornstaffing\.com",)
    account_url_key = _REST_URL_KEY
    identity = AccountLookup(
        "/settings/corporationId,userId", account_at=("corporationId",), user_id_at=("userId",)
    )
    reads_records = True
    finds_created = True

    def validate(self, call: CrmCall) -> None:
        super().validate(call)
        numeric_id("contact.id", call.contact.id, "Bullhorn")
        if len(call.extras.get(_ACTION_KEY, "")) > _ACTION_LIMIT:
            raise InvalidRequest(
                [FieldViolation(f"additional_submission[{_ACTION_KEY}]", "is longer than 30 characters")]
            )

    def auth_headers(self, call: CrmCall) -> dict[str, str]:
        return {"BhRestToken": call.authorization}

    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        payload = {
            "personReference": {"id": numeric_id("contact.id", call.contact.id, "Bullhorn")},
            "commentingPerson": {"id": _session_user(call)},
            **_note(call, record),
        }
        # Bullhorn creates with PUT and updates with POST: the create is the one never to repeat.
        body = await self.request(
            call, "PUT", "/entity/Note", json=payload, operation="create_note", repeatable=False
        )
        return Written(record_id(body, "changedEntityId"))

    async def read_record(self, call: CrmCall, log_id: str) -> CurrentRecord:
        path = f"/entity/Note/{numeric_id('log_id', log_id, 'Bullhorn')}"
        body = await self.read_fields(call, path, "id,comments", operation="get_note")
        note = body.get("data", body)
        if not isinstance(note, dict):
            raise CrmBadResponse("bullhorn answered get_note without the note")
        return CurrentRecord(str(note.get("comments") or ""))

    async def find_created(self, call: CrmCall, marker: str, since: datetime) -> str | None:
        person = numeric_id("contact.id", call.contact.id, "Bullhorn")
        body = await self.request(
            call,
            "GET",
            "/search/Note",
            params={
                "query": f"personReference.id:{person} AND isDeleted:0",
                "fields": "id,comments,dateAdded",
                "sort": "-dateAdded",
                "count": str(_FIND_LIMIT),
            },
            operation="find_note",
        )
        # dateAdded is in epoch milliseconds; a minute's slack covers clock differences.
        after_ms = (since - timedelta(minutes=1)).timestamp() * 1000
        notes = field_at(body, "data")
        for note in notes if isinstance(notes, list) else []:
            if (
                isinstance(note, dict)
                and isinstance(note.get("dateAdded"), int)
                and note["dateAdded"] >= after_ms
                and marker in str(note.get("comments") or "")
            ):
                return record_id(note, "id")
        return None

    async def update(self, call: CrmCall, log_id: str, record: RenderedRecord) -> Written:
        await self.request(
            call,
            "POST",
            f"/entity/Note/{numeric_id('log_id', log_id, 'Bullhorn')}",
            json=_note(call, record),
            operation="update_note",
            repeatable=True,
        )
        return Written(log_id)

    def error_for(self, response: httpx.Response, operation: str) -> CrmError:
        error = super().error_for(response, operation)
        if isinstance(error, CrmRateLimited) and error.retry_after is None:
            error.retry_after = _RATE_LIMIT_WAIT_SECONDS
        return error


def _session_user(call: CrmCall) -> int:
    """The CorporateUser id of the call's session, as the identity reply named it."""
    if not call.account_user_id.isdigit():
        raise CrmBadResponse("bullhorn named the session's user with something other than an id")
    return int(call.account_user_id)


def _note(call: CrmCall, record: RenderedRecord) -> dict[str, Any]:
    note: dict[str, Any] = {"comments": record.body}
    if action := call.extras.get(_ACTION_KEY, ""):
        note["action"] = action
    return note
