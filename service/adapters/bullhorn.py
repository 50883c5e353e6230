"""Bullhorn: each record is a Note on the contact (its personReference) whose comments hold the HTML digest.

- Host: the REST URL Bullhorn's login returns with the session, such as
  https://rest22.bullhornstaffing.com/rest-services/abc123/, sent in
  user.platform_additional_info["rest_url"]. It must be https on a rest*.bullhornstaffing.com host
  (rest, restNN and the data-centre hosts rest-east, rest-emea, rest-west9...); a base URL override
  replaces only its scheme and host, keeping /rest-services/{corpToken}. user.hostname is not used.
- Auth: crm-authorization carries the session's BhRestToken, sent as the BhRestToken header (not
  Authorization). An expired session answers 401: the caller logs in again and sends the new token
  and REST URL.
- additional_submission: "noteActions" becomes the Note's action, a value of the account's
  commentActionList (at most 30 characters). Without it the Note has no action; an account whose
  settings require one refuses the Note with 400 (the old product's auto-log failed this way), which
  is CRM_REJECTED: nothing is marked logged, and the same call with noteActions logs it.
- CRM calls: create is one PUT entity/Note, answered {"changedEntityId": id, "changeType": "INSERT"};
  append is one POST entity/Note/{id} replacing the comments. No lookups: the Note's author defaults
  to the session's user, and the user's name in the digest is the caller's user.name.
- Rate limit: 429 without a documented Retry-After; Bullhorn's docs say to wait one second, so a
  429 without the header reports that delay.
"""

from __future__ import annotations

from typing import Any

import httpx

from service.adapters.base import AccountLookup, CrmCall, HttpCrmAdapter, Written, record_id
from service.adapters.fields import numeric_id
from service.errors import CrmError, CrmRateLimited, FieldViolation, InvalidRequest
from service.render import BodyFormat, RenderedRecord

_REST_URL_KEY = "rest_url"
_ACTION_KEY = "noteActions"
_ACTION_LIMIT = 30
_RATE_LIMIT_WAIT_SECONDS = 1.0


class BullhornAdapter(HttpCrmAdapter):
    name = "bullhorn"
    body_format = BodyFormat.HTML
    host_patterns = (r"rest(-[a-z]+)?[0-9]*\.bullhornstaffing\.com",)
    account_url_key = _REST_URL_KEY
    # The corporation the session belongs to (REST hosts are shared by corporations).
    identity = AccountLookup("/settings/corporationId", account_at=("corporationId",))

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
            **_note(call, record),
        }
        # Bullhorn creates with PUT and updates with POST: the create is the one never to repeat.
        body = await self.request(
            call, "PUT", "/entity/Note", json=payload, operation="create_note", repeatable=False
        )
        return Written(record_id(body, "changedEntityId"))

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


def _note(call: CrmCall, record: RenderedRecord) -> dict[str, Any]:
    note: dict[str, Any] = {"comments": record.body}
    if action := call.extras.get(_ACTION_KEY, ""):
        note["action"] = action
    return note
