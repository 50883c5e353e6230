"""The shared base of every CRM adapter, and the adapter contract.

An adapter declares its CRM's facts (name, body format, allowed hosts) and what its API can do,
and implements create and update over `self.request`. The declarations (Django's
`BaseDatabaseFeatures` is the model) are read by the digest, which picks one append and one
reconciliation strategy per adapter from them and never probes an adapter at run time:

- `identity` (required): how the CRM names the account a credential belongs to. Every call is
  verified with it (`verify_account`, cached under a keyed hash of the credential) before anything
  is stored; the verified account, not the caller's claim, keys digests, dedupe, caches and limits.
- `reads_records`: `read_record` returns the record as the CRM holds it, so a person's edit is
  found before an append and kept.
- `versions`: the CRM writes conditionally (an etag and the header that names it); an append is
  then one write that the CRM refuses if anyone changed the record. Implies `reads_records`.
- `finds_created`: `find_created` finds a record made by a create whose reply was lost, by the
  digest's reference, so it is not created twice.

Both writes return `Written`. Everything else lives here, once: the base URL (with the
MESSAGELOG_CRM_<NAME>_BASE_URL override), the host allow-list, the auth header, timeouts bounded
by the caller's deadline, mapping HTTP failures to typed errors, and one log line per CRM call
that never includes headers or bodies. Adapters know nothing of digests or gRPC.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import math
import random
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit

import httpx
import structlog

from service import metrics
from service.config import CrmSettings
from service.errors import (
    CrmAuthFailed,
    CrmBadResponse,
    CrmError,
    CrmNotConfigured,
    CrmRateLimited,
    CrmRecordChanged,
    CrmRecordNotFound,
    CrmRejected,
    CrmTimeout,
    CrmUnavailable,
    FieldViolation,
    HostNotAllowed,
    InvalidRequest,
)
from service.model import ContactInfo, UserInfo
from service.outbound import ACCOUNT_EXTENSION
from service.render import BodyFormat, RenderedRecord

log = structlog.get_logger("messagelog.crm")

K = TypeVar("K")
V = TypeVar("V")

# How long per-account lookups (user names, activity types, sheet layouts) are trusted.
LOOKUP_TTL_SECONDS = 3600.0
# How long the CRM's word on whose account a credential belongs to is trusted. Writes still send
# the credential, so a credential revoked meanwhile is refused by the CRM at the next write; the
# window bounds only what a revoked credential can be answered without a CRM call.
ACCOUNT_TTL_SECONDS = 900.0
# The key of the in-process hash under which verified credentials are remembered: the cache never
# holds a credential, and its keys are worthless outside this process.
_CREDENTIAL_KEY = secrets.token_bytes(32)
# An epoch timestamp in a reset header rather than a number of seconds (Clio sends one, Pipedrive the other).
_EPOCH_THRESHOLD = 1_000_000_000


@dataclass
class CrmCallStats:
    """What one RPC spent at the CRM, read by the servicer's log line."""

    calls: int = 0
    retries: int = 0
    last_http_status: int = 0


crm_call_stats: ContextVar[CrmCallStats | None] = ContextVar("crm_call_stats", default=None)


@dataclass(frozen=True)
class UserLookup:
    """Where a CRM tells the current user's name: a GET path, its query, and the name's place in the reply."""

    path: str
    name_at: tuple[str | int, ...]
    params: Mapping[str, str] | None = None


@dataclass(frozen=True)
class AccountLookup:
    """How a CRM names the account a credential belongs to: a GET path and its query, where the
    account's id is in the reply, and, where the same reply has it, the user's name (so one call
    serves both the identity and the name shown in records)."""

    path: str
    account_at: tuple[str | int, ...]
    params: Mapping[str, str] | None = None
    name_at: tuple[str | int, ...] | None = None
    # Where the reply names the credential's user by id, for CRMs whose records name their author.
    user_id_at: tuple[str | int, ...] | None = None


@dataclass(frozen=True)
class ErrorFields:
    """Where a CRM's error reply carries its own error code and its message (either may be None)."""

    code_at: tuple[str | int, ...] | None
    message_at: tuple[str | int, ...] | None


@dataclass(frozen=True)
class VerifiedAccount:
    """Whose account a credential belongs to, as the CRM said: `key` names it among all CRMs and
    keys every piece of state kept for it; `user_name` is the credential's user, where the
    identity reply told it."""

    key: str
    user_name: str | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class CrmCall:
    """Who an adapter acts for in one RPC, and until when."""

    user: UserInfo
    contact: ContactInfo
    authorization: str
    extras: Mapping[str, str]
    deadline: float | None = None  # time.monotonic() value
    # The record version a conditional write expects (see HttpCrmAdapter.update_unless_changed).
    expected_version: str | None = None
    # The account the CRM said the credential belongs to (VerifiedAccount.key); "" until verified.
    account: str = ""
    # The credential's user as the identity reply names it (VerifiedAccount.user_id), or "".
    account_user_id: str = ""


@dataclass(frozen=True)
class RecordVersions:
    """How a CRM that writes conditionally names a record's version (an etag, changed by every
    write): where replies carry it, and the request header that makes an update apply only while
    the record is still at the version it names (the CRM answers 412 otherwise)."""

    at: tuple[str | int, ...]
    header: str


@dataclass(frozen=True)
class Written:
    """What a create or an update left in the CRM: the record's id, and its version after the
    write where the CRM keeps versions (see `versions`), else None."""

    log_id: str
    version: str | None = None


@dataclass(frozen=True)
class CurrentRecord:
    """A record as the CRM holds it now: its text, and its version where the CRM keeps versions."""

    body: str
    version: str | None = None


class TtlCache(Generic[K, V]):
    """A small in-process cache for per-account lookups (user names, activity types)."""

    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._items: dict[K, tuple[float, V]] = {}
        self._fetching: dict[K, asyncio.Task[V]] = {}

    async def get_or_fetch(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        """The cached value, else fetch()'s, fetched once for all the calls that ask meanwhile: a
        burst of an account's first calls would otherwise each spend a CRM request on it."""
        value = self.get(key)
        if value is not None:
            return value
        shared = self._fetching.get(key)
        if shared is not None:
            try:
                return await asyncio.shield(shared)
            except Exception:  # noqa: S110 (the first asker's credentials or deadline; try with ours)
                pass
        own = asyncio.ensure_future(fetch())
        self._fetching[key] = own
        try:
            value = await asyncio.shield(own)
        finally:
            if self._fetching.get(key) is own:
                del self._fetching[key]
        self.put(key, value)
        return value

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def put(self, key: K, value: V) -> None:
        if len(self._items) >= self._max:
            self._items.clear()
        self._items[key] = (time.monotonic() + self._ttl, value)


@dataclass
class HttpCrmAdapter(ABC):
    """Base of every adapter; subclasses set the class attributes and implement create and update."""

    name: ClassVar[str]
    body_format: ClassVar[BodyFormat]
    # Regular expressions a CRM account host must match in full (checked even under a base URL override).
    host_patterns: ClassVar[tuple[str, ...]] = ()
    # The account's API root, from user.hostname; None means the base URL override must be configured.
    default_base_url: ClassVar[str | None] = "https://{hostname}"
    # For CRMs that hand out the account's API root at sign-in (a REST URL, an instance URL):
    # the user.platform_additional_info key that carries it, used instead of default_base_url.
    account_url_key: ClassVar[str | None] = None
    # The current user's name in the CRM, looked up once an hour per user when the caller sends
    # no user.name; None where the CRM offers no such lookup.
    user_lookup: ClassVar[UserLookup | None] = None
    # How the CRM names the account of a credential (see the module docstring). Required: an
    # adapter without one must override verify_account.
    identity: ClassVar[AccountLookup | None] = None
    # read_record returns the record as the CRM holds it.
    reads_records: ClassVar[bool] = False
    # For CRMs whose records have versions and take conditional writes; then an append is one
    # write with the version we last wrote, and the record is read only when that write is refused.
    versions: ClassVar[RecordVersions | None] = None
    # find_created finds a record a create made whose reply was lost.
    finds_created: ClassVar[bool] = False
    # Where the CRM's error replies carry its error code and message (see _error_detail).
    error_fields: ClassVar[ErrorFields | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Checks at import that an adapter's declarations and its methods agree, so the digest
        can trust the declarations without probing."""
        super().__init_subclass__(**kwargs)
        if getattr(cls, "__abstractmethods__", None):
            return
        declared = {
            "read_record": cls.reads_records,
            "find_created": cls.finds_created,
        }
        for method, says in declared.items():
            overridden = getattr(cls, method) is not getattr(HttpCrmAdapter, method)
            if says != overridden:
                raise TypeError(f"{cls.__name__}: {method} is {'missing' if says else 'undeclared'}")
        if cls.versions is not None and not cls.reads_records:
            raise TypeError(f"{cls.__name__}: a CRM with versions must read records (after a 412)")
        if cls.identity is None and cls.verify_account is HttpCrmAdapter.verify_account:
            raise TypeError(f"{cls.__name__}: declares no identity lookup")

    http: httpx.AsyncClient
    settings: CrmSettings
    _host_res: tuple[re.Pattern[str], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._host_res = tuple(re.compile(p) for p in self.host_patterns)
        self._user_names: TtlCache[tuple[str, str], str] = TtlCache(LOOKUP_TTL_SECONDS)
        self._accounts: TtlCache[bytes, VerifiedAccount] = TtlCache(ACCOUNT_TTL_SECONDS)

    @property
    def host_field(self) -> str:
        """The request field named when the account's host is refused."""
        if self.account_url_key:
            return f"user.platform_additional_info[{self.account_url_key}]"
        return "user.hostname"

    @abstractmethod
    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        """Creates the CRM record."""

    @abstractmethod
    async def update(self, call: CrmCall, log_id: str, record: RenderedRecord) -> Written:
        """Replaces the content of CRM record log_id with the record given."""

    async def update_unless_changed(
        self, call: CrmCall, log_id: str, record: RenderedRecord, version: str
    ) -> Written:
        """update, applied only while the record is still at `version` (for CRMs with `versions`):
        raises CrmRecordChanged when the CRM holds a newer one."""
        return await self.update(replace(call, expected_version=version), log_id, record)

    def validate(self, call: CrmCall) -> None:
        """Rejects a call this CRM cannot take before anything is stored or sent; adapters extend it."""
        self.base_url(call)

    async def read_record(self, call: CrmCall, log_id: str) -> CurrentRecord:
        """The record as the CRM holds it now (adapters that declare `reads_records`).

        Read before an append (for CRMs with `versions`, only when the record changed since we
        wrote it), so a person's edit is found and kept rather than overwritten.
        """
        raise NotImplementedError(f"{self.name} does not read records")

    def version_in(self, reply: Any) -> str | None:
        """The record's version in a CRM reply (for CRMs with `versions`), or None when it has none."""
        if self.versions is None:
            return None
        try:
            return str(field_at(reply, *self.versions.at)) or None
        except CrmBadResponse:
            return None

    async def prepare_create(self, call: CrmCall) -> None:
        """Makes the per-account lookups a create needs (cached), while the user's name is looked
        up: an account's first record then waits for one lookup, not for each in turn. Most
        CRMs need none."""
        return

    async def find_created(self, call: CrmCall, marker: str, since: datetime) -> str | None:
        """The id of a record made since `since` whose content holds `marker`, or None
        (adapters that declare `finds_created`).

        Called before creating again after a create whose result is unknown (a timeout, a crash).
        """
        raise NotImplementedError(f"{self.name} cannot find a record it created")

    async def verify_account(self, call: CrmCall) -> VerifiedAccount:
        """Whose account the call's credential belongs to, as the CRM says (see `identity`).

        Asked once per credential and account URL for ACCOUNT_TTL_SECONDS, remembered under a
        keyed hash of both. A credential the CRM refuses raises CrmAuthFailed and is not
        remembered, so it learns nothing and holds nothing.
        """
        digest = hmac.new(_CREDENTIAL_KEY, digestmod=hashlib.sha256)
        for part in (self.name, self.base_url(call), call.authorization):
            digest.update(part.encode())
            digest.update(b"\x1f")
        return await self._accounts.get_or_fetch(digest.digest(), lambda: self._look_up_account(call))

    async def _look_up_account(self, call: CrmCall) -> VerifiedAccount:
        lookup = self.identity
        assert lookup is not None  # __init_subclass__: an adapter without one overrides verify_account
        body = await self.request(
            call, "GET", self.identity_path(call), params=lookup.params, operation="verify_account"
        )
        account = self.account_in(call, body)
        name = None
        if lookup.name_at is not None:
            name = str(field_at(body, *lookup.name_at))
        user_id = None if lookup.user_id_at is None else record_id(body, *lookup.user_id_at)
        return VerifiedAccount(f"{self.name}:{account}", name, user_id)

    async def read_fields(self, call: CrmCall, path: str, fields: str, *, operation: str) -> dict[str, Any]:
        """GETs a record with `?fields=` (the CRMs whose record reads name the fields wanted) and
        returns it, or raises CrmBadResponse when the reply is not a JSON object."""
        body = await self.request(call, "GET", path, params={"fields": fields}, operation=operation)
        if not isinstance(body, dict):
            raise CrmBadResponse(f"{self.name} answered {operation} without the record")
        return body

    def identity_path(self, call: CrmCall) -> str:
        """The identity lookup's path; adapters whose path names a part of the account override it."""
        assert self.identity is not None
        return self.identity.path

    def account_in(self, call: CrmCall, reply: Any) -> str:
        """The account's id in the identity reply; adapters whose CRM also says which host or
        instance the account lives at check it against the call's here (CrmAuthFailed if not)."""
        assert self.identity is not None
        return record_id(reply, *self.identity.account_at)

    async def user_display_name(self, call: CrmCall) -> str:
        """The user's name as shown in records: the caller's, or the CRM's, looked up and cached
        per verified account (where the identity reply names the user, the digest has already
        put that name in the call)."""
        lookup = self.user_lookup
        if call.user.name or lookup is None:
            return call.user.name

        async def fetch() -> str:
            body = await self.request(
                call, "GET", lookup.path, params=lookup.params, operation="get_current_user"
            )
            return str(field_at(body, *lookup.name_at))

        return await self._user_names.get_or_fetch((call.account, call.user.id), fetch)

    def account_url(self, call: CrmCall) -> str:
        """The CRM account's API root for this call."""
        if self.account_url_key:
            url = call.user.platform_additional_info.get(self.account_url_key, "")
            if not url:
                raise InvalidRequest(
                    [FieldViolation(self.host_field, f"is required by {self.name}: the account's URL")]
                )
            return url
        if self.default_base_url is None:
            raise CrmNotConfigured(
                f"the {self.name} CRM has no base URL; set MESSAGELOG_CRM_{self.name.upper()}_BASE_URL"
            )
        return self.default_base_url.format(hostname=call.user.hostname)

    def base_url(self, call: CrmCall) -> str:
        """Where this call's requests go: the account URL, after its host passed the allow-list.

        A configured base URL override replaces only the scheme and host, so staging and fakes
        see the same paths; the allow-list is still checked against the real host.
        """
        if self.default_base_url is None and not self.host_patterns:
            if not self.settings.base_url:
                self.account_url(call)
            return str(self.settings.base_url)
        account = urlsplit(self.account_url(call))
        host = account.hostname or ""
        if account.scheme != "https" or not any(p.fullmatch(host) for p in self._host_res):
            raise HostNotAllowed(self.host_field, host or account.geturl()[:100], self.name)
        path = account.path.rstrip("/")
        if self.settings.base_url:
            return self.settings.base_url + path
        return f"https://{account.netloc}{path}"

    def auth_headers(self, call: CrmCall) -> dict[str, str]:
        """The call's credentials, as every request of the call sends them."""
        return {"Authorization": call.authorization}

    def _call_headers(self, call: CrmCall) -> dict[str, str]:
        headers = {"Accept": "application/json", **self.auth_headers(call)}
        if call.expected_version is not None and self.versions is not None:
            # A conditional write (update_unless_changed): the version it expects the record at.
            headers[self.versions.header] = call.expected_version
        return headers

    async def request(
        self,
        call: CrmCall,
        method: str,
        path: str,
        *,
        operation: str,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        repeatable: bool | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Sends a request to the CRM (see request_response) and returns its parsed JSON body, or
        None when the reply has no body."""
        response = await self.request_response(
            call,
            method,
            path,
            operation=operation,
            json=json,
            params=params,
            repeatable=repeatable,
            headers=headers,
        )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CrmBadResponse(
                f"{self.name} answered {operation} with a body that is not JSON",
                http_status=response.status_code,
            ) from None

    async def request_response(
        self,
        call: CrmCall,
        method: str,
        path: str,
        *,
        operation: str,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        repeatable: bool | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Sends a request to the CRM and returns its successful reply, headers included.

        Failures that leave the CRM unchanged (429, refused connections) are retried for any
        request; a 5xx reply only for repeatable requests (every method but POST unless the
        adapter says otherwise); no reply at all (a timeout, a dropped connection) only for reads,
        because an unanswered write may still be applied after a newer one.
        Retries back off exponentially with jitter and stop where the caller's deadline would
        be missed.
        """
        if repeatable is None:
            repeatable = method != "POST"
        attempt = 1
        while True:
            try:
                return await self._send(call, method, path, operation, json, params, headers)
            except CrmError as exc:
                delay = self._retry_delay(exc, attempt, repeatable, method in ("GET", "HEAD"), call)
                if delay is None:
                    exc.attempts = attempt
                    raise
            attempt += 1
            stats = crm_call_stats.get()
            if stats is not None:
                stats.retries += 1
            metrics.crm_retry(self.name, operation)
            log.info(
                "crm_retry", crm=self.name, operation=operation, attempt=attempt, delay_ms=round(delay * 1000)
            )
            await asyncio.sleep(delay)

    def _retry_delay(
        self, exc: CrmError, attempt: int, repeatable: bool, read_only: bool, call: CrmCall
    ) -> float | None:
        """How long to wait before trying again, or None to give up now."""
        policy = self.settings.retry
        if attempt >= policy.max_attempts or not exc.retryable:
            return None
        if isinstance(exc, CrmRateLimited):
            delay = policy.base_delay_seconds if exc.retry_after is None else exc.retry_after
            if delay > policy.max_rate_limit_wait_seconds:
                return None
        elif exc.maybe_applied and not repeatable:
            return None
        elif exc.in_flight and not read_only:
            # The unanswered write may still land later; a repeat now could be overtaken by it.
            # The digest logic waits for it to settle instead.
            return None
        else:
            cap = min(policy.max_delay_seconds, policy.base_delay_seconds * 2 ** (attempt - 1))
            delay = random.uniform(0, cap)  # noqa: S311 (jitter, not security)
        # A retry that could not finish before the caller's deadline only delays the answer.
        if (
            call.deadline is not None
            and time.monotonic() + delay + policy.min_attempt_seconds > call.deadline
        ):
            return None
        return delay

    async def _send(
        self,
        call: CrmCall,
        method: str,
        path: str,
        operation: str,
        json: Any,
        params: Mapping[str, str] | None,
        extra_headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        url = self.base_url(call) + path
        timeout = self._timeout(call)
        headers = self._call_headers(call)
        if extra_headers:
            headers.update(extra_headers)
        stats = crm_call_stats.get()
        # Only an unanswered write can still change the record later; an unanswered read holds nothing.
        writes = method not in ("GET", "HEAD")
        started = time.perf_counter()
        status = 0
        try:
            response = await self.http.request(
                method,
                url,
                json=json,
                params=params,
                headers=headers,
                timeout=timeout,
                follow_redirects=False,
                # Connections of the shared pool are limited per account (service/outbound.py).
                extensions={ACCOUNT_EXTENSION: call.account} if call.account else None,
            )
            status = response.status_code
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Nothing reached the CRM: safe to try again whatever the request.
            raise CrmUnavailable(
                f"{self.name} could not be reached for {operation} ({type(exc).__name__})",
                maybe_applied=False,
            ) from None
        except httpx.TimeoutException:
            raise CrmTimeout(
                f"{self.name} did not answer {operation} within {timeout:.1f}s", in_flight=writes
            ) from None
        except httpx.HTTPError as exc:
            raise CrmUnavailable(
                f"{self.name} dropped the connection during {operation} ({type(exc).__name__})",
                in_flight=writes,
            ) from None
        finally:
            elapsed = time.perf_counter() - started
            if stats is not None:
                stats.calls += 1
                stats.last_http_status = status
            metrics.crm_request(self.name, operation, status, elapsed)
            log.info(
                "crm_call",
                crm=self.name,
                operation=operation,
                method=method,
                http_status=status,
                duration_ms=round(elapsed * 1000, 1),
            )
        if status >= 300:
            error = self.error_for(response, operation)
            error.crm_code, error.crm_message = self._error_detail(response, call, json)
            raise error
        return response

    def _error_detail(self, response: httpx.Response, call: CrmCall, sent: Any) -> tuple[str, str]:
        """The CRM's error code and message from its reply, where `error_fields` says they are.

        The code is kept only if it is a short identifier. The message is cleaned and cut, and it
        is withheld whole when any word of it (four characters or more) is among what this call
        sent: a CRM that quotes a request back would otherwise hand message text, names or a
        credential to the status.
        """
        shape = self.error_fields
        if shape is None or not response.content:
            return "", ""
        try:
            body = response.json()
        except (ValueError, RecursionError):
            return "", ""
        code = _text_at(body, shape.code_at)
        if not _ERROR_CODE.fullmatch(code):
            code = ""
        message = " ".join(_text_at(body, shape.message_at).split())[:_ERROR_MESSAGE_CHARS]
        if not message.isprintable():
            message = ""
        sent_text = " ".join([call.authorization, *_strings_in(sent)]).casefold()
        if any(word.casefold() in sent_text for word in _WORD.findall(message)):
            message = ""
        return code, message

    def _timeout(self, call: CrmCall) -> float:
        timeout = self.settings.timeout_seconds
        if call.deadline is not None:
            timeout = min(timeout, call.deadline - time.monotonic())
        if timeout <= 0:
            raise CrmTimeout(f"no time was left to call {self.name}")
        return timeout

    def error_for(self, response: httpx.Response, operation: str) -> CrmError:
        """Maps a failed CRM reply to a typed error; adapters add their CRM's own signals by overriding."""
        status = response.status_code
        where = f"{self.name} answered {operation} with HTTP {status}"
        if status == 429:
            return CrmRateLimited(
                f"{where}: rate limited", http_status=status, retry_after=retry_after(response)
            )
        if status in (401, 403):
            return CrmAuthFailed(
                f"{where}: the credentials were refused or lack permission", http_status=status
            )
        if status in (404, 410):
            return CrmRecordNotFound(f"{where}: the record does not exist", http_status=status)
        if status == 412:
            return CrmRecordChanged(
                f"{where}: the record changed since the version given", http_status=status
            )
        if status >= 500:
            return CrmUnavailable(f"{where}: the CRM failed", http_status=status)
        return CrmRejected(f"{where}: the CRM refused the request", http_status=status)


# The longest wait a CRM's rate-limit header is believed for: a day. A longer, infinite or
# unreadable value is a broken header, not a schedule (issue 12: such values gave UNKNOWN).
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait, from Retry-After (seconds or HTTP date) or an X-RateLimit-Reset header
    (seconds, or an epoch time); at most MAX_RETRY_AFTER_SECONDS, None when neither is readable."""
    raw = response.headers.get("retry-after", "").strip()
    if raw:
        if raw.isascii() and raw.isdigit():
            return _bounded_wait(float(raw))
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, OverflowError):
            when = None
        if when is not None:
            return _bounded_wait(when.timestamp() - time.time())
    reset = response.headers.get("x-ratelimit-reset", "").strip()
    try:
        value = float(reset)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return _bounded_wait(value - time.time() if value > _EPOCH_THRESHOLD else value)


def _bounded_wait(seconds: float) -> float | None:
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)


def field_at(body: Any, *path: str | int) -> Any:
    """Reads body[path...] from a CRM reply, or raises CrmBadResponse naming what is missing."""
    node = body
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            node = None
        if node is None:
            raise CrmBadResponse(f"the CRM reply has no {'.'.join(map(str, path))}")
    return node


def record_id(body: Any, *path: str | int) -> str:
    """Reads a record id (a number or a string that record_id_problem accepts) from a CRM reply."""
    value = field_at(body, *path)
    if isinstance(value, bool) or not isinstance(value, int | str) or record_id_problem(str(value)):
        raise CrmBadResponse(f"the CRM reply's {'.'.join(map(str, path))} is not a record id")
    return str(value)


# A record id goes into URL paths (PUT {base}/{id}) and the store: at most 255 characters that
# need no escaping in a path segment. No CRM served here has ids of other characters.
MAX_RECORD_ID_CHARS = 255
_RECORD_ID = re.compile(r"[A-Za-z0-9._~:@+=,-]+")
# A DNS name as CRM hosts are written: lower-case letters, digits and inner hyphens, dot-separated.
_HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")


def record_id_problem(log_id: str) -> str | None:
    """Why log_id cannot be a record id (too long, a path or dot segment, a character a URL path
    would need escaped), or None when it can."""
    if not log_id or len(log_id) > MAX_RECORD_ID_CHARS:
        return f"must be 1 to {MAX_RECORD_ID_CHARS} characters"
    if not _RECORD_ID.fullmatch(log_id) or ".." in log_id or log_id == ".":
        return "must be letters, digits and . _ ~ : @ + = , - only, without '..'"
    return None


def host_problem(host: str) -> str | None:
    """Why host is not a bare DNS host name (a port, a path, userinfo, an odd character), or None."""
    labels = host.split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return "must be a host name only (letters, digits, hyphens and dots; no port, path or user)"
    return None


def account_url_problem(url: str) -> str | None:
    """Why url is not an account URL (scheme, host and plain path segments; no port, userinfo,
    query, fragment, dot segment or escaped character), or None. The scheme and the host's
    allow-list are each adapter's to check (HttpCrmAdapter.base_url)."""
    scheme, separator, rest = url.partition("://")
    if not separator or not scheme.isascii() or not scheme.isalpha():
        return "must be a URL such as https://host/path"
    host, _, path = rest.partition("/")
    host_trouble = host_problem(host.lower())
    if host_trouble is not None:
        return host_trouble.replace("must be", "must have")
    segments = path.rstrip("/").split("/") if path.strip("/") else []
    if any(not _PATH_SEGMENT.fullmatch(s) or s in (".", "..") for s in segments):
        return "may have a path only of plain segments (letters, digits, . _ ~ -; no '..', query or fragment)"
    return None


_ERROR_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_ERROR_MESSAGE_CHARS = 160
_WORD = re.compile(r"\w{4,}")


def _text_at(body: Any, path: tuple[str | int, ...] | None) -> str:
    """The string or number at path in a CRM reply, or "" when there is none."""
    if path is None:
        return ""
    node = body
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return ""
    if isinstance(node, bool) or not isinstance(node, str | int):
        return ""
    return str(node)


def _strings_in(value: Any) -> list[str]:
    """Every string and number value in a JSON document (its keys are our field names, not input)."""
    found: list[str] = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str | int | float) and not isinstance(node, bool):
            found.append(str(node))
    return found
