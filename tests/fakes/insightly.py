"""A fake Insightly v3.1: Events with their LINKS sub-collection, the Instance, with its auth and errors.

Shapes follow Insightly's v3.1 reference (api.na1.insightly.com/v3.1) and its swagger as generated
into sterner-stuff/insightly-php (v3.1: APIEvent, EventsApi, InstanceApi): field names are upper
case; a POST answers 200 with the whole object; PUT /Events takes EVENT_ID in the body and changes
only the fields sent; GET /Events/Search filters by field_name and field_value (both together) or
updated_after_utc, with brief, top and skip; GET /Instance names the instance (INSTANCE_NAME,
INSTANCE_SUBDOMAIN, PLAN_NAME: the v2.2/v3.0 swagger model); dates are "yyyy-MM-dd HH:mm:ss" UTC.
Errors are ASP.NET-style {"Message": ...} bodies (not documented: wording and shape unverified).
Auth is HTTP Basic with the API key as user name and an empty password.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse, Refusal

# The v3.1 APIEvent model's fields (sterner-stuff/insightly-php docs/Model/APIEvent.md) plus the
# LINKS sub-collection v3.1 takes inline; DATE_CREATED_UTC and DATE_UPDATED_UTC are Insightly's
# own stamps (whether a write naming them is refused or ignored is unverified: ignored here).
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
    "CUSTOMFIELDS",
    "LINKS",
}
_STAMPS = {"DATE_CREATED_UTC", "DATE_UPDATED_UTC"}
# TITLE is "(required)" in the v2.2 model; START_DATE_UTC and END_DATE_UTC are the v3.1 model's
# only non-optional fields.
_REQUIRED_ON_CREATE = {"TITLE", "START_DATE_UTC", "END_DATE_UTC"}
_DATE_FIELDS = {"START_DATE_UTC", "END_DATE_UTC", "REMINDER_DATE_UTC"}
_DATE = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
_LINK_TARGETS = {"Contact", "Lead", "Organisation", "Opportunity", "Project"}


def _error(status: int, message: str) -> FakeResponse:
    return FakeResponse(status, {"Message": message})


class FakeInsightly(FakeCrm):
    name = "insightly"
    identity_route = r"/v3\.1/Instance"
    # The status (400) and the {"Message"} body are unverified; that these are refused is documented.
    documented_refusals = (
        # START_DATE_UTC and END_DATE_UTC are the v3.1 APIEvent model's required fields.
        Refusal(
            "POST",
            "/v3.1/Events",
            {"TITLE": "t", "DETAILS": "d"},
            400,
            ("Message",),
            source="Insightly v3.1 swagger (sterner-stuff/insightly-php APIEvent.md): required dates",
        ),
        # A date that is not a date ("insert invalid data in a field", v3.x EventsApi addEntity).
        Refusal(
            "POST",
            "/v3.1/Events",
            {"TITLE": "t", "START_DATE_UTC": "tomorrow", "END_DATE_UTC": "2026-01-01 10:00:00"},
            400,
            ("Message",),
            source="Insightly v3.1 swagger: START_DATE_UTC is a DateTime",
        ),
        # A link to a record that does not exist (EventsApi addEntity: "reference ... that does not exist").
        Refusal(
            "POST",
            "/v3.1/Events",
            {
                "TITLE": "t",
                "START_DATE_UTC": "2026-01-01 10:00:00",
                "END_DATE_UTC": "2026-01-01 10:00:00",
                "LINKS": [{"LINK_OBJECT_NAME": "Contact", "LINK_OBJECT_ID": 999999}],
            },
            400,
            ("Message",),
            source="Insightly v3.x swagger, EventsApi addEntity: invalid references are refused",
        ),
    )

    def __init__(self, *, api_key: str = "insightly-key") -> None:
        super().__init__()
        # The account the fake's credential belongs to.
        self.instance_subdomain = "acme"
        self.api_key = api_key
        self.linkable = {("Contact", 42), ("Lead", 77)}
        self.events: dict[int, dict[str, Any]] = {}
        self._next_id = 3_000_000
        self._next_link_id = 90_000
        self.route("POST", r"/v3\.1/Events", self._create)
        self.route("PUT", r"/v3\.1/Events", self._update)
        self.route("GET", r"/v3\.1/Events/Search", self._search)
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
        if unknown := set(body) - _EVENT_FIELDS - _STAMPS:
            return f"Unknown fields: {sorted(unknown)}"
        for name in _DATE_FIELDS & set(body):
            if not re.fullmatch(_DATE, str(body[name])):
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
        if missing := _REQUIRED_ON_CREATE - set(request.body):
            return _error(400, f"Missing required fields: {sorted(missing)}")
        if "EVENT_ID" in request.body:
            return _error(400, "EVENT_ID must not be set on a new event.")
        self._next_id += 1
        now = _now()
        event = {
            **_without_stamps(request.body),
            "EVENT_ID": self._next_id,
            "DATE_CREATED_UTC": now,
            "DATE_UPDATED_UTC": now,
        }
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
        changes = {**_without_stamps(request.body), "DATE_UPDATED_UTC": _now()}
        if "LINKS" in changes:
            changes["LINKS"] = self._stored_links(event["EVENT_ID"], changes["LINKS"])
        event.update(changes)
        return FakeResponse(200, event)

    def _get(self, request: FakeRequest, event_id: str) -> FakeResponse:
        event = self.events.get(int(event_id))
        return FakeResponse(200, event) if event is not None else _error(404, "Event not found.")

    def _search(self, request: FakeRequest) -> FakeResponse:
        query = request.query
        # "To filter with a field name and value, both field_name and field_value parameters
        # must be provided" (v3.1 EventsApi getEntitiesBySearch).
        if ("field_name" in query) != ("field_value" in query):
            return _error(400, "Both field_name and field_value must be provided.")
        since = query.get("updated_after_utc")
        if since is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", since):
            return _error(400, "updated_after_utc must be a date and time.")
        found = [
            event
            for event in self.events.values()
            if (since is None or event["DATE_UPDATED_UTC"] >= since.replace("T", " ").rstrip("Z"))
            and ("field_name" not in query or str(event.get(query["field_name"])) == query["field_value"])
        ]
        skip, top = int(query.get("skip", "0")), int(query.get("top", "100"))
        brief = query.get("brief") == "true"
        # brief=true: "only top level properties" (no LINKS, CUSTOMFIELDS).
        shown = [{k: v for k, v in e.items() if not (brief and k == "LINKS")} for e in found]
        return FakeResponse(200, shown[skip : skip + top])

    def _delete(self, request: FakeRequest, event_id: str) -> FakeResponse:
        if self.events.pop(int(event_id), None) is None:
            return _error(404, "Event not found.")
        return FakeResponse(202)

    def _instance(self, request: FakeRequest) -> FakeResponse:
        # GET /v3.1/Instance: the instance the API key belongs to (the swagger's APIInstance).
        return FakeResponse(
            200,
            {
                "INSTANCE_NAME": "Acme",
                "INSTANCE_SUBDOMAIN": self.instance_subdomain,
                "PLAN_NAME": "Professional",
            },
        )

    # What the contract suite reads back.
    record_store = "events"
    body_path = ("DETAILS",)
    write_path = r"^/v3\.1/Events"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _without_stamps(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in _STAMPS}
