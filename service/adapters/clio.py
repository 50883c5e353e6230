"""Clio Manage (API v4): each record is a Communication of type PhoneCommunication, plain text.

- Host: user.hostname, one of app.clio.com, eu.app.clio.com, ca.app.clio.com, au.app.clio.com
  (Clio keeps each region's accounts apart); requests go to https://<host>/api/v4.
- Auth: crm-authorization is sent as the Authorization header (an OAuth "Bearer <token>").
  user.id is the Clio user id and contact.id the Clio contact id (digits).
- Senders and receivers follow the direction: inbound is contact -> user, outbound user -> contact.
- additional_submission: "matters" (a matter id) files the communication under that matter.
- Calls: create is one POST /communications.json; an append is one PATCH
  /communications/{id}.json replacing subject and body, sent with IF-MATCH: the etag of our last
  write (every reply carries the record's etag; Clio answers 412 when the record changed since).
  After a 412 (a person edited the communication) the record is read, GET
  /communications/{id}.json?fields=id,etag,body, their text is kept as they left it with the later
  messages written after it, and the PATCH is sent again with the etag just read. When the caller
  sends no user.name, the user's name is read once an hour per account from GET
  /users/who_am_i.json.
- Not checked against Clio itself: the 412 reply's error body (only its status is relied on).
"""

from __future__ import annotations

from typing import Any

from service.adapters.base import (
    AccountLookup,
    CrmCall,
    CurrentRecord,
    HttpCrmAdapter,
    RecordVersions,
    Written,
    field_at,
    record_id,
)
from service.adapters.fields import numeric_id, utc_iso
from service.model import Direction
from service.render import BodyFormat, RenderedRecord


class ClioAdapter(HttpCrmAdapter):
    name = "clio"
    body_format = BodyFormat.TEXT
    host_patterns = (r"((eu|ca|au)\.)?app\.clio\.com",)
    # Clio returns only id and etag unless the fields wanted are named.
    # who_am_i names the user and, with the fields asked for, the firm account it belongs to.
    identity = AccountLookup(
        "/users/who_am_i.json",
        account_at=("data", "account", "id"),
        params={"fields": "id,name,account{id}"},
        name_at=("data", "name"),
    )
    default_base_url = "https://{hostname}/api/v4"
    reads_records = True
    versions = RecordVersions(at=("data", "etag"), header="IF-MATCH")

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
