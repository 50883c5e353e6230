"""A fake in-house CRM speaking the generic adapter's documented JSON API.

The protocol is ours (service/adapters/generic.py's docstring and the README's generic section):
the document must have exactly its fields; GET /activity/{id} answers the document; GET
/activity?ref= answers {"activities": [{"id"}]}.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse, Refusal

_REQUIRED = {
    "kind",
    "subject",
    "body",
    "body_format",
    "local_date",
    "first_message_time",
    "last_message_time",
    "message_count",
    "user_id",
    "ref",
    "contact",
    "additional_submission",
}


_PROTOCOL = "our generic protocol (service/adapters/generic.py docstring; README, generic)"


class FakeGeneric(FakeCrm):
    name = "generic"
    # The protocol is ours: a document is exactly its documented fields.
    documented_refusals = (
        Refusal("POST", "/activity", {"kind": "sms", "body": "b"}, 422, ("error",), source=_PROTOCOL),
        Refusal("POST", "/activity", {"unknown": True}, 422, ("error",), source=_PROTOCOL),
    )

    def __init__(self, *, token: str = "generic-token") -> None:
        super().__init__()
        self.token = token
        self.activities: dict[str, dict[str, Any]] = {}
        self._created = 0
        self.route("POST", r"/activity", self._create)
        self.route("PUT", r"/activity/([^/]+)", self._replace)
        self.route("GET", r"/activity/([^/]+)", self._get)
        self.route("GET", r"/activity", self._find)

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return FakeResponse(401, {"error": "invalid token"})
        return None

    def _invalid(self, body: Any) -> FakeResponse | None:
        if not isinstance(body, dict) or set(body) != _REQUIRED:
            return FakeResponse(422, {"error": "document does not match the schema"})
        return None

    def _create(self, request: FakeRequest) -> FakeResponse:
        refusal = self._invalid(request.body)
        if refusal:
            return refusal
        self._created += 1
        activity_id = f"act-{self._created}"
        self.activities[activity_id] = request.body
        return FakeResponse(201, {"id": activity_id})

    def _replace(self, request: FakeRequest, activity_id: str) -> FakeResponse:
        if activity_id not in self.activities:
            return FakeResponse(404, {"error": "no such activity"})
        refusal = self._invalid(request.body)
        if refusal:
            return refusal
        self.activities[activity_id] = request.body
        return FakeResponse(204)

    def _get(self, request: FakeRequest, activity_id: str) -> FakeResponse:
        activity = self.activities.get(activity_id)
        if activity is None:
            return FakeResponse(404, {"error": "no such activity"})
        return FakeResponse(200, {"id": activity_id, **activity})

    def _find(self, request: FakeRequest) -> FakeResponse:
        ref = request.query.get("ref")
        if not ref:
            return FakeResponse(422, {"error": "ref is required"})
        found = [{"id": key} for key, activity in self.activities.items() if activity["ref"] == ref]
        return FakeResponse(200, {"activities": found})

    record_store = "activities"
    body_path = ("body",)
    write_path = r"^/activity"
