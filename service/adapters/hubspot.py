"""HubSpot: each record is a communication (CRM v3 object, channel SMS) associated with the contact.

- Host: always api.hubapi.com; user.hostname is not used (HubSpot has one API host for every account).
- Auth: crm-authorization is sent as the Authorization header ("Bearer <token>", OAuth or private app).
- Identity: GET /account-info/v3/details names the portal (HubSpot account) of the token: portalId
  (developers.hubspot.com, account information API, legacy v3 "Retrieve account details").
- user.platform_additional_info: not used.
- The body is HTML: HubSpot shows a communication's body as rich text, and every caller-supplied
  character in it is already escaped by the renderer.
- Every kind (SMS, voicemail, fax) is logged with channel type SMS, the only phone channel HubSpot's
  communications accept (the others are WHATS_APP and LINKEDIN_MESSAGE).
- Owner: hubspot_owner_id takes an owner's id, which is not the user's id (PublicOwner has `id` and
  `userId`: official SDK codegen/crm/owners/models/PublicOwner.ts). A numeric user.id is the HubSpot
  user id the contract asks for, so the owner is looked up by it, GET /crm/v3/owners/{userId}
  ?idProperty=userId (codegen/crm/owners/apis/OwnersApi.ts getById), once an hour per account and
  user; a user who is no owner (404), or a token without the owners scope (403), leaves the
  communication without one.
- hs_timestamp is the earliest message's time, sent again by every append, so a message older than
  the first to arrive (a newest-first backfill) moves the communication back on the timeline.
- additional_submission: "deals" (a deal id) also associates the communication with that deal.
- CRM calls: create is one POST /crm/v3/objects/communications with the associations inline (plus
  the owner lookup, cached); an append is GET /crm/v3/objects/communications/{id}
  ?properties=hs_communication_body (a person's edit of the body is found and kept) then one PATCH
  of hs_communication_body and hs_timestamp.
- A create that got no clear answer is looked for before creating again: POST
  /crm/v3/objects/communications/search (codegen/crm/objects/communications/apis/SearchApi.ts) for
  the contact's communications created since the create was sent, matching the digest reference in
  the body.
- Rate limits: a 429 names its policy in the body; TEN_SECONDLY_ROLLING is a 10-second window and
  the search API's "You have reached your secondly limit." a 1-second one (the waits the official
  SDK's src/services/decorators/RetryDecorator.ts uses), which become the retry delay and RetryInfo.
- Association type ids 81 (communication to contact) and 85 (communication to deal) are HubSpot's
  HUBSPOT_DEFINED ids (official SDK src/enums/AssociationTypes.ts).
- Unverified (no official source read): the search filter `associations.contact` (HubSpot's search
  guide describes it; the SDK's Filter model takes any propertyName); how soon a new communication
  can be found by search (HubSpot indexes asynchronously, so a create lost moments ago may not be
  found yet and is then created again); whether the timeline renders HTML in the body.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from service.adapters.base import (
    LOOKUP_TTL_SECONDS,
    AccountLookup,
    CrmCall,
    CurrentRecord,
    ErrorFields,
    HttpCrmAdapter,
    TtlCache,
    Written,
    field_at,
    record_id,
)
from service.adapters.fields import digits_id
from service.errors import CrmAuthFailed, CrmError, CrmRateLimited, CrmRecordNotFound
from service.render import BodyFormat, RenderedRecord

_COMMUNICATIONS = "/crm/v3/objects/communications"
_BODY = "hs_communication_body"
_TO_CONTACT = 81
_TO_DEAL = 85
# Seconds to wait after a 429, by what its body names (the official SDK's RetryDecorator).
_TEN_SECONDLY_POLICY = "TEN_SECONDLY_ROLLING"
_SEARCH_SECONDLY_MESSAGE = "You have reached your secondly limit."
_WAIT_SECONDS = {_TEN_SECONDLY_POLICY: 10.0, _SEARCH_SECONDLY_MESSAGE: 1.0}
# How many communications one search returns; the search API's page cap is 200 (unverified).
_SEARCH_LIMIT = 100


class HubspotAdapter(HttpCrmAdapter):
    name = "hubspot"
    error_fields = ErrorFields(code_at=("category",), message_at=("message",))
    body_format = BodyFormat.HTML
    host_patterns = (r"api\.hubapi\.com",)
    default_base_url = "https://api.hubapi.com"
    # The portal (HubSpot account) the token belongs to; api.hubapi.com is every portal's host.
    identity = AccountLookup("/account-info/v3/details", account_at=("portalId",))
    reads_records = True
    finds_created = True

    def __post_init__(self) -> None:
        super().__post_init__()
        # The owner id of each user, "" for a user who is no owner.
        self._owners: TtlCache[tuple[str, str], str] = TtlCache(LOOKUP_TTL_SECONDS)

    def validate(self, call: CrmCall) -> None:
        super().validate(call)
        self._associations(call)

    async def prepare_create(self, call: CrmCall) -> None:
        await self._owner_id(call)

    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        properties = {
            "hs_communication_channel_type": "SMS",
            "hs_communication_logged_from": "CRM",
            _BODY: record.body,
            "hs_timestamp": _timestamp(record),
        }
        if owner := await self._owner_id(call):
            properties["hubspot_owner_id"] = owner
        body = await self.request(
            call,
            "POST",
            _COMMUNICATIONS,
            json={"properties": properties, "associations": self._associations(call)},
            operation="create_communication",
        )
        return Written(record_id(body, "id"))

    async def read_record(self, call: CrmCall, log_id: str) -> CurrentRecord:
        body = await self.request(
            call,
            "GET",
            _communication_path(log_id),
            params={"properties": _BODY},
            operation="get_communication",
        )
        properties = field_at(body, "properties")
        return CurrentRecord(str(properties.get(_BODY) or "") if isinstance(properties, dict) else "")

    async def find_created(self, call: CrmCall, marker: str, since: datetime) -> str | None:
        # The contact's communications created since the create was sent (a minute's slack for
        # clock differences); the marker is matched here, in the bodies the search returns.
        created_after = int((since - timedelta(minutes=1)).timestamp() * 1000)
        search = {
            "filterGroups": [
                {
                    "filters": [
                        {
                            "propertyName": "associations.contact",
                            "operator": "EQ",
                            "value": digits_id("contact.id", call.contact.id, "HubSpot"),
                        },
                        {"propertyName": "hs_createdate", "operator": "GTE", "value": str(created_after)},
                    ]
                }
            ],
            "properties": [_BODY],
            "limit": _SEARCH_LIMIT,
        }
        body = await self.request(
            call,
            "POST",
            f"{_COMMUNICATIONS}/search",
            json=search,
            operation="find_communication",
            repeatable=True,  # a search changes nothing
        )
        results = field_at(body, "results")
        for found in results if isinstance(results, list) else []:
            properties = found.get("properties") if isinstance(found, dict) else None
            if isinstance(properties, dict) and marker in str(properties.get(_BODY) or ""):
                return record_id(found, "id")
        return None

    async def update(self, call: CrmCall, log_id: str, record: RenderedRecord) -> Written:
        await self.request(
            call,
            "PATCH",
            _communication_path(log_id),
            json={"properties": {_BODY: record.body, "hs_timestamp": _timestamp(record)}},
            operation="update_communication",
        )
        return Written(log_id)

    def error_for(self, response: httpx.Response, operation: str) -> CrmError:
        error = super().error_for(response, operation)
        if isinstance(error, CrmRateLimited) and error.retry_after is None:
            error.retry_after = _policy_wait(response)
        return error

    async def _owner_id(self, call: CrmCall) -> str:
        """The owner id of the call's user, or "" when the user id is not numeric or names no owner."""
        if not (call.user.id.isascii() and call.user.id.isdigit()):
            return ""

        async def fetch() -> str:
            try:
                body = await self.request(
                    call,
                    "GET",
                    f"/crm/v3/owners/{call.user.id}",
                    params={"idProperty": "userId"},
                    operation="get_owner",
                )
            except CrmRecordNotFound:
                return ""
            except CrmAuthFailed as refused:
                # 403: a token without the owners scope still logs, without an owner; a refused
                # token (401) is refused again by the create.
                if refused.http_status != 403:
                    raise
                return ""
            return record_id(body, "id")

        return await self._owners.get_or_fetch((call.account, call.user.id), fetch)

    @staticmethod
    def _associations(call: CrmCall) -> list[dict[str, Any]]:
        targets = [(digits_id("contact.id", call.contact.id, "HubSpot"), _TO_CONTACT)]
        if deal := call.extras.get("deals", ""):
            targets.append((digits_id("additional_submission[deals]", deal, "HubSpot"), _TO_DEAL))
        return [
            {
                "to": {"id": target},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
            }
            for target, type_id in targets
        ]


def _timestamp(record: RenderedRecord) -> str:
    """Where the communication sits on the timeline: the earliest message's time."""
    return record.first_time.isoformat().replace("+00:00", "Z")


def _communication_path(log_id: str) -> str:
    return f"{_COMMUNICATIONS}/{digits_id('log_id', log_id, 'HubSpot')}"


def _policy_wait(response: httpx.Response) -> float | None:
    """The wait a 429's body implies: its policyName, or the search API's secondly message."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    for named in (body.get("policyName"), body.get("message")):
        if isinstance(named, str) and named in _WAIT_SECONDS:
            return _WAIT_SECONDS[named]
    return None
