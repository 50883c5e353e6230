"""One CRM account cannot take every connection of the shared pool.

Issue 12, item 9: every CRM account shared one pool of 200 connections, so one slow customer with
enough calls in flight left every other customer waiting for a connection until it timed out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from aiohttp import web

from service.outbound import ACCOUNT_EXTENSION, MAX_CONNECTIONS_PER_ACCOUNT, http_client

# More than the whole pool: before the fix these took every connection.
SLOW_CALLS = 210


@dataclass
class SlowCrm:
    """A CRM server where /slow answers only once released, and /fast at once."""

    port: int
    release: asyncio.Event = field(default_factory=asyncio.Event)
    holding: int = 0  # /slow requests received and not yet answered
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def holds(self, count: int) -> None:
        async with asyncio.timeout(5), self.arrived:
            await self.arrived.wait_for(lambda: self.holding >= count)


@pytest.fixture
async def crm() -> AsyncIterator[SlowCrm]:
    server = SlowCrm(port=0)

    async def slow(request: web.Request) -> web.Response:
        async with server.arrived:
            server.holding += 1
            server.arrived.notify_all()
        await server.release.wait()
        return web.json_response({"ok": True})

    async def fast(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/fast", fast)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_slow_account_holds_at_most_its_share_and_others_still_connect(
    crm: SlowCrm, transport: str
) -> None:
    port = crm.port
    # Two accounts on one CRM server, told apart by host name as CRM account hosts are.
    slow_account, other_account = f"http://127.0.0.1:{port}", f"http://localhost:{port}"
    trusted = [("http", "127.0.0.1", port), ("http", "localhost", port)]
    async with http_client(trusted, transport) as client:
        slow_calls = [
            asyncio.create_task(client.get(f"{slow_account}/slow", timeout=20)) for _ in range(SLOW_CALLS)
        ]
        await crm.holds(MAX_CONNECTIONS_PER_ACCOUNT)
        await asyncio.sleep(0.2)  # time for any more to get through, were they allowed to

        other = await client.get(f"{other_account}/fast", timeout=2)
        held_at_once = crm.holding

        crm.release.set()
        answered = await asyncio.gather(*slow_calls)

    assert other.status_code == 200
    assert held_at_once == MAX_CONNECTIONS_PER_ACCOUNT
    # The slow account's calls beyond its share waited for a connection; none failed.
    assert [r.status_code for r in answered] == [200] * SLOW_CALLS


async def test_waiting_past_the_timeout_for_an_accounts_connection_is_a_connect_timeout(
    crm: SlowCrm,
) -> None:
    port = crm.port
    account = f"http://127.0.0.1:{port}"
    async with http_client([("http", "127.0.0.1", port)]) as client:
        held = [
            asyncio.create_task(client.get(f"{account}/slow", timeout=20))
            for _ in range(MAX_CONNECTIONS_PER_ACCOUNT)
        ]
        await crm.holds(MAX_CONNECTIONS_PER_ACCOUNT)

        # Nothing was sent: the adapter base may retry it, as it does a refused connection.
        with pytest.raises(httpx.ConnectTimeout):
            await client.get(f"{account}/fast", timeout=0.3)
        for call in held:
            call.cancel()
        await asyncio.gather(*held, return_exceptions=True)


async def test_accounts_sharing_one_host_are_limited_apart_by_their_verified_account(crm: SlowCrm) -> None:
    # HubSpot, Sheets, Zoho...: every customer on one host; the adapter base names the verified account.
    host = f"http://127.0.0.1:{crm.port}"
    async with http_client([("http", "127.0.0.1", crm.port)]) as client:
        slow_calls = [
            asyncio.create_task(
                client.get(f"{host}/slow", timeout=20, extensions={ACCOUNT_EXTENSION: "portal-1"})
            )
            for _ in range(SLOW_CALLS)
        ]
        await crm.holds(MAX_CONNECTIONS_PER_ACCOUNT)

        other = await client.get(f"{host}/fast", timeout=2, extensions={ACCOUNT_EXTENSION: "portal-2"})
        held_at_once = crm.holding

        crm.release.set()
        await asyncio.gather(*slow_calls)

    assert other.status_code == 200
    assert held_at_once == MAX_CONNECTIONS_PER_ACCOUNT
