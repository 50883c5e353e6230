"""An httpx transport that sends through aiohttp's connection pool, keeping the httpx API for adapters.

httpcore's pool loses most of its throughput and its p99 goes past 100 ms with a few dozen
requests in flight on one client (encode/httpx#3215); aiohttp's does not (`make bench`,
instant against instant-httpx). The packaged httpx-aiohttp transport was not used: it reports a
connection dropped after the request was sent as httpx.ConnectTimeout, which the adapter base
rightly reads as "nothing reached the CRM" and retries at once, so a create could be made twice.
Here the mapping keeps that distinction: only failures before a connection exists are
ConnectError/ConnectTimeout; everything after is a read error or a read timeout.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import aiohttp
import httpx

_CHUNK_BYTES = 64 * 1024


def _mapped(exc: BaseException) -> httpx.TransportError:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc))
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc))
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return httpx.ReadTimeout(str(exc) or "the reply took too long")
    return httpx.ReadError(f"{type(exc).__name__}: {exc}")


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, ssl_context: ssl.SSLContext, max_connections: int) -> None:
        self._ssl = ssl_context
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: an aiohttp session belongs to the running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl),
                # It serves every customer's account on a CRM host: see service/outbound.py on cookies.
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,  # httpx decodes, as it does over httpcore
                trust_env=False,
            )
            # aiohttp resends an idempotent request (PUT, PATCH is not) once when a kept-alive
            # connection drops, which RFC 9112 allows; but a write whose connection dropped may
            # have been applied, and the digest logic must see that (it holds the record until
            # such a write settles) rather than have it silently repeated. No public switch exists.
            self._session._retry_connection = False
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        try:
            response = await self._client().request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=body or None,
                allow_redirects=False,
                server_hostname=request.extensions.get("sni_hostname"),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeouts.get("pool"),
                    sock_connect=timeouts.get("connect"),
                    sock_read=timeouts.get("read"),
                ),
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _mapped(exc) from None
        return httpx.Response(
            status_code=response.status,
            # As received, the way httpcore hands them over: httpx decodes a value when it is read.
            headers=response.raw_headers,
            stream=_AiohttpStream(response),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _AiohttpStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(_CHUNK_BYTES):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _mapped(exc) from None

    async def aclose(self) -> None:
        self._response.release()
