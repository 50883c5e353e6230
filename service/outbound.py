"""The HTTP client every adapter shares, made safe to point at hosts the caller names.

The caller chooses the CRM account host (within each CRM's allow-list, checked by the adapter
base), so DNS decides where a request really goes. `GuardedTransport` resolves the host itself,
refuses loopback, private, link-local, reserved, multicast and cloud-metadata addresses, and then
connects to the very address it checked (TLS still verifies the certificate against the host name),
so a DNS answer that changes between check and connect cannot steer a request inside. Origins of
configured MESSAGELOG_CRM_<NAME>_BASE_URL overrides are trusted as they are: staging and fakes
live on private addresses on purpose.

Every reply is also capped: a body larger than MAX_RESPONSE_BYTES is CRM_BAD_RESPONSE, and the
whole exchange, body included, must finish within the request's read timeout, so a CRM that
drips bytes cannot hold a call past its budget.

No cookie is kept, at either layer (httpx's client, aiohttp's session): one client serves every
customer's account on a CRM host, and a kept session cookie would go out on the others' requests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from http.cookiejar import Cookie, CookieJar

import httpx

from service.aiohttp_transport import AiohttpTransport
from service.errors import CrmBadResponse, HostNotAllowed
from service.limits import current_account

MAX_RESPONSE_BYTES = 1024 * 1024
# Metadata services answer on these; they are link-local or unique-local already, named so the
# refusal holds even if the address classes are ever relaxed.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)

Origin = tuple[str, str, int]
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """Every address the host resolves to (literal addresses resolve to themselves)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast and ip not in METADATA_ADDRESSES


def origin(url: httpx.URL) -> Origin:
    return (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))


class GuardedTransport(httpx.AsyncBaseTransport):
    """Pins each request to a checked public address and reads its reply whole, capped; see the
    module docstring."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        trusted: Iterable[Origin] = (),
        resolver: Resolver = resolve,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self._inner = inner
        self._trusted = frozenset(trusted)
        self._resolve = resolver
        self._max_bytes = max_response_bytes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        account = current_account.get()
        if account is None:
            return await self._send(request)
        # The wait for the account's CRM capacity comes out of the request's own time budget, which
        # the adapter bounded by the call's deadline.
        timeouts: dict[str, float | None] = dict(request.extensions.get("timeout", {}))
        budget = timeouts.get("read")
        try:
            async with account.slot(budget) as waited:
                if waited:
                    left = {k: None if v is None else max(v - waited, 0.001) for k, v in timeouts.items()}
                    request.extensions = {**request.extensions, "timeout": left}
                return await self._send(request)
        except TimeoutError:
            # Nothing reached the CRM: a connect timeout is what the adapters take as safe to retry.
            raise httpx.ConnectTimeout(
                "no capacity of this CRM account's budget was free within the call's deadline",
                request=request,
            ) from None

    async def _send(self, request: httpx.Request) -> httpx.Response:
        budget = request.extensions.get("timeout", {}).get("read")
        deadline = None if budget is None else asyncio.get_running_loop().time() + budget
        if origin(request.url) not in self._trusted:
            await self._pin(request)
        response = await self._inner.handle_async_request(request)
        # Read here, whole, under one timer: adapters read every reply whole anyway, and a stream
        # the client pulled through would cost a timer per chunk and a layer of iteration.
        try:
            async with asyncio.timeout_at(deadline):
                body = await self._capped_body(response)
        except TimeoutError:
            raise httpx.ReadTimeout("the reply took too long", request=request) from None
        finally:
            await response.aclose()
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(body),
            extensions=response.extensions,
        )

    async def _capped_body(self, response: httpx.Response) -> bytes:
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)  # what an async transport returns
        chunks = []
        received = 0
        async for chunk in stream:
            received += len(chunk)
            if received > self._max_bytes:
                raise CrmBadResponse(f"the CRM reply is larger than {self._max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def _pin(self, request: httpx.Request) -> None:
        host = request.url.host
        try:
            addresses = await self._resolve(host, origin(request.url)[2])
        except OSError as exc:
            raise httpx.ConnectError(f"cannot resolve the CRM host ({type(exc).__name__})") from None
        # One private answer refuses the host: trying only the public ones would let a rebinding
        # name choose, per attempt, which answer wins.
        if not addresses or not all(is_public(a) for a in addresses):
            raise HostNotAllowed("user.hostname", host, "public CRM")
        request.extensions = {**request.extensions, "sni_hostname": host}
        # The Host header was fixed from the name when the request was built; only the socket moves.
        request.url = request.url.copy_with(host=addresses[0])


class _NullCookieJar(CookieJar):
    """A jar that stores no cookie, however one is offered (encode/httpx#1359)."""

    def set_cookie(self, cookie: Cookie) -> None:
        pass


class _NoCookies(httpx.Cookies):
    """The client's cookies: none, ever. Replies are not even prepared for the jar, which costs
    httpx two urllib objects (one parsing the URL again) per reply."""

    def __init__(self) -> None:
        super().__init__(_NullCookieJar())

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class _CookielessClient(httpx.AsyncClient):
    """An AsyncClient that keeps no cookies: it serves every customer's account on a CRM host, so a
    kept cookie (a CRM's session) would be sent on the next customer's requests. Adapters
    authenticate with headers and need none."""

    _no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise TypeError("the CRM client keeps no cookies")


def http_client(trusted: Iterable[Origin], transport: str = "aiohttp") -> httpx.AsyncClient:
    """The pooled client adapters share; TLS is always verified.

    Under the same httpx API and the same guard, "aiohttp" sends through aiohttp's connection pool
    (see service/aiohttp_transport.py). The guard's checked address reaches it as the URL's host,
    and the name as its SNI and Host header, as with httpcore."""
    inner: httpx.AsyncBaseTransport
    if transport == "aiohttp":
        inner = AiohttpTransport(ssl_context=httpx.create_ssl_context(verify=True), max_connections=200)
    else:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        inner = httpx.AsyncHTTPTransport(verify=True, limits=limits)
    return _CookielessClient(transport=GuardedTransport(inner, trusted=trusted), follow_redirects=False)
