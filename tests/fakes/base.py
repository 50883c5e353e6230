"""The shared machinery of every fake CRM.

A fake is a set of routes over in-memory records. `serve()` puts it behind a real HTTP server on
127.0.0.1 (aiohttp), so adapters are tested through their real HTTP path. `inject()` queues
failures that the next matching requests get instead of the normal answer: a status with the
CRM's own error body and headers, a slow reply (for timeouts), a malformed body, or a dropped
connection.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web


@dataclass
class FakeRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    received_at: float = field(default_factory=time.monotonic)


@dataclass
class FakeResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


@dataclass
class Fault:
    """What the next matching request gets instead of its normal answer."""

    status: int = 0
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    malformed: bool = False
    drop_connection: bool = False
    method: str | None = None
    path_pattern: str | None = None
    # Apply the fault after the normal handler ran (the write happened, the answer is lost).
    after_effect: bool = False

    @property
    def delay_only(self) -> bool:
        """A slow reply that is otherwise the normal one."""
        return self.status == 0 and not self.malformed and not self.drop_connection

    def matches(self, request: FakeRequest) -> bool:
        if self.method and self.method != request.method:
            return False
        return not (self.path_pattern and not re.search(self.path_pattern, request.path))


@dataclass(frozen=True)
class Refusal:
    """A request the real CRM refuses, as its own source documents: the fake must refuse it too,
    with `status` and the CRM's error body, whose message is found at `error_at`."""

    method: str
    path: str
    body: Any
    status: int
    error_at: tuple[str | int, ...]
    # Where the rule comes from: an official SDK file, docs page or spec.
    source: str


Route = tuple[str, re.Pattern[str], Callable[..., FakeResponse]]


class FakeCrm:
    """Base of the fakes; subclasses register routes in __init__ and keep their records."""

    name = "fake"

    # The path (a regular expression) at which the CRM names the account of a credential (the
    # adapter's `identity`). Those lookups are kept apart in `identity_lookups`, so `requests`
    # holds the work a test is about, and a queued fault without a path pattern is meant for that
    # work: it skips them. Random faults (`chaos`) reach them like any request.
    identity_route: ClassVar[str] = ""
    # Requests the real API refuses, each with its source; the contract suite sends every one.
    documented_refusals: ClassVar[tuple[Refusal, ...]] = ()

    def __init__(self) -> None:
        self.requests: list[FakeRequest] = []
        self.identity_lookups: list[FakeRequest] = []
        self.faults: list[Fault] = []
        # Draws a fault (or None) for every request no queued fault matched: random failure injection.
        self.chaos: Callable[[FakeRequest], Fault | None] | None = None
        self.reply_delay = 0.0
        self._routes: list[Route] = []

    def route(self, method: str, pattern: str, handler: Callable[..., FakeResponse]) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    def inject(self, fault: Fault, times: int = 1) -> None:
        self.faults.extend([fault] * times)

    def calls(self, method: str | None = None, path_pattern: str = "") -> list[FakeRequest]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and re.search(path_pattern, r.path)
        ]

    # What the contract suite reads back. A fake that keeps its records in one dict names it, the
    # field path to a record's text, and the pattern of its write paths; one that keeps them
    # otherwise overrides the five methods below.
    record_store: ClassVar[str] = ""
    body_path: ClassVar[tuple[str, ...]] = ()
    write_path: ClassVar[str] = ""

    def _records(self) -> dict[Any, Any]:
        records: dict[Any, Any] = getattr(self, self.record_store)
        return records

    def _key(self, log_id: str) -> Any:
        return next(key for key in self._records() if str(key) == log_id)

    def record_ids(self) -> list[str]:
        return [str(key) for key in self._records()]

    def record_body(self, log_id: str) -> str:
        """The record's text as a person would see it in the CRM (HTML or plain text)."""
        holder, name = self._text_holder(log_id)
        return str(holder[name])

    def edit_record(self, log_id: str, text: str) -> None:
        """What a person replacing the record's text in the CRM does."""
        holder, name = self._text_holder(log_id)
        holder[name] = text

    def _text_holder(self, log_id: str) -> tuple[Any, str]:
        """Where the record's text is: the mapping (the record, or a part of it) and its key."""
        holder = self._records()[self._key(log_id)]
        *parents, name = self.body_path
        for parent in parents:
            holder = holder[parent]
        return holder, name

    def delete_record(self, log_id: str) -> None:
        """What a person deleting the record in the CRM does."""
        del self._records()[self._key(log_id)]

    def write_paths(self) -> str:
        """A pattern matching the paths that create or update records."""
        return self.write_path

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        """Returns the CRM's refusal when the request's credentials are not accepted."""
        return None

    def not_found(self, request: FakeRequest) -> FakeResponse:
        return FakeResponse(404, {"error": "not found"})

    def rate_limit_headers(self) -> dict[str, str]:
        return {}

    def is_identity_lookup(self, request: FakeRequest) -> bool:
        return bool(self.identity_route) and re.fullmatch(self.identity_route, request.path) is not None

    async def handle(self, request: FakeRequest) -> FakeResponse | Fault:
        identity = self.is_identity_lookup(request)
        (self.identity_lookups if identity else self.requests).append(request)
        if self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        fault = next(
            (f for f in self.faults if f.matches(request) and not (identity and f.path_pattern is None)), None
        )
        if fault is not None:
            self.faults.remove(fault)
        elif self.chaos is not None:
            fault = self.chaos(request)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.delay_only:
                fault = None
            elif not fault.after_effect:
                return fault
        refusal = self.authorize(request)
        if refusal is not None:
            return refusal
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                response = handler(request, *match.groups())
                response.headers = {**self.rate_limit_headers(), **response.headers}
                return fault if fault is not None else response
        return self.not_found(request)

    @asynccontextmanager
    async def serve(self, port: int = 0) -> AsyncIterator[str]:
        """Serves the fake on 127.0.0.1 (on a free port unless one is given) and yields its base URL."""

        async def entry(http_request: web.Request) -> web.StreamResponse:
            raw = await http_request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            request = FakeRequest(
                method=http_request.method,
                path=http_request.path,
                query=dict(http_request.query),
                headers={k.lower(): v for k, v in http_request.headers.items()},
                body=body,
            )
            answer = await self.handle(request)
            if isinstance(answer, Fault):
                if answer.drop_connection:
                    assert http_request.transport is not None
                    http_request.transport.close()
                    return web.Response(status=500)
                if answer.malformed:
                    return web.Response(
                        status=answer.status or 200,
                        text="<html>Gateway error</html>",
                        content_type="text/html",
                        headers=answer.headers,
                    )
                return web.json_response(answer.body, status=answer.status, headers=answer.headers)
            if answer.raw is not None:
                return web.Response(status=answer.status, body=answer.raw, headers=answer.headers)
            if answer.body is None:
                return web.Response(status=answer.status, headers=answer.headers)
            return web.json_response(answer.body, status=answer.status, headers=answer.headers)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", entry)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()
