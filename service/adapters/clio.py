"""Clio Manage (API v4): each record is a Communication of type PhoneCommunication, plain text.

- Host: user.hostname, one of app.clio.com, eu.app.clio.com, ca.app.clio.com, au.app.clio.com
  (Clio keeps each region's accounts apart); requests go to https://<host>/api/v4.
- Auth: crm-authorization is sent as the Authorization header (an OAuth "Bearer <token>").
  user.id is the Clio user id and contact.id the Clio contact id (digits).
- Account: GET /users/who_am_i.json?fields=id,name,account{id}: the firm account (`account.id`)
  the token's user belongs to, and the user's name. Clio's OpenAPI spec (v4) gives User a nested
  `account` (Account_base: id, name, ...) and its User description asks for it the same way
  (`who_am_i?fields=account{name}`). One call per token per 15 minutes; it also names the user.
- Senders and receivers follow the direction: inbound is contact -> user, outbound user -> contact.
- additional_submission: "matters" (a matter id) files the communication under that matter.
- Calls: create is one POST /communications.json; an append is one PATCH
  /communications/{id}.json replacing subject and body, sent with IF-MATCH: the etag of our last
  write (every reply carries the record's etag; Clio answers 412 when the record changed since).
  After a 412 (a person edited the communication) the record is read, GET
  /communications/{id}.json?fields=id,etag,body, their text is kept as they left it with the later
  messages written after it, and the PATCH is sent again with the etag just read.
- A create whose reply was lost is found, not made twice: GET /communications.json filtered by
  the contact (`contact_id`) and `created_since` (the create's send time less a clock margin),
  `fields=id,etag,body`, newest first, up to 200 (the spec's limit); the one whose body holds the
  digest's reference is ours. More than 200 communications of one contact created within those
  minutes would hide it (a documented limit, not followed through pages).
- Not checked against Clio itself: the 412 reply's error body (only its status is relied on);
  the error `type` names of a 422 (the spec gives only the {"error": {type, message}} shape).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.adapters.base import (
    AccountLookup,
    CrmCall,
    CurrentRecord,
    ErrorFields,
    HttpCrmAdapter,
    RecordVersions,
    Written,
    field_at,
    record_id,
)
from service.adapters.fields import created_after, numeric_id, utc_iso
from service.model import Direction
from service.render import BodyFormat, RenderedRecord

# The most communications one list call answers (Clio's OpenAPI spec: limit 1..200).
_LIST_LIMIT = 200


class ClioAdapter(HttpCrmAdapter):
    name = "clio"
    error_fields = ErrorFields(code_at=("error", "type"), message_at=("error", "message"))
    body_format = BodyFormat.TEXT
    host_patterns = (r"((eu|ca|au)\.)?app\.clio\.com",)
    # Clio returns only id and etag unless the fields wanted are named: the user's name and the
    # firm account it belongs to (a nested field, asked for as account{id}).
    identity = AccountLookup(
        "/users/who_am_i.json",
        account_at=("data", "account", "id"),
        params={"fields": "id,name,account{id}"},
        name_at=("data", "name"),
    )
    default_base_url = "https://{hostname}/api/v4"
    reads_records = True
    versions = RecordVersions(at=("data", "etag"), header="IF-MATCH")
    finds_created = True

    def validate(self, call: CrmCall) -> None:
        super().validate(call)
        self._parties(call, inbound=True)
        self._matter(call)

    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        payload: dict[str, Any] = {
            "type": "PhoneCommunication",
            "subject": record.subject,
            "body": record.body,
            "date": record.local_date.isoformat(),
            "received_at": utc_iso(record.first_time),
            **self._parties(call, inbound=_is_inbound(record)),
            **self._matter(call),
        }
        body = await self.request(
            call, "POST", "/communications.json", json={"data": payload}, operation="create_communication"
        )
        return Written(record_id(body, "data", "id"), self.version_in(body))

    async def update(self, call: CrmCall, log_id: str, record: RenderedRecord) -> Written:
        body = await self.request(
            call,
            "PATCH",
            self._path(log_id),
            json={"data": {"subject": record.subject, "body": record.body}},
            operation="update_communication",
        )
        return Written(log_id, self.version_in(body))

    async def read_record(self, call: CrmCall, log_id: str) -> CurrentRecord:
        body = await self.request(
            call, "GET", self._path(log_id), params={"fields": "id,etag,body"}, operation="get_communication"
        )
        return CurrentRecord(str(field_at(body, "data", "body")), self.version_in(body))

    async def find_created(self, call: CrmCall, marker: str, since: datetime) -> str | None:
        body = await self.request(
            call,
            "GET",
            "/communications.json",
            params={
                "contact_id": str(numeric_id("contact.id", call.contact.id, self.name)),
                "created_since": utc_iso(created_after(since)),
                "fields": "id,etag,body",
                "order": "id(desc)",
                "limit": str(_LIST_LIMIT),
            },
            operation="find_communication",
        )
        found = field_at(body, "data")
        for communication in found if isinstance(found, list) else []:
            if isinstance(communication, dict) and marker in str(communication.get("body") or ""):
                return record_id(communication, "id")
        return None

    def _path(self, log_id: str) -> str:
        return f"/communications/{numeric_id('log_id', log_id, self.name)}.json"

    def _parties(self, call: CrmCall, *, inbound: bool) -> dict[str, list[dict[str, Any]]]:
        user = {"id": numeric_id("user.id", call.user.id, self.name), "type": "User"}
        contact = {"id": numeric_id("contact.id", call.contact.id, self.name), "type": "Contact"}
        if inbound:
            return {"senders": [contact], "receivers": [user]}
        return {"senders": [user], "receivers": [contact]}

    def _matter(self, call: CrmCall) -> dict[str, Any]:
        if matter := call.extras.get("matters", ""):
            return {"matter": {"id": numeric_id("additional_submission[matters]", matter, self.name)}}
        return {}


def _is_inbound(record: RenderedRecord) -> bool:
    return record.direction is Direction.INBOUND
