"""A fake Insightly v3.1: Events with their LINKS sub-collection, with its auth and errors.

Shapes follow Insightly's v3.1 reference: field names are upper case; a POST answers 200 with the
whole object; PUT /Events takes EVENT_ID in the body and changes only the fields sent; dates are
"yyyy-MM-dd HH:mm:ss" UTC. Errors are ASP.NET-style {"Message": ...} bodies (the exact wording
is not documented). Auth is HTTP Basic with the API key as user name and an empty password.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse

_EVENT_FIELDS = {
    "EVENT_ID",
    "TITLE",
    "LOCATION",
    "START_DATE_UTC",
    "END_DATE_UTC",
    "ALL_DAY",
    "DETAILS",
    "REMINDER_DATE_UTC",
    "REMINDER_SENT",
    "OWNER_USER_ID",
    "PUBLICLY_VISIBLE",
    "CUSTOMFIELDS",
    "LINKS",
}
_DATE_FIELDS = {"START_DATE_UTC", "END_DATE_UTC", "REMINDER_DATE_UTC"}
_LINK_TARGETS = {"Contact", "Lead", "Organisation", "Opportunity", "Project"}


def _error(status: int, message: str) -> FakeResponse:
    return FakeResponse(status, {"Message": message})


class FakeInsightly(FakeCrm):
    name = "insightly"
    identity_route = r"/v3\.1/Instance"

    def __init__(self, *, api_key: str = "insightly-key") -> None:
        super().__init__()
        # The account the fake's credential belongs to.
        self.instance_id = 3141
        self.api_key = api_key
        self.linkable = {("Contact", 42), ("Lead", 77)}
        self.events: dict[int, dict[str, Any]] = {}
        self._next_id = 3_000_000
        self._next_link_id = 90_000
        self.route("POST", r"/v3\.1/Events", self._create)
        self.route("PUT", r"/v3\.1/Events", self._update)
        self.route("GET", r"/v3\.1/Events/(\d+)", self._get)
        self.route("DELETE", r"/v3\.1/Events/(\d+)", self._delete)
        self.route("GET", r"/v3\.1/Instance", self._instance)

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            credentials = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            credentials = ""
        if scheme != "Basic" or credentials != f"{self.api_key}:":
            return _error(401, "Authorization has been denied for this request.")
        return None

    def not_found(self, request: FakeRequest) -> FakeResponse:
        return _error(404, "No HTTP resource was found that matches the request URI.")

    def _check(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "The request body must be a JSON object."
        if unknown := set(body) - _EVENT_FIELDS:
            return f"Unknown fields: {sorted(unknown)}"
        for name in _DATE_FIELDS & set(body):
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", str(body[name])):
                return f"{name} must be yyyy-MM-dd HH:mm:ss"
        links = body.get("LINKS", [])
        if not isinstance(links, list) or not all(self._is_link(link) for link in links):
            return "LINKS must be [{LINK_OBJECT_NAME, LINK_OBJECT_ID}] of existing records"
        return None

    def _is_link(self, link: Any) -> bool:
        if not isinstance(link, dict) or set(link) != {"LINK_OBJECT_NAME", "LINK_OBJECT_ID"}:
            return False
        name, target = link["LINK_OBJECT_NAME"], link["LINK_OBJECT_ID"]
        return name in _LINK_TARGETS and (name, target) in self.linkable and not isinstance(target, bool)

    def _stored_links(self, event_id: int, links: list[dict[str, Any]]) -> list[dict[str, Any]]:
        stored = []
        for link in links:
            self._next_link_id += 1
            stored.append(
                {"LINK_ID": self._next_link_id, "OBJECT_NAME": "Event", "OBJECT_ID": event_id, **link}
            )
        return stored

    def _create(self, request: FakeRequest) -> FakeResponse:
        if problem := self._check(request.body):
            return _error(400, problem)
        if "TITLE" not in request.body or "EVENT_ID" in request.body:
            return _error(400, "TITLE is required and EVENT_ID must not be set.")
        self._next_id += 1
        event = {**request.body, "EVENT_ID": self._next_id}
        event["LINKS"] = self._stored_links(self._next_id, request.body.get("LINKS", []))
        self.events[self._next_id] = event
        return FakeResponse(200, event)

    def _update(self, request: FakeRequest) -> FakeResponse:
        if problem := self._check(request.body):
            return _error(400, problem)
        event_id = request.body.get("EVENT_ID")
        event = self.events.get(event_id) if isinstance(event_id, int) else None
        if event is None:
            return _error(404, "Event not found.")
        changes = dict(request.body)
        if "LINKS" in changes:
            changes["LINKS"] = self._stored_links(event["EVENT_ID"], changes["LINKS"])
        event.update(changes)
        return FakeResponse(200, event)

    def _get(self, request: FakeRequest, event_id: str) -> FakeResponse:
        event = self.events.get(int(event_id))
        return FakeResponse(200, event) if event is not None else _error(404, "Event not found.")

    def _delete(self, request: FakeRequest, event_id: str) -> FakeResponse:
        if self.events.pop(int(event_id), None) is None:
            return _error(404, "Event not found.")
        return FakeResponse(202)

    def _instance(self, request: FakeRequest) -> FakeResponse:
        # GET /v3.1/Instance: the instance the API key belongs to.
        return FakeResponse(200, {"INSTANCE_ID": self.instance_id, "INSTANCE_NAME": "Acme"})

    # What the contract suite reads back.
    record_store = "events"
    body_path = ("DETAILS",)
    write_path = r"^/v3\.1/Events"
