"""The load generator of `make bench`, in a process of its own; prints one JSON line of results.

    python -m bench.loadgen --targets 127.0.0.1:50061 --mode health --seconds 5 --concurrency 64
    python -m bench.loadgen --targets 127.0.0.1:50061 --mode log --messages 6000 --conversations 1000 \
        --accounts 20 --rate 200
    python -m bench.loadgen --targets ... --mode log --messages 10000 --conversations 200 --concurrency 1000 \
        --order conversation

`--rate` offers messages open-loop at that many per second (trickle); otherwise `--concurrency`
calls are kept in flight (closed loop). Messages are distinct (ids carry --run-id) and go to
conversations round-robin, or with `--order conversation` one conversation's messages back to
back, so a conversation's messages are in flight together (a history sync). Conversations are
spread over --accounts Pipedrive companies, one user each. Latency is measured per call from when
it was due to be sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from messagelog.v1 import message_log_pb2 as pb
from messagelog.v1 import message_log_service_pb2 as service_pb
from messagelog.v1 import message_log_service_pb2_grpc as service_grpc

# Channels per target: HTTP/2 pins a connection to one server thread of work, so a few spread it.
CHANNELS_PER_TARGET = 4
# Yesterday afternoon in New York: inside any retention window, and one local day for every conversation.
_DAY_START = (datetime.now(UTC) - timedelta(days=1)).replace(hour=17, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Load:
    messages: int
    conversations: int
    accounts: int
    run_id: str
    by_conversation: bool

    def call(self, i: int) -> tuple[service_pb.AddMessageLogRequest, tuple[tuple[str, str], ...]]:
        """Message i, and the call metadata: each company has its own Pipedrive token."""
        request = self.request(i)
        token = f"Bearer pd-token-{request.user.hostname.split('.')[0]}"
        return request, (("crm-authorization", token),)

    def request(self, i: int) -> service_pb.AddMessageLogRequest:
        if self.by_conversation:
            per = -(-self.messages // self.conversations)
            conversation, nth = divmod(i, per)
        else:
            nth, conversation = divmod(i, self.conversations)
        account = conversation % self.accounts
        inbound = nth % 2 == 0
        contact = pb.Party(phone_number=f"+1650555{conversation:04d}", name="Jane Doe")
        user = pb.Party(phone_number="+18885550052")
        return service_pb.AddMessageLogRequest(
            crm="pipedrive",
            user=pb.CrmUser(
                id=str(1000 + account), hostname=f"bench{account}.pipedrive.com", time_zone="America/New_York"
            ),
            contact=pb.Contact(
                id=str(100_000 + conversation), name="Jane Doe", phone_number=contact.phone_number
            ),
            message=pb.Message(
                id=f"{self.run_id}-{i}",
                conversation_id=f"{self.run_id}-conv-{conversation}",
                type=pb.MESSAGE_TYPE_SMS,
                direction=pb.MESSAGE_DIRECTION_INBOUND if inbound else pb.MESSAGE_DIRECTION_OUTBOUND,
                sender=contact if inbound else user,
                recipients=[user if inbound else contact],
                subject=f"Benchmark message {nth} of conversation {conversation}: is the house for sale?",
                creation_time=_DAY_START + timedelta(seconds=nth, milliseconds=i % 1000),
            ),
        )


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        # Latencies by path: "cold" for a call sent before any reply for its company (it may wait
        # for the company's lookups), else its outcome's name.
        self.by_path: dict[str, list[float]] = {}
        self.warm_companies: set[str] = set()
        self.errors: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()

    def report(self, seconds: float) -> dict[str, object]:
        ordered = sorted(self.latencies)
        return {
            "ok": len(ordered),
            "seconds": round(seconds, 3),
            "per_second": round(len(ordered) / seconds, 1) if seconds else 0.0,
            "p50_ms": _percentile(ordered, 0.50),
            "p99_ms": _percentile(ordered, 0.99),
            "by_path": {
                path: {
                    "calls": len(latencies),
                    "p50_ms": _percentile(sorted(latencies), 0.50),
                    "p99_ms": _percentile(sorted(latencies), 0.99),
                }
                for path, latencies in self.by_path.items()
            },
            "errors": dict(self.errors),
            "outcomes": dict(self.outcomes),
            "peak_rss_mb": _peak_rss_mb(),
        }


def _percentile(ordered: list[float], p: float) -> float:
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000, 2) if ordered else 0.0


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def _timed(stats: Stats, due: float, call: Awaitable[Any], company: str = "") -> None:
    cold = company not in stats.warm_companies
    try:
        response = await call
    except grpc.aio.AioRpcError as error:
        stats.errors[error.code().name] += 1
        return
    latency = time.perf_counter() - due
    stats.latencies.append(latency)
    outcome = getattr(response, "outcome", None)
    if outcome is not None:
        name = pb.LogOutcome.Name(outcome)
        stats.outcomes[name] += 1
        stats.by_path.setdefault("cold" if cold else name, []).append(latency)
        stats.warm_companies.add(company)


async def run(args: argparse.Namespace) -> dict[str, object]:
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for target in args.targets.split(",")
        for _ in range(CHANNELS_PER_TARGET)
    ]
    stats = Stats()
    try:
        if args.mode == "health":
            stubs = [health_pb2_grpc.HealthStub(c) for c in channels]
            ask = health_pb2.HealthCheckRequest(service="")
            for stub in stubs:
                await stub.Check(ask, timeout=10)
            end = time.perf_counter() + args.seconds

            async def pinger(n: int) -> None:
                stub = stubs[n % len(stubs)]
                while (due := time.perf_counter()) < end:
                    await _timed(stats, due, stub.Check(ask, timeout=10))

            started = time.perf_counter()
            await asyncio.gather(*(pinger(n) for n in range(args.concurrency)))
            return stats.report(time.perf_counter() - started)
        load = Load(
            args.messages, args.conversations, args.accounts, args.run_id, args.order == "conversation"
        )
        log_stubs = [service_grpc.MessageLogServiceStub(c) for c in channels]
        started = time.perf_counter()
        if args.rate:
            pending = set()
            for i in range(args.messages):
                due = started + i / args.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                request, metadata = load.call(i)
                call = log_stubs[i % len(log_stubs)].AddMessageLog(request, metadata=metadata, timeout=60)
                task = asyncio.create_task(_timed(stats, due, call, request.user.hostname))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.gather(*pending)
        else:
            cursor = iter(range(args.messages))

            async def worker(n: int) -> None:
                stub = log_stubs[n % len(log_stubs)]
                for i in cursor:
                    request, metadata = load.call(i)
                    call = stub.AddMessageLog(request, metadata=metadata, timeout=60)
                    await _timed(stats, time.perf_counter(), call, request.user.hostname)

            await asyncio.gather(*(worker(n) for n in range(args.concurrency)))
        return stats.report(time.perf_counter() - started)
    finally:
        for channel in channels:
            await channel.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", required=True, help="host:port[,host:port...]")
    parser.add_argument("--mode", choices=("health", "log"), default="log")
    parser.add_argument("--seconds", type=float, default=5.0, help="health mode: how long")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second, open loop")
    parser.add_argument("--order", choices=("round-robin", "conversation"), default="round-robin")
    parser.add_argument("--run-id", default="bench")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
