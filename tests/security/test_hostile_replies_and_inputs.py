"""Hostile CRM replies and hostile inputs each get a precise status, never INTERNAL or UNKNOWN by accident.

Issue 12, item 8: deeply nested JSON, absurd rate-limit headers, unbounded or path-like record ids,
host fields with ports, paths or userinfo, IPv6 forms that embed an internal IPv4 address, line
separators that forge digest lines, and malformed hosts and time zones.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
from messagelog.v1 import message_log_pb2 as pb

from service.errors import HostNotAllowed
from service.model import ContactInfo, Direction, Entry, Kind
from service.outbound import GuardedTransport, is_public
from service.render import BodyFormat, DigestView, clean, render
from tests.conftest import Harness
from tests.fakes.base import FakeRequest, FakeResponse, Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.fakes.salesforce import FakeSalesforce
from tests.helpers import add_request, sms, update_request

AUTH = "Bearer pd-token"


def recent() -> str:
    """A creation time an hour ago, as the requests carry it."""
    return (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def message(message_id: str, text: str = "Hello there") -> pb.Message:
    return sms(message_id, recent(), text)


class RawReplyPipedrive(FakePipedrive):
    """Pipedrive whose creates are answered 201 with the given raw body (a hostile or broken CRM)."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.raw_reply = body

    async def handle(self, request: FakeRequest) -> FakeResponse | Fault:
        answer = await super().handle(request)
        if request.method != "POST" or not isinstance(answer, FakeResponse):
            return answer
        return FakeResponse(201, raw=self.raw_reply, headers={"Content-Type": "application/json"})


# --- hostile CRM replies ---------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [100_000, 5_000])
async def test_deeply_nested_json_is_crm_bad_response(make_harness: Callable[..., Any], depth: int) -> None:
    nested = b'{"success": true, "data": ' + b"[" * depth + b"]" * depth + b"}"
    async with make_harness(RawReplyPipedrive(nested), AUTH) as h:
        status = await h.add_error(add_request("pipedrive", message("m1")))

    assert status.code == grpc.StatusCode.INTERNAL
    assert status.reason == "CRM_BAD_RESPONSE"


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "9" * 400},  # overflows to infinity as a float
        {"Retry-After": "99999999999999"},  # three million years
        {"X-RateLimit-Reset": "inf"},
        {"X-RateLimit-Reset": "-inf"},
        {"X-RateLimit-Reset": "NaN"},
        {"X-RateLimit-Reset": "1e308"},
        {"Retry-After": "\u00b2"},  # a digit to str.isdigit, not to float
    ],
)
async def test_absurd_rate_limit_headers_are_crm_rate_limited_with_a_bounded_retry(
    make_harness: Callable[..., Any], headers: dict[str, str]
) -> None:
    fake = FakePipedrive()
    body = {"success": False, "error": "Too many requests", "data": None, "additional_data": None}
    fake.inject(Fault(status=429, body=body, headers=headers, method="POST"), times=3)
    async with make_harness(fake, AUTH, MESSAGELOG_CRM_MAX_ATTEMPTS="1") as h:
        status = await h.add_error(add_request("pipedrive", message("m1")))

    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "CRM_RATE_LIMITED"
    if status.retry_info is not None:
        assert 0 <= status.retry_info.retry_delay.seconds <= 24 * 3600


@pytest.mark.parametrize(
    "log_id", ["x" * 256, "x" * 900_000, "..", ".", "a/b", "../1", "1\n2", "1\x7f", "1 2", "%2e%2e"]
)
async def test_a_record_id_that_is_unbounded_or_path_like_is_crm_bad_response(
    make_harness: Callable[..., Any], log_id: str
) -> None:
    fake = FakePipedrive()
    fake.inject(Fault(status=201, body={"success": True, "data": {"id": log_id}}, method="POST"))
    async with make_harness(fake, AUTH) as h:
        status = await h.add_error(add_request("pipedrive", message("m1")))
        # Nothing was kept of it: the message is not "already logged" under that id.
        again = await h.add(add_request("pipedrive", message("m1")))

    assert status.code == grpc.StatusCode.INTERNAL
    assert status.reason == "CRM_BAD_RESPONSE"
    assert again.log_id != log_id


@pytest.mark.parametrize(
    "log_id", ["..", ".", "a/b", "../1", "1\n2", "1\x01", "1 2", "1?x", "1#x", "%2e%2e", "1\\2"]
)
async def test_a_path_like_log_id_in_an_update_is_invalid_argument(
    make_harness: Callable[..., Any], log_id: str
) -> None:
    async with make_harness(FakePipedrive(), AUTH) as h:
        status = await h.update_error(update_request(add_request("pipedrive", message("m1")), log_id))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "log_id" in status.fields
    assert h.fake.requests == []


# --- hostile inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hostname",
    [
        "acme.pipedrive.com:8443",
        "acme.pipedrive.com:80:81",
        "acme.pipedrive.com/other/path",
        "acme.pipedrive.com/..",
        "user:pw@acme.pipedrive.com",
        "acme.pipedrive.com?x=1",
        "acme.pipedrive.com#x",
        "acme.pipedrive.com\uff03",  # a fullwidth number sign, which NFKC turns into "#"
        "acme.pipedrive.com\\evil",
        "acme.pipedrive.com.",
        "acme..pipedrive.com",
    ],
)
async def test_a_hostname_with_a_port_path_userinfo_or_odd_character_is_invalid_argument(
    make_harness: Callable[..., Any], hostname: str
) -> None:
    async with make_harness(FakePipedrive(), AUTH) as h:
        status = await h.add_error(add_request("pipedrive", message("m1"), hostname=hostname))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "user.hostname" in status.fields
    assert h.fake.requests == []


@pytest.mark.parametrize(
    "instance_url",
    [
        "https://acme.my.salesforce.com:8443",
        "https://user:pw@acme.my.salesforce.com",
        "https://acme.my.salesforce.com/../../other",
        "https://acme.my.salesforce.com/%2e%2e/other",
        "https://acme.my.salesforce.com?x=1",
        "https://acme.my.salesforce.com:80:81",
        "https://acme.my.salesforce.com\uff03",
    ],
)
async def test_an_account_url_with_a_port_userinfo_or_dot_segments_is_invalid_argument(
    make_harness: Callable[..., Any], instance_url: str
) -> None:
    request = add_request(
        "salesforce",
        message("m1"),
        hostname="",
        user_id="005Ak00000XyZ12IAB",
        contact_id="003Ak00000AbCdEIAV",
        user_info={"instance_url": instance_url},
    )
    async with make_harness(FakeSalesforce(), "Bearer sf-token") as h:
        status = await h.add_error(request)

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "user.platform_additional_info[instance_url]" in status.fields
    assert h.fake.requests == []


@pytest.mark.parametrize("zone", ["America", "Europe", "Etc", "America/", "posix", "right"])
async def test_a_time_zone_naming_a_directory_is_invalid_argument(pipedrive: Harness, zone: str) -> None:
    status = await pipedrive.add_error(add_request("pipedrive", message("m1"), time_zone=zone))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "user.time_zone" in status.fields


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata service 169.254.169.254
        "64:ff9b:1:a00:0:100::",  # local-use NAT64 (RFC 8215), /48 form, of 10.0.0.1
        "64:ff9b:1::7f00:1",  # local-use NAT64, /96 form, of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
        "::a00:1",  # IPv4-compatible 10.0.0.1
        "::127.0.0.1",
        "::ffff:10.0.0.1",  # IPv4-mapped
        "2001:0:a00:1:0:ffff:f5ff:fffe",  # Teredo: server 10.0.0.1, client 10.0.0.1 (obfuscated)
    ],
)
async def test_ipv6_forms_embedding_an_internal_ipv4_address_are_refused(address: str) -> None:
    assert not is_public(address)

    async def resolve(host: str, port: int) -> list[str]:
        return [address]

    sent: list[httpx.Request] = []
    transport = GuardedTransport(
        httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200)), resolver=resolve
    )
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(HostNotAllowed):
            await client.get("https://acme.pipedrive.com/api/v2/activities")
    assert sent == []


@pytest.mark.parametrize("address", ["64:ff9b::5db8:d70e", "2002:5db8:d70e::1", "2606:4700::6810:84e5"])
def test_ipv6_forms_embedding_a_public_ipv4_address_stay_public(address: str) -> None:
    assert is_public(address)


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1e"])
def test_line_and_paragraph_separators_cannot_forge_a_digest_line(separator: str) -> None:
    forged = f"ok{separator}Alice Agent at 9:05 AM EST{separator}    please pay invoice to IBAN XX00"
    entry = Entry("m1", datetime.now(UTC), Direction.INBOUND, forged, "", "+16505553204")
    contact = ContactInfo("42", "Jane Doe", "+16505553204", "person", "", "")
    view = DigestView(Kind.SMS, contact, "Alice Agent", UTC, "UTC", entry.created_at.date(), [entry])

    assert separator not in clean(forged)
    assert separator not in render(view, BodyFormat.HTML).body
    text = render(view, BodyFormat.TEXT).body
    assert separator not in text
    # The forged header is never a line of its own: it stays indented text of message m1.
    assert not any(line.startswith("Alice Agent at 9:05") for line in text.splitlines())
