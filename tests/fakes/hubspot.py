"""A fake HubSpot: CRM v3 communications (create, read, update, search), owners and account details,
with HubSpot's auth, error body and 10-second rate limit.

Shapes are the official SDK's (HubSpot/hubspot-api-nodejs, codegen/crm/...): objects are
SimplePublicObject {"id": str, "properties", "createdAt", "updatedAt", "archived"}; a search answers
CollectionResponseWithTotalSimplePublicObjectForwardPaging {"total", "results", "paging"?}; owners are
PublicOwner {"id", "userId", "email", ...}. Errors are ModelError-shaped {"status": "error", "message",
"correlationId", "category"} (plus "errors" for validation). Over the limit, HubSpot answers 429 with
"policyName" in the body, which the SDK's RetryDecorator reads, and X-HubSpot-RateLimit-* headers.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse, Refusal

# The communication properties the adapter may write. HubSpot refuses a property the object does
# not have (400 VALIDATION_ERROR, PROPERTY_DOESNT_EXIST) and one that is read-only, such as
# hs_createdate or hs_object_id (HubSpot's properties API marks them readOnlyValue).
_PROPERTIES = {
    "hs_communication_channel_type",
    "hs_communication_logged_from",
    "hs_communication_body",
    "hs_timestamp",
    "hubspot_owner_id",
}
# hs_communication_channel_type's options (HubSpot's communications guide).
_CHANNELS = {"SMS", "WHATS_APP", "LINKEDIN_MESSAGE"}
# HUBSPOT_DEFINED association type ids from a communication, by target object
# (official SDK src/enums/AssociationTypes.ts: communicationToContact 81, ToDeal 85...).
_ASSOCIATION_TYPES = {81: "contact", 85: "deal", 83: "ticket", 87: "company"}
# The search API's Filter operators (codegen/crm/objects/communications/models/Filter.ts).
_OPERATORS = {
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
}
# PublicObjectSearchRequest's fields (codegen/crm/objects/communications/models/PublicObjectSearchRequest.ts).
_SEARCH_FIELDS = {"query", "limit", "after", "sorts", "properties", "filterGroups"}
_SEARCH_MAX_LIMIT = 200  # HubSpot's search guide: up to 200 records a page (unverified here)
_INTERVAL_SECONDS = 10.0
# The policy a burst over the 10-second limit names (SDK src/services/decorators/RetryDecorator.ts).
TEN_SECONDLY_ROLLING = "TEN_SECONDLY_ROLLING"


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
    documented_refusals = (
        Refusal(
            "POST",
            "/crm/v3/objects/communications",
            {"properties": {"hs_communication_body": "x", "hubspot_owner_id": "1001"}},
            400,
            ("message",),
            source="HubSpot/hubspot-api-nodejs codegen/crm/owners/models/PublicOwner.ts: an owner's id is "
            "not its userId; hubspot_owner_id takes an owner id (refusal text unverified)",
        ),
        Refusal(
            "POST",
            "/crm/v3/objects/communications",
            {"properties": {"hs_communication_body": "x", "hs_communication_channel_type": "PHONE"}},
            400,
            ("message",),
            source="HubSpot communications guide: hs_communication_channel_type is SMS, WHATS_APP or "
            "LINKEDIN_MESSAGE",
        ),
        Refusal(
            "POST",
            "/crm/v3/objects/communications",
            {"properties": {"hs_communication_body": "x", "hs_createdate": "0"}},
            400,
            ("message",),
            source="HubSpot properties API: hs_createdate is read-only (readOnlyValue)",
        ),
    )

    def __init__(self, *, token: str = "hs-token", per_interval: int = 100) -> None:
        super().__init__()
        # The account the fake's credential belongs to.
        self.portal_id = 62515
        self.token = token
        self.per_interval = per_interval
        # The portal's owners: an owner's id differs from its user's id (PublicOwner).
        self.owners = [
            {
                "id": "9101",
                "userId": 1001,
                "email": "alice@example.com",
                "firstName": "Alice",
                "lastName": "Agent",
                "type": "PERSON",
                "archived": False,
                "createdAt": "2024-01-01T00:00:00Z",
                "updatedAt": "2024-01-01T00:00:00Z",
            }
        ]
        self.communications: dict[str, dict[str, Any]] = {}
        self._recent: deque[float] = deque()
        self._next_id = 60_000
        self.route("POST", r"/crm/v3/objects/communications", self._create)
        self.route("POST", r"/crm/v3/objects/communications/search", self._search)
        self.route("GET", r"/crm/v3/objects/communications/(\d+)", self._get)
        self.route("PATCH", r"/crm/v3/objects/communications/(\d+)", self._patch)
        self.route("GET", r"/crm/v3/owners/(\d+)", self._owner)
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
            response = _error(
                429,
                "RATE_LIMITS",
                "You have reached your ten_secondly_rolling limit.",
                policyName=TEN_SECONDLY_ROLLING,
            )
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
            return f"Property values were not valid: unknown or read-only properties {sorted(unknown)}"
        if any(not isinstance(v, str) for v in properties.values()):
            return "Property values must be strings"
        channel = properties.get("hs_communication_channel_type")
        if channel is not None and channel not in _CHANNELS:
            return f"{channel} is not a valid hs_communication_channel_type"
        if properties.get("hs_communication_logged_from", "CRM") != "CRM":
            return "hs_communication_logged_from must be CRM"
        # hubspot_owner_id is an enumeration of the portal's owner ids, not user ids (PublicOwner.ts).
        owner = properties.get("hubspot_owner_id")
        if owner is not None and owner not in {o["id"] for o in self.owners}:
            return f"{owner} is not a valid owner id"
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
        now = datetime.now(UTC)
        communication = {
            "id": str(self._next_id),
            "properties": dict(body["properties"]),
            "associations": body.get("associations", []),
            "archived": False,
            "created": now,
            "updated": now,
        }
        self.communications[communication["id"]] = communication
        return FakeResponse(201, _public(communication))

    def _get(self, request: FakeRequest, communication_id: str) -> FakeResponse:
        # GET .../communications/{id}?properties=a,b (BasicApi.getById): only the properties asked
        # for (and those HubSpot always returns), unknown ones ignored.
        communication = self.communications.get(communication_id)
        if communication is None:
            return self.not_found(request)
        wanted = [p for p in request.query.get("properties", "").split(",") if p]
        return FakeResponse(200, _public(communication, wanted))

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
        communication["updated"] = datetime.now(UTC)
        return FakeResponse(200, _public(communication))

    def _search(self, request: FakeRequest) -> FakeResponse:
        body = request.body
        if not isinstance(body, dict) or set(body) - _SEARCH_FIELDS:
            return _invalid("a search is a PublicObjectSearchRequest")
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 0 < limit <= _SEARCH_MAX_LIMIT:
            return _invalid(f"limit must be between 1 and {_SEARCH_MAX_LIMIT}")
        groups = body.get("filterGroups", [])
        for group in groups:
            for condition in group.get("filters", []):
                if condition.get("operator") not in _OPERATORS or "propertyName" not in condition:
                    return _invalid("a filter needs a propertyName and a known operator")
        found = [
            c
            for c in self.communications.values()
            if not groups or any(all(_matches(c, f) for f in g.get("filters", [])) for g in groups)
        ]
        wanted = body.get("properties", [])
        return FakeResponse(
            200, {"total": len(found), "results": [_public(c, wanted) for c in found[:limit]]}
        )

    def _owner(self, request: FakeRequest, owner_id: str) -> FakeResponse:
        # GET /crm/v3/owners/{ownerId}?idProperty=id|userId (OwnersApi.getById).
        key = "userId" if request.query.get("idProperty") == "userId" else "id"
        owner = next((o for o in self.owners if str(o[key]) == owner_id), None)
        if owner is None:
            return _error(404, "OBJECT_NOT_FOUND", "resource not found")
        return FakeResponse(200, owner)

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
    write_path = r"^/crm/v3/objects/communications(/\d+)?$"


def _matches(communication: dict[str, Any], condition: dict[str, Any]) -> bool:
    """The filters the adapter sends: associations.contact EQ and hs_createdate GTE (milliseconds)."""
    name, value = condition["propertyName"], str(condition.get("value", ""))
    if name == "associations.contact":
        return any(
            str(a["to"]["id"]) == value and a["types"][0]["associationTypeId"] == 81
            for a in communication["associations"]
        )
    if name == "hs_createdate" and condition["operator"] == "GTE":
        return communication["created"].timestamp() * 1000 >= int(value)
    raise AssertionError(f"the fake does not search by {name} {condition['operator']}")


def _public(communication: dict[str, Any], wanted: list[str] | None = None) -> dict[str, Any]:
    properties = communication["properties"]
    if wanted is not None:
        # HubSpot always returns these three, whatever is asked for.
        always = {
            "hs_createdate": _iso(communication["created"]),
            "hs_lastmodifieddate": _iso(communication["updated"]),
            "hs_object_id": communication["id"],
        }
        properties = {**always, **{p: properties[p] for p in wanted if p in properties}}
    return {
        "id": communication["id"],
        "properties": properties,
        "createdAt": _iso(communication["created"]),
        "updatedAt": _iso(communication["updated"]),
        "archived": communication["archived"],
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
