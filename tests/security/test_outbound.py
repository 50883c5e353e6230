"""Outbound safety: no SSRF through DNS, verified TLS, size- and time-capped replies."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import httpx
import pytest
from aiohttp import web

from service.errors import CrmBadResponse, HostNotAllowed
from service.outbound import MAX_RESPONSE_BYTES, GuardedTransport, Origin, http_client
from tests.fakes.base import Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms
from tests.security.conftest import Pki

CRM_URL = "https://acme.pipedrive.com/api/v2/activities"


def resolving_to(*addresses: str) -> Callable[[str, int], Any]:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


def guarded(resolver: Any, seen: list[httpx.Request], trusted: tuple[Origin, ...] = ()) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    transport = GuardedTransport(httpx.MockTransport(answer), trusted=trusted, resolver=resolver)
    return httpx.AsyncClient(transport=transport)


@pytest.mark.parametrize(
    "addresses",
    [
        ("127.0.0.1",),
        ("10.1.2.3",),
        ("172.16.0.9",),
        ("192.168.1.1",),
        ("169.254.169.254",),  # cloud metadata
        ("fd00:ec2::254",),  # cloud metadata over IPv6
        ("::1",),
        ("::ffff:127.0.0.1",),  # loopback dressed as IPv6
        ("100.64.0.1",),  # carrier-grade NAT
        ("0.0.0.0",),  # noqa: S104
        ("224.0.0.1",),
        ("93.184.215.14", "10.0.0.1"),  # one private answer is enough to refuse
        (),
    ],
)
async def test_a_host_resolving_to_an_internal_address_is_refused_before_sending(
    addresses: tuple[str, ...],
) -> None:
    seen: list[httpx.Request] = []
    async with guarded(resolving_to(*addresses), seen) as client:
        with pytest.raises(HostNotAllowed):
            await client.get(CRM_URL)
    assert seen == []


async def test_a_public_host_is_connected_at_the_address_that_was_checked() -> None:
    seen: list[httpx.Request] = []
    async with guarded(resolving_to("93.184.215.14", "93.184.215.15"), seen) as client:
        response = await client.get(CRM_URL)

    assert response.status_code == 200
    (sent,) = seen
    # The socket goes to the checked address; Host and the TLS name stay the CRM's.
    assert sent.url.host == "93.184.215.14"
    assert sent.headers["host"] == "acme.pipedrive.com"
    assert sent.extensions["sni_hostname"] == "acme.pipedrive.com"


async def test_a_configured_base_url_override_is_trusted_as_it_is() -> None:
    def never(host: str, port: int) -> Any:
        raise AssertionError("an override must not be resolved")

    seen: list[httpx.Request] = []
    async with guarded(never, seen, trusted=(("http", "127.0.0.1", 8080),)) as client:
        await client.get("http://127.0.0.1:8080/api")

    assert seen[0].url.host == "127.0.0.1"


async def test_through_the_server_a_crm_host_resolving_inside_is_crm_host_not_allowed(
    make_harness: Callable[..., Any], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def getaddrinfo(host: str, port: int, **kw: Any) -> list[Any]:
        return [(2, 1, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    # No base URL override: the adapter aims at the real https://acme.pipedrive.com.
    async with make_harness(FakePipedrive(), "Bearer pd-token", MESSAGELOG_CRM_PIPEDRIVE_BASE_URL="") as h:
        status = await h.add_error(add_request("pipedrive", sms("m1")))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.reason == "CRM_HOST_NOT_ALLOWED"
    assert h.fake.requests == []


async def test_a_reply_larger_than_the_cap_is_crm_bad_response(make_harness: Callable[..., Any]) -> None:
    fake = FakePipedrive()
    fake.inject(Fault(status=201, body={"data": {"id": 1, "pad": "x" * MAX_RESPONSE_BYTES}}, method="POST"))
    async with make_harness(fake, "Bearer pd-token") as h:
        status = await h.add_error(add_request("pipedrive", sms("m1")))

    assert status.code == grpc.StatusCode.INTERNAL
    assert status.reason == "CRM_BAD_RESPONSE"


async def test_a_reply_that_drips_past_the_timeout_is_cut_off() -> None:
    class Drip(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for _ in range(100):
                await asyncio.sleep(0.05)  # each chunk is prompt; the whole reply is not
                yield b"x"

    transport = GuardedTransport(
        httpx.MockTransport(lambda request: httpx.Response(200, stream=Drip())),
        trusted=(("https", "acme.pipedrive.com", 443),),
    )
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(CRM_URL, timeout=0.3)


async def test_the_size_cap_holds_for_a_streamed_reply_without_length() -> None:
    class Endless(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            while True:
                yield b"x" * 65536

    transport = GuardedTransport(
        httpx.MockTransport(lambda request: httpx.Response(200, stream=Endless())),
        trusted=(("https", "acme.pipedrive.com", 443),),
    )
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(CrmBadResponse):
            await client.get(CRM_URL)


async def test_tls_to_the_crm_is_verified(pki: Pki) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server.cert_file, pki.server.key_file)

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with http_client(trusted=[("https", "127.0.0.1", port)]) as client:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(f"https://127.0.0.1:{port}/")
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_cookie_from_one_accounts_reply_is_never_sent_on_a_later_request(transport: str) -> None:
    # One client serves every customer's account on a CRM host: a kept cookie (a CRM's session)
    # would travel on the next customer's requests.
    cookies_received: list[str | None] = []

    async def answer(request: web.Request) -> web.Response:
        cookies_received.append(request.headers.get("Cookie"))
        response = web.json_response({"ok": True})
        response.set_cookie("crm_session", request.headers["Authorization"].removeprefix("Bearer "))
        return response

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    # A host name, not an address: cookie jars refuse cookies from bare IP addresses by themselves.
    url = f"http://localhost:{port}/"
    try:
        async with http_client(trusted=[("http", "localhost", port)], transport=transport) as client:
            for account_token in ("account-a", "account-b", "account-a"):
                response = await client.get(url, headers={"Authorization": f"Bearer {account_token}"})
                assert response.headers["set-cookie"].startswith("crm_session=")
    finally:
        await runner.cleanup()

    assert cookies_received == [None, None, None]
