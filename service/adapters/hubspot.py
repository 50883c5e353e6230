"""HubSpot: each record is a communication (CRM v3 object, channel SMS) associated with the contact.

- Host: always api.hubapi.com; user.hostname is not used (HubSpot has one API host for every account).
- Auth: crm-authorization is sent as the Authorization header ("Bearer <token>", OAuth or private app).
- user.platform_additional_info: not used.
- The body is HTML: HubSpot shows a communication's body as rich text, and every caller-supplied
  character in it is already escaped by the renderer.
- Every kind (SMS, voicemail, fax) is logged with channel type SMS, the only phone channel HubSpot's
  communications accept (the others are WHATS_APP and LINKEDIN_MESSAGE).
- user.id, when numeric, becomes hubspot_owner_id; hs_timestamp is the first message's time.
- additional_submission: "deals" (a deal id) also associates the communication with that deal.
- CRM calls: create is one POST /crm/v3/objects/communications with the associations inline;
  append is one PATCH /crm/v3/objects/communications/{id} replacing hs_communication_body.
- Association type ids 81 (communication to contact) and 85 (communication to deal) are HubSpot's
  HUBSPOT_DEFINED ids as published in a HubSpot client library; HubSpot's own table was not read.
"""

from __future__ import annotations

from typing import Any

from service.adapters.base import AccountLookup, CrmCall, HttpCrmAdapter, Written, record_id
from service.adapters.fields import digits_id
from service.render import BodyFormat, RenderedRecord

_COMMUNICATIONS = "/crm/v3/objects/communications"
_TO_CONTACT = 81
_TO_DEAL = 85


class HubspotAdapter(HttpCrmAdapter):
    name = "hubspot"
    body_format = BodyFormat.HTML
    host_patterns = (r"api\.hubapi\.com",)
    default_base_url = "https://api.hubapi.com"
    # The portal (HubSpot account) the token belongs to; api.hubapi.com is every portal's host.
    identity = AccountLookup("/account-info/v3/details", account_at=("portalId",))

    def validate(self, call: CrmCall) -> None:
        super().validate(call)
        self._associations(call)

    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        properties = {
            "hs_communication_channel_type": "SMS",
            "hs_communication_logged_from": "CRM",
            "hs_communication_body": record.body,
            "hs_timestamp": record.first_time.isoformat().replace("+00:00", "Z"),
        }
        if call.user.id.isdigit():
            properties["hubspot_owner_id"] = call.user.id
        body = await self.request(
            call,
            "POST",
            _COMMUNICATIONS,
            json={"properties": properties, "associations": self._associations(call)},
            operation="create_communication",
        )
        return Written(record_id(body, "id"))

    async def update(self, call: CrmCall, log_id: str, record: RenderedRecord) -> Written:
        await self.request(
            call,
            "PATCH",
            f"{_COMMUNICATIONS}/{digits_id('log_id', log_id, 'HubSpot')}",
            json={"properties": {"hs_communication_body": record.body}},
            operation="update_communication",
        )
        return Written(log_id)

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
