"""A fake HubSpot: CRM v3 communications, with HubSpot's auth, error body and 10-second rate limit.

Errors are {"status": "error", "message", "correlationId", "category"} (plus "errors" for validation);
objects are SimplePublicObject {"id": str, "properties", "createdAt", "updatedAt", "archived"}.
Over the limit, HubSpot answers 429 with category RATE_LIMITS and X-HubSpot-RateLimit-* headers.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from datetime import datetime
from typing import Any

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse

_PROPERTIES = {
    "hs_communication_channel_type",
    "hs_communication_logged_from",
    "hs_communication_body",
    "hs_timestamp",
    "hubspot_owner_id",
}
_CHANNELS = {"SMS", "WHATS_APP", "LINKEDIN_MESSAGE"}
# HUBSPOT_DEFINED association type ids from a communication, by target object.
_ASSOCIATION_TYPES = {81: "contact", 85: "deal", 83: "ticket", 87: "company"}
_INTERVAL_SECONDS = 10.0


def _error(status: int, category: str, message: str, **extra: Any) -> FakeResponse:
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }
    return FakeResponse(status, body)


def _invalid(message: str) -> FakeResponse:
    return _error(400, "VALIDATION_ERROR", message, errors=[{"message": message}])


class FakeHubspot(FakeCrm):
    name = "hubspot"
    identity_route = r"/account-info/v3/details"

    def __init__(self, *, token: str = "hs-token", per_interval: int = 100) -> None:
        super().__init__()
        # The account the fake's credential belongs to.
        self.portal_id = 62515
        self.token = token
        self.per_interval = per_interval
        self.communications: dict[str, dict[str, Any]] = {}
        self._recent: deque[float] = deque()
        self._next_id = 60_000
        self.route("POST", r"/crm/v3/objects/communications", self._create)
        self.route("PATCH", r"/crm/v3/objects/communications/(\d+)", self._patch)
        self.route("GET", r"/account-info/v3/details", self._account_details)

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
            )
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= _INTERVAL_SECONDS:
            self._recent.popleft()
        if len(self._recent) >= self.per_interval:
            response = _error(429, "RATE_LIMITS", "You have reached your ten_secondly_rolling limit.")
            response.headers = self.rate_limit_headers()
            return response
        self._recent.append(now)
        return None

    def rate_limit_headers(self) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(_INTERVAL_SECONDS * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.per_interval),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.per_interval - len(self._recent))),
        }

    def not_found(self, request: FakeRequest) -> FakeResponse:
        return _error(404, "OBJECT_NOT_FOUND", "resource not found")

    def _check_properties(self, properties: Any) -> str | None:
        if not isinstance(properties, dict) or not properties:
            return "properties must be a non-empty object"
        unknown = set(properties) - _PROPERTIES
        if unknown:
            return f"Property values were not valid: unknown properties {sorted(unknown)}"
        if any(not isinstance(v, str) for v in properties.values()):
            return "Property values must be strings"
        channel = properties.get("hs_communication_channel_type")
        if channel is not None and channel not in _CHANNELS:
            return f"{channel} is not a valid hs_communication_channel_type"
        if properties.get("hs_communication_logged_from", "CRM") != "CRM":
            return "hs_communication_logged_from must be CRM"
        if "hubspot_owner_id" in properties and not properties["hubspot_owner_id"].isdigit():
            return "hubspot_owner_id must be an owner id"
        if "hs_timestamp" in properties:
            try:
                datetime.fromisoformat(properties["hs_timestamp"].replace("Z", "+00:00"))
            except ValueError:
                return "hs_timestamp must be a UTC ISO 8601 time or Unix milliseconds"
        return None

    @staticmethod
    def _check_associations(associations: Any) -> str | None:
        if not isinstance(associations, list):
            return "associations must be a list"
        for association in associations:
            target = association.get("to", {}).get("id") if isinstance(association, dict) else None
            if not str(target).isdigit():
                return "association target id must be a record id"
            for kind in association.get("types") or [None]:
                if not isinstance(kind, dict) or kind.get("associationCategory") != "HUBSPOT_DEFINED":
                    return "association types need associationCategory HUBSPOT_DEFINED"
                if kind.get("associationTypeId") not in _ASSOCIATION_TYPES:
                    return f"{kind.get('associationTypeId')} is not an association type from communications"
        return None

    def _create(self, request: FakeRequest) -> FakeResponse:
        body = request.body
        if not isinstance(body, dict) or set(body) - {"properties", "associations"}:
            return _invalid("body must be {properties, associations}")
        problem = self._check_properties(body.get("properties")) or self._check_associations(
            body.get("associations", [])
        )
        if problem:
            return _invalid(problem)
        self._next_id += 1
        communication = {
            "id": str(self._next_id),
            "properties": dict(body["properties"]),
            "associations": body.get("associations", []),
            "archived": False,
        }
        self.communications[communication["id"]] = communication
        return FakeResponse(201, _public(communication))

    def _patch(self, request: FakeRequest, communication_id: str) -> FakeResponse:
        communication = self.communications.get(communication_id)
        if communication is None:
            return self.not_found(request)
        body = request.body
        if not isinstance(body, dict) or set(body) != {"properties"}:
            return _invalid("body must be {properties}")
        problem = self._check_properties(body["properties"])
        if problem:
            return _invalid(problem)
        communication["properties"].update(body["properties"])
        return FakeResponse(200, _public(communication))

    def _account_details(self, request: FakeRequest) -> FakeResponse:
        # GET /account-info/v3/details names the portal (HubSpot account) of the token.
        return FakeResponse(
            200,
            {
                "portalId": self.portal_id,
                "accountType": "STANDARD",
                "timeZone": "US/Eastern",
                "companyCurrency": "USD",
                "additionalCurrencies": [],
                "utcOffset": "-05:00",
                "utcOffsetMilliseconds": -18000000,
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            },
        )

    record_store = "communications"
    body_path = ("properties", "hs_communication_body")
    write_path = r"^/crm/v3/objects/communications"


def _public(communication: dict[str, Any]) -> dict[str, Any]:
    now = datetime.now().astimezone().isoformat()
    return {
        "id": communication["id"],
        "properties": communication["properties"],
        "createdAt": now,
        "updatedAt": now,
        "archived": communication["archived"],
    }
