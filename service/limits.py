"""Admission: a call waits for CRM capacity instead of being refused by a count of calls.

Two kinds of limit, each protecting what can actually be overwhelmed:

- The process: `PendingWork` bounds the memory that calls in progress hold (their requests and
  their state while they wait). Only when it is spent is a call refused, RESOURCE_EXHAUSTED with
  RetryInfo; a burst within it is admitted whole and waits.
- The CRM: `CrmCapacity` gives each CRM account at most its CRM's published budget of concurrent
  requests and of requests per window. A CRM request waits for a slot, bounded by its call's
  deadline; a call that gets none in time is UNAVAILABLE and nothing reached the CRM. Waiting here
  does not cost messages a write each: a call files its message before its digest's writer asks
  for a slot, so messages that arrive while the writer waits ride along in its next write.

The budgets are per process: N replicas may together send N times an account's budget (the CRM's
own 429s are still waited out by the adapters). A CRM whose budget is not published gets only the
process's own concurrency guard, no rate.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from service.config import SettingsError
from service.errors import PendingWorkExhausted

# What a call refused for memory is told to wait: about how long a burst's calls take to finish.
RETRY_AFTER_SECONDS = 1.0
# A call's own state while it waits (its task, coroutine frames, the gRPC call object), an
# estimate; its request is charged on top, at PYTHON_BYTES_PER_WIRE_BYTE times its encoded size.
CALL_OVERHEAD_BYTES = 16 * 1024
PYTHON_BYTES_PER_WIRE_BYTE = 4


class PendingWork:
    """The memory budget of the calls this process holds; one more that would pass it is refused."""

    def __init__(self, budget_bytes: int) -> None:
        self._budget = budget_bytes
        self._held = 0

    @property
    def held_bytes(self) -> int:
        return self._held

    @contextmanager
    def hold(self, request_bytes: int) -> Iterator[None]:
        cost = CALL_OVERHEAD_BYTES + PYTHON_BYTES_PER_WIRE_BYTE * request_bytes
        if self._held + cost > self._budget:
            raise PendingWorkExhausted(
                f"this server holds {self._held // 1024} KiB of calls in progress, its budget is"
                f" {self._budget // 1024} KiB; retry shortly",
                retry_after=RETRY_AFTER_SECONDS,
            )
        self._held += cost
        try:
            yield
        finally:
            self._held -= cost


@dataclass(frozen=True)
class CrmBudget:
    """What one account of a CRM takes: concurrent requests, and requests per window (if published)."""

    concurrent: int
    requests: int | None = None
    window_seconds: float = 1.0


# A process's own guard where a CRM publishes no concurrency limit: enough for a digest writer per
# conversation in flight, few enough that one account cannot take every connection (200).
DEFAULT_CONCURRENT = 16

# Each CRM's published budget per account (token), its least generous plan where it varies.
PUBLISHED_BUDGETS: Mapping[str, CrmBudget] = {
    # OAuth access tokens, Essential plan: 80 requests per 2-second window per token (the
    # request-based burst limits, https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting).
    "pipedrive": CrmBudget(DEFAULT_CONCURRENT, 80, 2.0),
    # 50 requests per minute per access token at peak hours
    # (https://docs.developers.clio.com/api-docs/rate-limits).
    "clio": CrmBudget(DEFAULT_CONCURRENT, 50, 60.0),
    # Public (OAuth) apps: 100 requests every 10 seconds per installed account
    # (https://developers.hubspot.com/apisbytier).
    "hubspot": CrmBudget(DEFAULT_CONCURRENT, 100, 10.0),
    # Concurrency governance per account: 5 for the shared tier without SuiteCloud Plus licences
    # (NetSuite help, subsect_1559222360); no request rate is published.
    "netsuite": CrmBudget(5),
    # Per-user concurrency limit of about 10: [unverified] (only secondary sources); Zoho's
    # published limit is credits per day, which no per-process rate can keep.
    "zoho": CrmBudget(10),
    # Bullhorn, Insightly, Redtail, Salesforce (daily org allowance), Google Sheets (per-minute
    # quota, numbers unverified here) and generic: no per-account rate is published that we could
    # verify; the default guard only.
}


def budgets_from_env(environ: Mapping[str, str], crms: Iterable[str]) -> dict[str, CrmBudget]:
    """The published budgets of these CRMs, each overridable for accounts on a more generous plan:
    MESSAGELOG_CRM_<NAME>_CONCURRENT_REQUESTS and MESSAGELOG_CRM_<NAME>_RATE ("<requests>/<seconds>",
    or "off")."""
    budgets = {}
    for name in crms:
        budget = PUBLISHED_BUDGETS.get(name, CrmBudget(DEFAULT_CONCURRENT))
        prefix = f"MESSAGELOG_CRM_{name.upper()}_"
        concurrent = environ.get(prefix + "CONCURRENT_REQUESTS")
        if concurrent is not None:
            if not concurrent.isdigit() or not 1 <= int(concurrent) <= 10_000:
                raise SettingsError(f"{prefix}CONCURRENT_REQUESTS must be a whole number from 1 to 10000")
            budget = CrmBudget(int(concurrent), budget.requests, budget.window_seconds)
        rate = environ.get(prefix + "RATE")
        if rate is not None:
            budget = CrmBudget(budget.concurrent, *_rate(prefix + "RATE", rate))
        budgets[name] = budget
    return budgets


def _rate(name: str, value: str) -> tuple[int | None, float]:
    if value.strip().lower() == "off":
        return None, 1.0
    requests, _, seconds = value.partition("/")
    try:
        parsed = int(requests), float(seconds)
    except ValueError:
        parsed = (0, 0.0)
    if parsed[0] < 1 or not 0 < parsed[1] <= 86_400:
        raise SettingsError(f"{name} must be '<requests>/<seconds>' (for example 80/2) or 'off'")
    return parsed


class AccountCapacity:
    """One CRM account's slots: at most `concurrent` requests at once and `requests` in any
    sliding window (so none of the CRM's fixed windows ever sees more)."""

    def __init__(self, budget: CrmBudget) -> None:
        self.budget = budget
        self._slots = asyncio.Semaphore(budget.concurrent)
        self._sent: deque[float] = deque()
        self._rate_turn = asyncio.Lock()
        self._users = 0

    @property
    def idle(self) -> bool:
        horizon = time.monotonic() - self.budget.window_seconds
        return not self._users and (not self._sent or self._sent[-1] < horizon)

    async def acquire(self, within: float | None) -> float:
        """Waits up to `within` seconds (None: as long as it takes) for a slot, TimeoutError past
        it (holding nothing); returns the seconds waited. A slot taken is given back by release()."""
        started = time.monotonic()
        deadline = None if within is None else asyncio.get_running_loop().time() + within
        self._users += 1
        try:
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        except BaseException:
            self._users -= 1
            raise
        try:
            if self.budget.requests is not None:
                async with asyncio.timeout_at(deadline):
                    await self._take_rate(self.budget.requests)
        except BaseException:
            self.release()
            raise
        return time.monotonic() - started

    def release(self) -> None:
        self._slots.release()
        self._users -= 1

    async def _take_rate(self, requests: int) -> None:
        # One waiter at a time, in arrival order, so a later request cannot take a freed place.
        async with self._rate_turn:
            while True:
                now = time.monotonic()
                while self._sent and self._sent[0] <= now - self.budget.window_seconds:
                    self._sent.popleft()
                if len(self._sent) < requests:
                    self._sent.append(now)
                    return
                await asyncio.sleep(self._sent[0] + self.budget.window_seconds - now)


class CrmCapacity:
    """Every account's capacity, made on first use and forgotten once idle."""

    _FORGET_ABOVE = 1000

    def __init__(self, budgets: Mapping[str, CrmBudget]) -> None:
        self._budgets = budgets
        self._accounts: dict[tuple[str, str], AccountCapacity] = {}

    def of(self, crm: str, account: str) -> AccountCapacity:
        key = (crm, account)
        capacity = self._accounts.get(key)
        if capacity is None:
            if len(self._accounts) >= self._FORGET_ABOVE:
                self._accounts = {k: c for k, c in self._accounts.items() if not c.idle}
            capacity = AccountCapacity(self._budgets.get(crm, CrmBudget(DEFAULT_CONCURRENT)))
            self._accounts[key] = capacity
        return capacity


# The account whose CRM requests the current call sends, read by the HTTP transport
# (service.outbound) before each request; set by the digest logic for the call and its write.
current_account: ContextVar[AccountCapacity | None] = ContextVar("current_account", default=None)
