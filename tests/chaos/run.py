"""Runs the chaos suite and prints what reached the CRM against what was sent.

    python -m tests.chaos.run --processes 3 --callers 20 --messages 10000 --conversations 200 \
        --fault-rate 0.1 --kills 5 --days-back 60-90 --burst 1000 --burst-conversations 25 \
        --burst-in-flight 200

Servers: `python -m service` processes on one fresh PostgreSQL database, each on a fixed port so a
killed one is restarted where callers find it. CRM: the fake Pipedrive in this process, failing a
share of requests at random (429 with Retry-After, 5xx before or after the write took effect,
connections dropped before or after it, replies slower than the service waits, slow replies).
Messages are history, as a backfill carries it: each conversation's two local days lie
--days-back days before today. Callers: concurrent coroutines that send every message, retrying
UNAVAILABLE, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED with RetryInfo (as clients should, on any
server) after the delay RetryInfo asks, else a growing pause, until the service answers or the
message has waited GIVE_UP_SECONDS. Some logged messages are sent again later, after kills
(re-sends). A burst phase then sends --burst messages over --burst-conversations conversations
with --burst-in-flight calls in flight. Killer: SIGKILLs a random server every few seconds and
restarts it. Finally every server is restarted (each purges at startup) and a sample of logged
messages is sent again: every re-send must be ALREADY_LOGGED.

At the end every record in the fake CRM is read: each message must be in exactly one record, the
record of its conversation-day, in creation-time order, and each conversation-day must have one
record. Printed beside it: the time from each message's first attempt to its logging.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import re
import secrets
import socket
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import grpc
from messagelog.v1 import message_log_pb2 as pb
from messagelog.v1 import message_log_service_pb2_grpc as service_grpc

from service.store.sealing import new_key
from tests.fakes.base import FakeRequest, Fault
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms

AUTH = (("crm-authorization", "Bearer pd-token"),)
ZONE = "America/New_York"
RETRIED = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
# A caller stops trying a message this long after its first attempt, and counts it as given up.
GIVE_UP_SECONDS = 300.0
# Every message must be logged within this of its first attempt.
LOGGED_WITHIN_SECONDS = 180.0
# The share of logged messages sent again later in the run, and the sample re-sent after the restart.
RESEND_SHARE = 0.05
RESEND_AFTER_RESTART = 300
# The fake answers every company without a burst limit; the service's own budget for Pipedrive is
# then raised to the top plan's (480 requests per 2 s, OAuth Enterprise) and printed with the figures.
PIPEDRIVE_RATE = "480/2"
TOKEN = re.compile(r"\[m:([a-z0-9-]+)\]")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ChaosConfig:
    processes: int = 3
    callers: int = 20
    messages: int = 10_000
    conversations: int = 200
    fault_rate: float = 0.1
    kills: int = 5
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    seed: int = 7
    log_dir: Path | None = None
    # How many days before today the conversations' days lie: (nearest, farthest).
    days_back: tuple[int, int] = (60, 90)
    burst: int = 0
    burst_conversations: int = 25
    burst_in_flight: int = 200


@dataclass
class ChaosReport:
    sent: int = 0
    in_crm: int = 0
    duplicates: int = 0
    lost: int = 0
    misplaced: int = 0
    out_of_order_records: int = 0
    conversation_days: int = 0
    records: int = 0
    conversation_days_with_one_record: int = 0
    kills: int = 0
    crm_requests: int = 0
    crm_faults: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    lost_ids: list[str] = field(default_factory=list)
    # Seconds from each logged message's first attempt to the answer that said it is logged.
    logged_after: list[float] = field(default_factory=list)
    gave_up: int = 0
    resent: Counter[str] = field(default_factory=Counter)
    resent_after_restart: Counter[str] = field(default_factory=Counter)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.logged_after)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0

    @property
    def clean(self) -> bool:
        return (
            self.duplicates == 0
            and self.lost == 0
            and self.misplaced == 0
            and self.out_of_order_records == 0
            and self.conversation_days == self.conversation_days_with_one_record == self.records
            and not self.rejected
            and self.in_crm == self.sent
            and self.gave_up == 0
            and self.percentile(1.0) <= LOGGED_WITHIN_SECONDS
            and set(self.resent) <= {"ALREADY_LOGGED"}
            and set(self.resent_after_restart) <= {"ALREADY_LOGGED"}
        )

    def render(self, config: ChaosConfig) -> str:
        nearest, farthest = config.days_back
        p50, p99, most = self.percentile(0.5), self.percentile(0.99), self.percentile(1.0)
        lines = [
            f"chaos: {config.processes} processes, {config.callers} callers, {config.messages} messages over "
            f"{config.conversations} conversations dated {nearest}-{farthest} days back, burst"
            f" {config.burst} over {config.burst_conversations} conversations at {config.burst_in_flight} in"
            f" flight, CRM fault rate {config.fault_rate:.0%}, {self.seconds:.1f} s"
            f" (MESSAGELOG_CRM_PIPEDRIVE_RATE={PIPEDRIVE_RATE})",
            f"  messages sent:               {self.sent}",
            f"  messages in CRM:             {self.in_crm}",
            f"  duplicates:                  {self.duplicates}",
            f"  lost:                        {self.lost}"
            + (f" ({', '.join(self.lost_ids[:5])})" if self.lost else ""),
            f"  misplaced:                   {self.misplaced}",
            f"  records out of order:        {self.out_of_order_records}",
            f"  conversation-days:           {self.conversation_days}",
            f"  CRM records:                 {self.records}",
            f"  conversation-days with exactly one record: {self.conversation_days_with_one_record}",
            f"  server kills (SIGKILL):      {self.kills}",
            f"  CRM requests:                {self.crm_requests}",
            f"  CRM faults injected:         {_counts(self.crm_faults)}",
            f"  calls retried by callers:    {_counts(self.retried)}",
            f"  calls rejected:              {_counts(self.rejected) or 'none'}",
            f"  first attempt to logged:     p50 {p50:.1f} s, p99 {p99:.1f} s, max {most:.1f} s"
            f" (limit {LOGGED_WITHIN_SECONDS:.0f} s)",
            f"  messages callers gave up on: {self.gave_up}",
            f"  re-sent during the run:      {_counts(self.resent) or 'none'}",
            f"  re-sent after a restart:     {_counts(self.resent_after_restart) or 'none'}",
            f"  verdict:                     {'CLEAN' if self.clean else 'BROKEN'}",
        ]
        return "\n".join(lines)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {count}" for key, count in counter.most_common())


class FaultyCrm:
    """Draws the fake CRM's faults: the kinds real CRMs and networks produce, at a set rate."""

    KINDS = (
        (
            "429",
            3,
            lambda: Fault(
                status=429,
                body={"success": False, "error": "Request over limit"},
                headers={"Retry-After": "1"},
            ),
        ),
        ("503-before", 2, lambda: Fault(status=503, body={"success": False, "error": "unavailable"})),
        (
            "500-after",
            1,
            lambda: Fault(status=500, body={"success": False, "error": "oops"}, after_effect=True),
        ),
        ("reset-before", 1, lambda: Fault(drop_connection=True)),
        ("reset-after", 1, lambda: Fault(drop_connection=True, after_effect=True)),
        ("timeout-after", 1, lambda: Fault(delay=1.5, status=200, after_effect=True, body={"success": True})),
        ("slow", 1, lambda: Fault(delay=0.3)),
    )

    def __init__(self, rate: float, rng: random.Random) -> None:
        self.rate = rate
        self.rng = rng
        self.injected: Counter[str] = Counter()
        self._weights = [weight for _, weight, _ in self.KINDS]

    def __call__(self, request: FakeRequest) -> Fault | None:
        if self.rng.random() >= self.rate:
            return None
        name, _, make = self.rng.choices(self.KINDS, weights=self._weights)[0]
        self.injected[name] += 1
        return make()


@dataclass
class Server:
    port: int
    env: dict[str, str]
    log: Any
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service", cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(f"server on port {self.port} exited with {self.process.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"server on port {self.port} did not start")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.terminate()
        return await asyncio.wait_for(self.process.wait(), timeout=60)


def _server_logs(config: ChaosConfig) -> list[Any]:
    """One log file per server, kept after the run for a post-mortem."""
    log_dir = config.log_dir or Path(tempfile.mkdtemp(prefix="messagelog-chaos-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"chaos: server logs in {log_dir}", file=sys.stderr)
    return [(log_dir / f"server-{i}.log").open("ab") for i in range(config.processes)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


Message = tuple[str, int, datetime, str]


def _messages(
    count: int, conversations: range, days_back: tuple[int, int], rng: random.Random, prefix: str
) -> list[Message]:
    """(message id, conversation index, creation time, text): each conversation's messages spread
    over two local days, days_back days before today, in random order."""
    zone = ZoneInfo(ZONE)
    today = datetime.now(zone).date()
    first_day = {
        c: datetime.combine(today - timedelta(days=rng.randint(*days_back)), dt_time(), zone).astimezone(UTC)
        for c in conversations
    }
    out = []
    for i in range(count):
        conversation = conversations[i % len(conversations)]
        start = first_day[conversation]
        at = start + timedelta(seconds=rng.randrange(0, 2 * 86_400 - 1)) + timedelta(milliseconds=i % 1000)
        message_id = f"{prefix}{conversation:03d}-{i:05d}"
        out.append((message_id, conversation, at, f"Chaos text for {message_id} [m:{message_id}]"))
    rng.shuffle(out)
    return out


async def run(config: ChaosConfig) -> ChaosReport:
    rng = random.Random(config.seed)
    report = ChaosReport()
    admin = await asyncpg.connect(config.postgres_url, timeout=10)
    database = f"messagelog_chaos_{secrets.token_hex(4)}"
    await admin.execute(f'CREATE DATABASE "{database}"')
    fake = FakePipedrive(burst_limit=1_000_000)
    faults = FaultyCrm(config.fault_rate, rng)
    logs = _server_logs(config)
    started = time.monotonic()
    try:
        async with fake.serve() as base_url:
            env = {k: v for k, v in os.environ.items() if not k.startswith("MESSAGELOG_")}
            env.update(
                {
                    "MESSAGELOG_DATABASE_URL": config.postgres_url.rpartition("/")[0] + f"/{database}",
                    "MESSAGELOG_CRM_PIPEDRIVE_BASE_URL": base_url,
                    # The processes share the store, so they share its key.
                    "MESSAGELOG_STORE_KEY": new_key(),
                    "MESSAGELOG_CRM_TIMEOUT": "1",
                    "MESSAGELOG_DIGEST_LEASE_SECONDS": "3",
                    # The fake's slowest late create lands 1.5 s after it was sent.
                    "MESSAGELOG_CREATE_SETTLE_SECONDS": "2",
                    "MESSAGELOG_LOG_FORMAT": "json",
                    "MESSAGELOG_SHUTDOWN_GRACE_SECONDS": "5",
                    "MESSAGELOG_CRM_PIPEDRIVE_RATE": PIPEDRIVE_RATE,
                }
            )
            servers = [Server(_free_port(), {**env, "MESSAGELOG_PORT": ""}, log) for log in logs]
            for server in servers:
                server.env["MESSAGELOG_PORT"] = str(server.port)
            await asyncio.gather(*(server.start() for server in servers))
            fake.chaos = faults
            messages = _messages(config.messages, range(config.conversations), config.days_back, rng, "c")
            burst = _messages(
                config.burst,
                range(config.conversations, config.conversations + config.burst_conversations),
                config.days_back,
                rng,
                "b",
            )
            report.sent = len(messages) + len(burst)
            channels = [grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") for s in servers]
            stubs = [service_grpc.MessageLogServiceStub(c) for c in channels]
            callers = Callers(stubs, rng, report)
            done = asyncio.Event()
            killer = asyncio.create_task(_killer(servers, config, rng, report, done))
            await callers.send_all(messages, config.callers, resend_share=RESEND_SHARE)
            # A history sync's burst: one account, many calls in flight at once.
            await callers.send_all(burst, config.burst_in_flight, resend_share=0.0)
            done.set()
            await killer
            fake.chaos = None
            # Every server restarts (and purges at startup); logged history is still known.
            codes = await asyncio.gather(*(server.stop() for server in servers))
            await asyncio.gather(*(server.start() for server in servers))
            sample = rng.sample(callers.logged, min(RESEND_AFTER_RESTART, len(callers.logged)))
            await callers.resend(sample, report.resent_after_restart)
            for channel in channels:
                await channel.close()
            codes += await asyncio.gather(*(server.stop() for server in servers))
            if any(code != 0 for code in codes):
                report.rejected["server exit " + ",".join(map(str, codes))] += 1
            report.crm_requests = len(fake.requests)
            report.crm_faults = faults.injected
            _reckon(fake, messages + burst, report)
    finally:
        report.seconds = time.monotonic() - started
        for log in logs:
            log.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    return report


async def _killer(
    servers: list[Server], config: ChaosConfig, rng: random.Random, report: ChaosReport, done: asyncio.Event
) -> None:
    """Kills a random server every few seconds until the load is done and enough kills were made."""
    while not done.is_set() or report.kills < config.kills:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=rng.uniform(1.0, 3.0))
        if done.is_set() and report.kills >= config.kills:
            return
        server = rng.choice(servers)
        await server.kill()
        report.kills += 1
        await asyncio.sleep(rng.uniform(0.2, 1.0))
        await server.start()


class Callers:
    """Callers as a client should be: any server, RetryInfo honoured, a bounded wait per message."""

    def __init__(
        self, stubs: list[service_grpc.MessageLogServiceStub], rng: random.Random, report: ChaosReport
    ) -> None:
        self.stubs = stubs
        self.rng = rng
        self.report = report
        self.logged: list[Message] = []

    async def send_all(self, messages: list[Message], in_flight: int, *, resend_share: float) -> None:
        queue: asyncio.Queue[tuple[Message, bool]] = asyncio.Queue()
        for message in messages:
            queue.put_nowait((message, False))
        pending = len(messages)

        async def caller() -> None:
            nonlocal pending
            while pending:
                try:
                    message, again = await asyncio.wait_for(queue.get(), timeout=0.5)
                except TimeoutError:
                    continue
                outcome = await self.send(message)
                if again:
                    self.report.resent[outcome or "failed"] += 1
                elif outcome is not None and self.rng.random() < resend_share:
                    # Sent again later, once the queue has moved on (and servers have been killed).
                    queue.put_nowait((message, True))
                    pending += 1
                if outcome is not None and not again:
                    self.logged.append(message)
                pending -= 1

        await asyncio.gather(*(caller() for _ in range(in_flight)))

    async def resend(self, messages: list[Message], outcomes: Counter[str]) -> None:
        for outcome in await asyncio.gather(*(self.send(m, timed=False) for m in messages)):
            outcomes[outcome or "failed"] += 1

    async def send(self, message: Message, *, timed: bool = True) -> str | None:
        """Sends until the service answers; returns the outcome's name, None if not logged."""
        message_id, conversation, at, text = message
        request = add_request(
            "pipedrive",
            sms(
                message_id,
                at.isoformat(),
                text,
                conversation=f"conv-{conversation:03d}",
                inbound=conversation % 2 == 0,
            ),
            contact_id=str(1000 + conversation),
            user_name="Chaos Agent",
            time_zone=ZONE,
        )
        first = time.monotonic()
        attempt = 0
        while True:
            try:
                response = await self.rng.choice(self.stubs).AddMessageLog(request, metadata=AUTH, timeout=10)
            except grpc.aio.AioRpcError as error:
                reason, retry_delay = _details(error)
                retryable = error.code() in RETRIED and (
                    error.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED or retry_delay is not None
                )
                if not retryable:
                    self.report.rejected[f"{error.code().name} {reason}"] += 1
                    return None
                self.report.retried[f"{error.code().name} {reason}".strip()] += 1
                pause = retry_delay if retry_delay is not None else min(2.0, 0.05 * 2 ** min(attempt, 5))
                pause *= self.rng.uniform(1.0, 1.2) if retry_delay is not None else self.rng.uniform(0.5, 1.0)
                if time.monotonic() + pause - first > GIVE_UP_SECONDS:
                    self.report.gave_up += 1
                    return None
                attempt += 1
                await asyncio.sleep(pause)
                continue
            if timed:
                self.report.logged_after.append(time.monotonic() - first)
            return str(pb.LogOutcome.Name(response.outcome)).removeprefix("LOG_OUTCOME_")


def _details(error: grpc.aio.AioRpcError) -> tuple[str, float | None]:
    """The ErrorInfo reason and the RetryInfo delay (seconds) of a failed call."""
    from google.rpc import error_details_pb2, status_pb2

    reason, delay = "", None
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    reason = info.reason
                elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    retry = error_details_pb2.RetryInfo()
                    detail.Unpack(retry)
                    delay = retry.retry_delay.ToNanoseconds() / 1e9
    return reason, delay


def _reckon(fake: FakePipedrive, messages: list[Message], report: ChaosReport) -> None:
    zone = ZoneInfo(ZONE)
    day_of = {m: (conv, at.astimezone(zone).date()) for m, conv, at, _ in messages}
    created = {m: at for m, _, at, _ in messages}
    seen: Counter[str] = Counter()
    records_of_day: defaultdict[tuple[int, Any], set[int]] = defaultdict(set)
    report.records = len(fake.activities)
    for activity_id, activity in fake.activities.items():
        found = TOKEN.findall(str(activity.get("note") or ""))
        seen.update(found)
        if not found:
            report.misplaced += 0  # an empty record would be a phantom create: counted below as a record
            continue
        days = Counter(day_of[m] for m in found if m in day_of)
        home, _ = days.most_common(1)[0]
        report.misplaced += sum(count for day, count in days.items() if day != home)
        records_of_day[home].add(activity_id)
        times = [created[m] for m in found if m in created]
        if times != sorted(times):
            report.out_of_order_records += 1
        if f"Conversation ({len(found)} message" not in str(activity["note"]):
            report.out_of_order_records += 1
    report.in_crm = sum(1 for m in day_of if seen[m] > 0)
    report.duplicates = sum(count - 1 for count in seen.values() if count > 1)
    report.lost_ids = sorted(m for m in day_of if seen[m] == 0)
    report.lost = len(report.lost_ids)
    all_days = set(day_of.values())
    report.conversation_days = len(all_days)
    report.conversation_days_with_one_record = sum(1 for day in all_days if len(records_of_day[day]) == 1)


def _day_range(text: str) -> tuple[int, int]:
    nearest, _, farthest = text.partition("-")
    return int(nearest), int(farthest or nearest)


def main() -> int:
    # Servers killed mid-request drop their connections to the fake CRM on purpose; aiohttp would
    # print a traceback for each.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = ChaosConfig()
    names = ("processes", "callers", "messages", "conversations", "kills", "seed", "burst")
    for name in (*names, "burst_conversations", "burst_in_flight"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    parser.add_argument(
        "--days-back",
        type=_day_range,
        default=defaults.days_back,
        help="NEAREST-FARTHEST: how many days before today the conversations' days lie",
    )
    parser.add_argument(
        "--postgres-url", default=os.environ.get("MESSAGELOG_TEST_POSTGRES_URL", defaults.postgres_url)
    )
    parser.add_argument("--log-dir", type=Path, default=None)
    args = parser.parse_args()
    config = ChaosConfig(**{k: v for k, v in vars(args).items()})
    report = asyncio.run(run(config))
    print(report.render(config))
    print(json.dumps({"clean": report.clean}))
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
