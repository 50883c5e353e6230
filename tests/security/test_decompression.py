"""Compressed CRM replies: the size cap counts decoded bytes, and stacked encodings are refused.

A reply of a few kilobytes of gzip can decode to gigabytes; counting the bytes on the wire let a
204 KB reply take the process to 695 MB (issue 12, item 5).
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest

from service.errors import CrmBadResponse
from service.outbound import MAX_RESPONSE_BYTES, GuardedTransport
from tests.fakes.base import FakeRequest, FakeResponse, Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms

CRM_URL = "https://acme.pipedrive.com/api/v2/activities"
TRUSTED = (("https", "acme.pipedrive.com", 443),)


def created_reply(padding: int) -> bytes:
    """Pipedrive's answer to a create, padded to about `padding` bytes of JSON."""
    return json.dumps({"success": True, "data": {"id": 1, "pad": "x" * padding}}).encode()


def replying(body: bytes, encoding: str) -> httpx.AsyncClient:
    transport = GuardedTransport(
        httpx.MockTransport(
            # A stream, as a transport hands it over: Response(content=...) would decode it at once.
            lambda request: httpx.Response(
                200, stream=httpx.ByteStream(body), headers={"Content-Encoding": encoding}
            )
        ),
        trusted=TRUSTED,
    )
    return httpx.AsyncClient(transport=transport)


class CompressingPipedrive(FakePipedrive):
    """Pipedrive whose next create is answered with the given raw body and Content-Encoding."""

    def __init__(self, body: bytes, encoding: str) -> None:
        super().__init__()
        self.compressed = (body, encoding)

    async def handle(self, request: FakeRequest) -> FakeResponse | Fault:
        answer = await super().handle(request)
        if request.method != "POST" or not isinstance(answer, FakeResponse):
            return answer
        body, encoding = self.compressed
        return FakeResponse(201, raw=body, headers={"Content-Encoding": encoding, **answer.headers})


async def test_a_gzip_bomb_through_the_server_is_crm_bad_response(make_harness: Callable[..., Any]) -> None:
    bomb = gzip.compress(created_reply(4 * MAX_RESPONSE_BYTES))
    assert len(bomb) < MAX_RESPONSE_BYTES // 100  # small on the wire

    async with make_harness(CompressingPipedrive(bomb, "gzip"), "Bearer pd-token") as h:
        status = await h.add_error(add_request("pipedrive", sms("m1")))

    assert status.code == grpc.StatusCode.INTERNAL
    assert status.reason == "CRM_BAD_RESPONSE"


async def test_stacked_encodings_through_the_server_are_crm_bad_response(
    make_harness: Callable[..., Any],
) -> None:
    twice = gzip.compress(gzip.compress(created_reply(10)))

    async with make_harness(CompressingPipedrive(twice, "gzip, gzip"), "Bearer pd-token") as h:
        status = await h.add_error(add_request("pipedrive", sms("m1")))

    assert status.code == grpc.StatusCode.INTERNAL
    assert status.reason == "CRM_BAD_RESPONSE"


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("x-gzip", gzip.compress)],
)
async def test_a_reply_decoding_past_the_cap_is_refused(
    encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    async with replying(compress(b"x" * (MAX_RESPONSE_BYTES + 1)), encoding) as client:
        with pytest.raises(CrmBadResponse, match="larger than"):
            await client.get(CRM_URL)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("identity", bytes), ("GZIP", gzip.compress)],
)
async def test_a_compressed_reply_within_the_cap_is_decoded_once(
    encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    body = created_reply(MAX_RESPONSE_BYTES - 100)
    async with replying(compress(body), encoding) as client:
        response = await client.get(CRM_URL)

    assert response.content == body
    assert response.json()["data"]["id"] == 1


@pytest.mark.parametrize("encoding", ["gzip, gzip", "gzip,deflate", "deflate, identity, gzip", "br", "zstd"])
async def test_stacked_or_unrequested_encodings_are_refused(encoding: str) -> None:
    async with replying(gzip.compress(b"{}"), encoding) as client:
        with pytest.raises(CrmBadResponse):
            await client.get(CRM_URL)


@pytest.mark.parametrize("body", [b"not gzip at all", gzip.compress(b'{"data": 1}')[:-12]])
async def test_a_malformed_or_truncated_compressed_reply_is_refused(body: bytes) -> None:
    async with replying(body, "gzip") as client:
        with pytest.raises(CrmBadResponse):
            await client.get(CRM_URL)
