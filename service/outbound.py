"""The HTTP client every adapter shares, made safe to point at hosts the caller names.

The caller chooses the CRM account host (within each CRM's allow-list, checked by the adapter
base), so DNS decides where a request really goes. `GuardedTransport` resolves the host itself,
refuses loopback, private, link-local, reserved, multicast and cloud-metadata addresses, and then
connects to the very address it checked (TLS still verifies the certificate against the host name),
so a DNS answer that changes between check and connect cannot steer a request inside. Origins of
configured MESSAGELOG_CRM_<NAME>_BASE_URL overrides are trusted as they are: staging and fakes
live on private addresses on purpose.

The guard knows the IPv6 forms that carry an IPv4 address (NAT64's 64:ff9b::/96, 6to4's
2002::/16, IPv4-mapped and IPv4-compatible addresses, Teredo's 2001::/32): such an address is as
public as the IPv4 address it embeds, since that is where a translator or relay delivers it. The
local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215) is not globally reachable, and where it embeds
its IPv4 address depends on the operator's prefix length, so it is refused outright.

Every reply is also capped: a body larger than MAX_RESPONSE_BYTES, counted both as received and
as decoded, is CRM_BAD_RESPONSE, and the whole exchange, body included, must finish within the
request's read timeout, so a CRM that drips bytes cannot hold a call past its budget. The guard
decodes replies itself, in bounded steps, because a few kilobytes of gzip can decode to gigabytes:
it offers gzip and deflate, takes at most one of them per reply, and refuses stacked encodings
(`gzip, gzip`), encodings it did not offer, and malformed or truncated compressed bodies.

One CRM account holds at most MAX_CONNECTIONS_PER_ACCOUNT of the pool's connections at once
(requests in flight, from sending to the reply read whole): one slow customer with many calls in
flight cannot take every connection and leave other customers' calls waiting. The account is the
request's `ACCOUNT_EXTENSION` where the caller of the client names one (a verified account on a
host every customer shares), else its host. A request that finds no free place before its
timeout is httpx.ConnectTimeout: nothing was sent.

No cookie is kept, at either layer (httpx's client, aiohttp's session): one client serves every
customer's account on a CRM host, and a kept session cookie would go out on the others' requests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import zlib
from collections.abc import Awaitable, Callable, Iterable
from http.cookiejar import Cookie, CookieJar
from typing import Any

import httpx

from service.aiohttp_transport import AiohttpTransport
from service.errors import CrmBadResponse, HostNotAllowed
from service.limits import current_account

MAX_RESPONSE_BYTES = 1024 * 1024
# Connections of the shared pool (POOL_CONNECTIONS) one account may hold at once (see module doc).
POOL_CONNECTIONS = 200
MAX_CONNECTIONS_PER_ACCOUNT = 32
# The request extension naming the account a request is made for, when its host does not.
ACCOUNT_EXTENSION = "messagelog_account"
# Metadata services answer on these; they are link-local or unique-local already, named so the
# refusal holds even if the address classes are ever relaxed.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)

# The codings the guard decodes (see _decoder), offered as such on every request.
ACCEPT_ENCODING = "gzip, deflate"
_WINDOW_BITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}

Origin = tuple[str, str, int]
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """Every address the host resolves to (literal addresses resolve to themselves)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


# IPv6 ranges whose last 32 bits are an IPv4 address: NAT64's well-known prefix (RFC 6052) and
# IPv4-compatible addresses (RFC 4291, deprecated; :: and ::1 fall in it and embed non-public ones).
_EMBEDDING_LAST_32_BITS = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::/96"))
_LOCAL_USE_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
_TEREDO = ipaddress.ip_network("2001::/32")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 address carries, or None when it carries none (see module doc)."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip in _TEREDO:
        server, client = ip.teredo or (None, None)
        return [address for address in (server, client) if address is not None]
    if any(ip in network for network in _EMBEDDING_LAST_32_BITS):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    return None


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _LOCAL_USE_NAT64:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return bool(embedded) and all(is_public(str(v4)) for v4 in embedded)
    return ip.is_global and not ip.is_multicast and ip not in METADATA_ADDRESSES


def _decoder(headers: httpx.Headers) -> zlib._Decompress | None:
    """The decompressor for a reply's Content-Encoding; None when it is not encoded."""
    codings = [
        coding
        for coding in (c.strip().lower() for c in headers.get_list("content-encoding", split_commas=True))
        if coding not in ("", "identity")
    ]
    if not codings:
        return None
    if len(codings) > 1:
        raise CrmBadResponse("the CRM reply is encoded more than once")
    window_bits = _WINDOW_BITS.get(codings[0])
    if window_bits is None:
        raise CrmBadResponse(f"the CRM reply has an encoding that was not offered ({codings[0][:20]!r})")
    return zlib.decompressobj(window_bits)


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
        max_connections_per_account: int = MAX_CONNECTIONS_PER_ACCOUNT,
    ) -> None:
        self._inner = inner
        self._trusted = frozenset(trusted)
        self._resolve = resolver
        self._max_bytes = max_response_bytes
        self._account_slots = _AccountSlots(max_connections_per_account)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = dict(request.extensions.get("timeout", {}))
        capacity = current_account.get()
        if capacity is None:
            return await self._pooled(request, timeouts)
        # The wait for the account's CRM budget comes out of the request's own time budget, which
        # the adapter bounded by the call's deadline.
        try:
            waited = await capacity.acquire(timeouts.get("read"))
        except TimeoutError:
            # Nothing reached the CRM: a connect timeout is what the adapters take as safe to retry.
            raise httpx.ConnectTimeout(
                "no capacity of this CRM account's budget was free within the call's deadline",
                request=request,
            ) from None
        try:
            if waited:
                timeouts = {k: None if v is None else max(v - waited, 0.001) for k, v in timeouts.items()}
                request.extensions = {**request.extensions, "timeout": timeouts}
            return await self._pooled(request, timeouts)
        finally:
            capacity.release()

    async def _pooled(self, request: httpx.Request, timeouts: dict[str, float | None]) -> httpx.Response:
        """Sends within the account's share of the shared pool."""
        account = str(request.extensions.get(ACCOUNT_EXTENSION) or request.url.host)
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._account_slots.take(account)
        except TimeoutError:
            raise httpx.ConnectTimeout(
                "every connection this CRM account may hold stayed busy", request=request
            ) from None
        try:
            return await self._exchange(request, timeouts.get("read"))
        finally:
            self._account_slots.give_back(account)

    async def _exchange(self, request: httpx.Request, budget: float | None) -> httpx.Response:
        deadline = None if budget is None else asyncio.get_running_loop().time() + budget
        if origin(request.url) not in self._trusted:
            await self._pin(request)
        request.headers["Accept-Encoding"] = ACCEPT_ENCODING
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
        # Decoded here: what httpx would decode again must not say it is still encoded.
        headers = response.headers.copy()
        headers.pop("content-encoding", None)
        headers["content-length"] = str(len(body))
        return CrmReply(
            status_code=response.status_code,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions=response.extensions,
        )

    async def _capped_body(self, response: httpx.Response) -> bytes:
        """The reply's body, decoded; received and decoded bytes each within the cap."""
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)  # what an async transport returns
        decoder = _decoder(response.headers)
        too_large = CrmBadResponse(f"the CRM reply is larger than {self._max_bytes} bytes")
        chunks = []
        received = decoded = 0
        async for chunk in stream:
            received += len(chunk)
            if received > self._max_bytes:
                raise too_large
            if decoder is not None:
                try:
                    # At most one byte past the cap is ever inflated, however dense the input.
                    chunk = decoder.decompress(chunk, self._max_bytes - decoded + 1)
                except zlib.error:
                    raise CrmBadResponse("the CRM reply's compressed body is malformed") from None
            decoded += len(chunk)
            if decoded > self._max_bytes:
                raise too_large
            chunks.append(chunk)
        if decoder is not None and received and (not decoder.eof or decoder.unused_data):
            raise CrmBadResponse("the CRM reply's compressed body is truncated or has trailing data")
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


class _AccountSlots:
    """Places in the shared pool, up to a limit per account; an account's semaphore lives while
    any request of it is in flight or waiting, so idle accounts cost nothing."""

    def __init__(self, per_account: int) -> None:
        self._per_account = per_account
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}

    async def take(self, account: str) -> None:
        semaphore, users = self._slots.get(account) or (asyncio.Semaphore(self._per_account), 0)
        self._slots[account] = (semaphore, users + 1)
        try:
            await semaphore.acquire()
        except BaseException:
            self._leave(account)
            raise

    def give_back(self, account: str) -> None:
        self._slots[account][0].release()
        self._leave(account)

    def _leave(self, account: str) -> None:
        semaphore, users = self._slots[account]
        if users == 1:
            del self._slots[account]
        else:
            self._slots[account] = (semaphore, users - 1)


class CrmReply(httpx.Response):
    """A guarded reply. Its JSON nested too deeply to parse is a ValueError (a body that is not
    JSON), as every other malformed body is, instead of a RecursionError."""

    def json(self, **kwargs: Any) -> Any:
        try:
            return json.loads(self.content, **kwargs)
        except RecursionError:
            raise ValueError("the reply's JSON is nested too deeply") from None


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


def http_client(
    trusted: Iterable[Origin],
    transport: str = "aiohttp",
    max_connections_per_account: int = MAX_CONNECTIONS_PER_ACCOUNT,
) -> httpx.AsyncClient:
    """The pooled client adapters share; TLS is always verified.

    Under the same httpx API and the same guard, "aiohttp" sends through aiohttp's connection pool
    (see service/aiohttp_transport.py). The guard's checked address reaches it as the URL's host,
    and the name as its SNI and Host header, as with httpcore."""
    inner: httpx.AsyncBaseTransport
    if transport == "aiohttp":
        inner = AiohttpTransport(
            ssl_context=httpx.create_ssl_context(verify=True), max_connections=POOL_CONNECTIONS
        )
    else:
        limits = httpx.Limits(max_connections=POOL_CONNECTIONS, max_keepalive_connections=50)
        inner = httpx.AsyncHTTPTransport(verify=True, limits=limits)
    guarded = GuardedTransport(
        inner, trusted=trusted, max_connections_per_account=max_connections_per_account
    )
    return _CookielessClient(transport=guarded, follow_redirects=False)
