"""One entry per adapter: how the shared contract suite reaches it and its fake CRM.

Adding a CRM adds one CrmCase here; every scenario in test_contract.py then runs against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tests.fakes.base import FakeCrm
from tests.fakes.bullhorn import FakeBullhorn
from tests.fakes.clio import FakeClio
from tests.fakes.generic import FakeGeneric
from tests.fakes.googlesheets import SPREADSHEET_ID, FakeGoogleSheets
from tests.fakes.hubspot import FakeHubspot
from tests.fakes.insightly import FakeInsightly
from tests.fakes.netsuite import ACCOUNT_HOST, FakeNetSuite
from tests.fakes.pipedrive import FakePipedrive
from tests.fakes.redtail import FakeRedtail
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.zoho import FakeZoho


@dataclass(frozen=True)
class CrmCase:
    crm: str
    make_fake: Callable[[], FakeCrm]
    auth: str
    hostname: str
    html: bool
    contact_id: str = "42"
    user_id: str = "1001"
    extras: dict[str, str] = field(default_factory=dict)
    # user.platform_additional_info the adapter needs (a REST URL, a spreadsheet id...).
    user_info: dict[str, str] = field(default_factory=dict)
    # CRM write requests (not lookups) one create and one append cost.
    writes_per_create: int = 1
    writes_per_append: int = 1
    # The HTTP method of the request that creates a record.
    create_method: str = "POST"

    def __str__(self) -> str:
        return self.crm


CASES = [
    CrmCase(
        "bullhorn",
        FakeBullhorn,
        auth="bh-rest-token",
        hostname="cls22.bullhornstaffing.com",
        html=True,
        extras={"noteActions": "SMS"},
        create_method="PUT",
        user_info={"rest_url": "https://rest22.bullhornstaffing.com/rest-services/abc123/"},
    ),
    CrmCase(
        "clio",
        FakeClio,
        auth="Bearer clio-token",
        hostname="app.clio.com",
        html=False,
        extras={"matters": "9001"},
    ),
    CrmCase("generic", FakeGeneric, auth="Bearer generic-token", hostname="crm.internal.example", html=False),
    CrmCase(
        "googlesheets",
        FakeGoogleSheets,
        auth="Bearer gs-token",
        hostname="",
        html=False,
        user_info={"spreadsheet_id": SPREADSHEET_ID},
    ),
    CrmCase("hubspot", FakeHubspot, auth="Bearer hs-token", hostname="", html=True, extras={"deals": "77"}),
    CrmCase(
        "insightly",
        FakeInsightly,
        auth="Basic aW5zaWdodGx5LWtleTo=",
        hostname="api.na1.insightly.com",
        html=False,
    ),
    CrmCase(
        "netsuite",
        FakeNetSuite,
        auth="Bearer ns-token",
        hostname=ACCOUNT_HOST,
        html=False,
        extras={"salesOrder": "880"},
    ),
    CrmCase(
        "pipedrive",
        FakePipedrive,
        auth="Bearer pd-token",
        hostname="acme.pipedrive.com",
        html=True,
        extras={"deals": "77"},
    ),
    CrmCase(
        "redtail",
        FakeRedtail,
        auth="Userkeyauth cnQtYXBpLWtleTpydC11c2VyLWtleQ==",
        hostname="smf.crm3.redtailtechnology.com",
        html=True,
    ),
    CrmCase(
        "salesforce",
        FakeSalesforce,
        auth="Bearer sf-token",
        hostname="",
        html=False,
        contact_id="003Ak00000AbCdEIAV",
        user_id="005Ak00000XyZ12IAB",
        extras={"opportunity": "006Ak00000Opp01IAA"},
        user_info={"instance_url": "https://acme.my.salesforce.com"},
    ),
    CrmCase(
        "zoho",
        FakeZoho,
        auth="Zoho-oauthtoken zoho-token",
        hostname="",
        html=False,
        contact_id="5725767000000202001",
        user_info={"api_domain": "https://www.zohoapis.eu"},
    ),
]
