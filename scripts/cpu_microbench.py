"""CPU per unit of work on the per-message path, measured with time.process_time over many repeats.

    python scripts/cpu_microbench.py http          # µs of this process's CPU per CRM request
    python scripts/cpu_microbench.py render        # µs per render + fingerprint of a 4-message SMS digest
    python scripts/cpu_microbench.py interceptors  # µs per call spent in the server's interceptors

`http` sends Pipedrive's append (GET, then PATCH of a ~0.8 KB note) through the service's real
client stack (service/outbound.py's client over the aiohttp transport, the adapter base, its log
line and metrics) to the bench's fake CRM in a process of its own, so only the client's CPU is
counted: first one request at a time, then 64 in flight. Each figure is the best of several
rounds: other work on the machine only ever adds to them. `interceptors` runs the server's three
interceptors, chained, around a servicer that answers at once. Run from the repository root with it on
PYTHONPATH; compare runs made back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import httpx

from service.adapters.base import CrmCall
from service.adapters.pipedrive import PipedriveAdapter
from service.auth import AuthInterceptor
from service.config import Settings
from service.logging_setup import configure_logging
from service.metrics import MetricsInterceptor
from service.model import ContactInfo, Direction, Entry, Kind, UserInfo
from service.outbound import http_client, origin
from service.render import BodyFormat, DigestView, fingerprint, render
from service.server import RequestContextInterceptor

NEW_YORK = ZoneInfo("America/New_York")
CONTACT = ContactInfo("100042", "Jane Doe", "+16505550042", "person", "", "")


def digest_view() -> DigestView:
    """A typical digest: four messages of a conversation, in and out by turns, as the bench sends them."""
    start = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
    entries = [
        Entry(
            message_id=f"m{i}",
            created_at=start + timedelta(minutes=3 * i),
            direction=Direction.INBOUND if i % 2 == 0 else Direction.OUTBOUND,
            text=f"Benchmark message {i} of conversation 42: is the house for sale?",
            sender_name="",
            sender_phone="+16505550042" if i % 2 == 0 else "+18885550052",
        )
        for i in range(4)
    ]
    return DigestView(
        Kind.SMS, CONTACT, "Alice Agent", NEW_YORK, "America/New_York", date(2026, 11, 20), entries, ref="d42"
    )


ROUNDS = 5


def bench_render(repeats: int) -> None:
    view = digest_view()
    for fmt in (BodyFormat.HTML, BodyFormat.TEXT):
        rounds = []
        for _ in range(ROUNDS):
            started = time.process_time()
            for _ in range(repeats):
                fingerprint(render(view, fmt).body)
            rounds.append((time.process_time() - started) / repeats * 1e6)
        best = min(rounds)
        print(f"render+fingerprint {fmt.value}: {best:.1f} µs per digest (best of {ROUNDS} x {repeats})")


@dataclass(frozen=True)
class _CallDetails:
    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


class _StubContext:
    """What the interceptors ask of a call's context."""

    def peer(self) -> str:
        return "ipv4:127.0.0.1:51234"

    def code(self) -> None:
        return None


async def bench_interceptors(repeats: int) -> None:
    """The server's interceptors, chained as grpc.aio chains them, around a servicer that answers at once."""
    interceptors = [MetricsInterceptor(), RequestContextInterceptor(), AuthInterceptor(Settings())]

    async def answer(request: bytes, context: _StubContext) -> bytes:
        return request

    servicer = grpc.unary_unary_rpc_method_handler(answer)

    async def handler(index: int, details: _CallDetails) -> grpc.RpcMethodHandler:
        if index == len(interceptors):
            return servicer
        return await interceptors[index].intercept_service(lambda d: handler(index + 1, d), details)

    details = _CallDetails(
        "/messagelog.v1.MessageLogService/AddMessageLog",
        (("crm-authorization", "Bearer pd-token-1"), ("x-request-id", "bench-1")),
    )
    context = _StubContext()
    rounds = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(repeats):
            await (await handler(0, details)).unary_unary(b"request", context)
        rounds.append((time.process_time() - started) / repeats * 1e6)
    print(f"interceptors: {min(rounds):.1f} µs per call (best of {ROUNDS} x {repeats})")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _append_loop(adapter: PipedriveAdapter, call: CrmCall, log_id: str, appends: int) -> None:
    record = render(digest_view(), BodyFormat.HTML)
    for _ in range(appends):
        await adapter.read_body(call, log_id)
        await adapter.update(call, log_id, record)


async def _measure(
    adapter: PipedriveAdapter, calls: list[CrmCall], log_ids: list[str], appends: int
) -> tuple[float, float]:
    """µs of CPU per request, all and in user mode (the Python code, without the kernel's sockets),
    for len(calls) concurrent loops of `appends` appends (2 requests each)."""
    started, user_started = time.process_time(), os.times().user
    await asyncio.gather(
        *(_append_loop(adapter, call, log_id, appends) for call, log_id in zip(calls, log_ids, strict=True))
    )
    requests = len(calls) * appends * 2
    return (time.process_time() - started) / requests * 1e6, (os.times().user - user_started) / requests * 1e6


async def bench_http(requests: int, transport: str) -> None:
    port = _free_port()
    fake = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fake_crm", "--port", str(port), "--delay", "0",
        "--burst-limit", str(10**9), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert fake.stdout is not None
        await fake.stdout.readline()  # "fake_crm ready ..."
        base_url = f"http://127.0.0.1:{port}"
        settings = Settings(environ={"MESSAGELOG_CRM_PIPEDRIVE_BASE_URL": base_url})
        async with http_client([origin(httpx.URL(base_url))], transport) as http:
            adapter = PipedriveAdapter(http=http, settings=settings.crm("pipedrive"))
            calls = [
                CrmCall(
                    user=UserInfo(str(1000 + n), f"bench{n}.pipedrive.com", NEW_YORK, "America/New_York", ""),
                    contact=CONTACT,
                    authorization=f"Bearer pd-token-{n}",
                    extras={},
                )
                for n in range(64)
            ]
            record = render(digest_view(), BodyFormat.HTML)
            log_ids = [await adapter.create(call, record) for call in calls]
            await _measure(adapter, calls[:1], log_ids[:1], 200)  # warm-up: pools, caches, code paths
            one, each = calls[:1], log_ids[:1]
            sequential = [await _measure(adapter, one, each, requests // 2) for _ in range(ROUNDS)]
            concurrent = [await _measure(adapter, calls, log_ids, requests // 128) for _ in range(ROUNDS)]
        print(
            f"http ({transport}), µs CPU per request (user mode): one at a time {min(sequential)[0]:.0f}"
            f" ({min(u for _, u in sequential):.0f}), 64 in flight {min(concurrent)[0]:.0f}"
            f" ({min(u for _, u in concurrent):.0f}); best of {ROUNDS} x {requests} requests"
        )
    finally:
        fake.terminate()
        await fake.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("http", "render", "interceptors"))
    parser.add_argument("--repeats", type=int, default=0, help="renders, or CRM requests per phase")
    parser.add_argument("--transport", choices=("aiohttp", "httpx"), default="aiohttp")
    args = parser.parse_args()
    # The service's own log lines, rendered and written as in production, to nowhere.
    with open(os.devnull, "w") as sink:
        real_stderr, sys.stderr = sys.stderr, sink
        configure_logging("info", "json")
        sys.stderr = real_stderr
        if args.what == "render":
            bench_render(args.repeats or 5_000)
        elif args.what == "interceptors":
            asyncio.run(bench_interceptors(args.repeats or 20_000))
        else:
            asyncio.run(bench_http(args.repeats or 2_560, args.transport))
    return 0


if __name__ == "__main__":
    sys.exit(main())
