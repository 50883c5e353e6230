"""Calling one adapter method against a served fake, without the server around it."""

from __future__ import annotations

from datetime import UTC

import httpx

from service.adapters.base import CrmCall, HttpCrmAdapter
from service.adapters.registry import adapter_class
from service.config import CrmSettings
from service.model import ContactInfo, UserInfo
from tests.fakes.base import FakeCrm


async def account_key(fake: FakeCrm, crm: str, auth: str, hostname: str = "", **user_info: str) -> str:
    """The account the adapter's identity lookup names for `auth`, as the fake answers it."""
    async with fake.serve() as url, httpx.AsyncClient() as http:
        settings = CrmSettings(base_url=url, timeout_seconds=5)
        adapter: HttpCrmAdapter = adapter_class(crm)(http=http, settings=settings)
        call = CrmCall(
            user=UserInfo("1001", hostname, UTC, "UTC", "", user_info),
            contact=ContactInfo("42", "Jane Doe", "+15550100", "contact", "", ""),
            authorization=auth,
            extras={},
        )
        return (await adapter.verify_account(call)).key
