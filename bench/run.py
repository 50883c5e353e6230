"""`make bench`: the service under load on this machine, as ratios to this machine's gRPC ceiling.

    python -m bench.run                # the full run (a few minutes), writes bench/results.md
    python -m bench.run --scale 0.1    # every scenario at a tenth of its size, for a quick look
    python -m bench.run --only instant,burst --out /tmp/results.md

Every scenario starts its own processes: the service (`python -m service`, on a fresh SQLite file,
or two processes on a fresh PostgreSQL database), the fake Pipedrive (`python -m bench.fake_crm`,
with a reply latency and Pipedrive's burst limit) and the load generator (`python -m
bench.loadgen`). Server CPU is utime+stime from /proc/<pid>/stat over the load, peak RSS is VmHWM
from /proc/<pid>/status, CRM calls are the fake's own count (GET /__stats), latencies are the load
generator's. The echo ceiling is the same load generator calling the server's health check.
PostgreSQL is the server of MESSAGELOG_TEST_POSTGRES_URL (as for the tests), on a database made
for the run and dropped after it; without one that scenario is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import socket
import sqlite3
import sys
import tempfile
import time
import urllib.request
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
POSTGRES_URL = os.environ.get("MESSAGELOG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Pipedrive's burst limit is 20-480 requests per token per 2 s, by plan (80-480 for OAuth tokens);
# the fake plays the top plan, and the service keeps its default budget (the lowest OAuth plan's,
# 80 per 2 s) unless a scenario's `settings` say otherwise, printed beside its figures.
PIPEDRIVE_BURST = 480
PIPEDRIVE_LOWEST_OAUTH_BURST = 80


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    messages: int
    conversations: int
    accounts: int = 20
    crm_delay: float = 0.1
    burst_limit: int = PIPEDRIVE_BURST
    rate: float = 0.0
    concurrency: int = 64
    order: str = "round-robin"
    store: str = "sqlite"
    processes: int = 1
    transport: str = "aiohttp"
    prefill: int = 0
    echo: bool = False
    # Settings that differ from what a user gets (MESSAGELOG_* name -> value); printed with the row.
    settings: tuple[tuple[str, str], ...] = ()


@dataclass
class Result:
    scenario: Scenario
    load: dict[str, Any]
    crm: dict[str, int]
    server_cpu_seconds: float
    server_rss_mb: list[float]
    fake_rss_mb: float
    echo: dict[str, Any] | None = None
    prefill_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return int(self.load["ok"])

    @property
    def crm_calls(self) -> int:
        return sum(n for key, n in self.crm.items() if key != "rate_limited")

    @property
    def calls_per_message(self) -> float:
        return self.crm_calls / self.messages if self.messages else 0.0

    @property
    def cpu_ms_per_message(self) -> float:
        return 1000 * self.server_cpu_seconds / self.messages if self.messages else 0.0


def scenarios(scale: float) -> list[Scenario]:
    def n(count: int) -> int:
        return max(10, int(count * scale))

    instant = Scenario(
        "instant",
        "CRM latency 0, closed loop, 64 in flight",
        messages=n(8000),
        conversations=n(2000),
        crm_delay=0.0,
        burst_limit=10**9,
        echo=True,
        # A CRM without a rate limit, to find the service's own ceiling: its Pipedrive budget
        # (80 per 2 s per company) would otherwise be the figure measured.
        settings=(("MESSAGELOG_CRM_PIPEDRIVE_RATE", "off"),),
    )
    return [
        Scenario(
            "trickle",
            "1,000 conversations, 200 messages/s offered, CRM latency 100 ms",
            messages=n(6000),
            conversations=1000,
            rate=200.0,
        ),
        Scenario(
            "burst",
            "200 conversations x 50 messages at once, CRM latency 100 ms",
            messages=200 * n(50),
            conversations=200,
            concurrency=1000,
            order="conversation",
            # Many tenants syncing at once: two conversations per company.
            accounts=100,
        ),
        Scenario(
            "burst-one-account",
            "a history sync: 1,000 messages of one company from one caller, 200 in flight,"
            " 25 conversations, CRM latency 100 ms, the fake at the lowest OAuth plan's burst limit",
            messages=max(100, int(1000 * scale)),
            # 40 messages per conversation, as in the full run, whatever the scale.
            conversations=max(2, int(25 * scale)),
            accounts=1,
            concurrency=200,
            order="conversation",
            burst_limit=PIPEDRIVE_LOWEST_OAUTH_BURST,
        ),
        instant,
        Scenario(
            **{
                **instant.__dict__,
                "name": "instant-httpx",
                "transport": "httpx",
                "echo": False,
                "what": instant.what + ", plain httpx transport",
            }
        ),
        Scenario(
            **{
                **instant.__dict__,
                "name": "instant-pg",
                "store": "postgresql",
                "processes": 2,
                "what": instant.what + ", PostgreSQL, 2 server processes",
            }
        ),
        Scenario(
            **{
                **instant.__dict__,
                "name": "large-store",
                "prefill": n(5_000_000),
                "echo": False,
                "what": instant.what + ", store prefilled",
            }
        ),
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat; 3 is the first after the command name.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


_STORE_KEY = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESSAGELOG_")}
    env["PYTHONPATH"] = str(ROOT)
    # Message text is sealed at rest; a PostgreSQL store needs the key given (service/store/sealing.py).
    env["MESSAGELOG_STORE_KEY"] = _STORE_KEY
    env.update(extra)
    return env


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=30)
        except TimeoutError:
            process.kill()
            await process.wait()


@asynccontextmanager
async def fake_crm(delay: float, burst_limit: int, log: Any) -> Any:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.fake_crm",
        "--port",
        str(port),
        "--delay",
        str(delay),
        "--burst-limit",
        str(burst_limit),
        cwd=ROOT,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    if b"ready" not in line:
        raise RuntimeError("the fake CRM did not start")
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        await _stop(process)


def crm_stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/__stats", timeout=10) as reply:  # noqa: S310 (our own fake)
        return dict(json.load(reply)["requests"])


def crm_reset(url: str) -> None:
    request = urllib.request.Request(f"{url}/__reset", method="POST")  # noqa: S310 (our own fake)
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310


async def _server(env: dict[str, str], port: int, log: Any) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        cwd=ROOT,
        env={**env, "MESSAGELOG_PORT": str(port)},
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"the server exited with {process.returncode}; see {log.name}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return process
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not start")


async def loadgen(*args: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.loadgen",
        *args,
        cwd=ROOT,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed with {process.returncode}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def _postgres_database(stack: AsyncExitStack) -> str:
    import asyncpg

    admin = await asyncpg.connect(POSTGRES_URL, timeout=10)
    name = f"messagelog_bench_{secrets.token_hex(4)}"
    await admin.execute(f'CREATE DATABASE "{name}"')

    async def drop() -> None:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    stack.push_async_callback(drop)
    return POSTGRES_URL.rpartition("/")[0] + f"/{name}"


async def _postgres_reachable() -> bool:
    import asyncpg

    try:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return False
    await connection.close()
    return True


def prefill_sqlite(path: Path, count: int) -> None:
    """count logged messages, ten per digest, on days inside the retention window, in one transaction."""
    entry = json.dumps(
        {
            "message_id": "x",
            "created_ms": 0,
            "direction": "inbound",
            "sender": "+16505550000",
            "recipients": ["+18885550052"],
            "text": "Prefilled message text of typical length " * 3,
        }
    )
    now = int(time.time() * 1000)
    today = datetime.now(UTC).date()
    digests = -(-count // 10)
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        with db:
            db.execute(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1) "
                "INSERT INTO digests (id, scope, thread_key, local_date, kind, crm, account_host,"
                " crm_user_id, contact_id, crm_log_id, ref, created_ms, updated_ms) "
                "SELECT i + 1, printf('pre%061d', i / 4), 'sms:pre-' || i,"
                " date(?, '-' || (i % 30) || ' days'), 'sms', 'pipedrive', 'pre.pipedrive.com', '1',"
                " 'c' || i, 'rec' || i, 'ref', ?, ? FROM n",
                (digests, today.isoformat(), now, now),
            )
            db.execute(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1) "
                "INSERT INTO messages (scope, message_id, digest_id, created_ms, state, logged_via, owner,"
                " entry, recorded_ms) "
                "SELECT printf('pre%061d', i / 40), 'pre-' || i, i / 10 + 1, ? + i, 'logged', 'append',"
                " 'prefill', ?, ? FROM n",
                (count, now - 86_400_000, entry, now),
            )
        db.execute("ANALYZE")
        # Else the service's first checkpoint copies the whole prefill out of the WAL mid-measurement.
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


async def run_scenario(scenario: Scenario, work: Path, echo_seconds: float) -> Result:
    log = (work / f"{scenario.name}.log").open("ab")
    try:
        async with AsyncExitStack() as stack:
            stack.callback(log.close)
            fake, crm_url = await stack.enter_async_context(
                fake_crm(scenario.crm_delay, scenario.burst_limit, log)
            )
            prefill_seconds = 0.0
            if scenario.store == "sqlite":
                path = work / f"{scenario.name}.db"
                database_url = f"sqlite:///{path}"
                if scenario.prefill:
                    started = time.monotonic()
                    await _migrate(database_url)
                    prefill_sqlite(path, scenario.prefill)
                    prefill_seconds = time.monotonic() - started
            else:
                database_url = await _postgres_database(stack)
            env = _env(
                MESSAGELOG_DATABASE_URL=database_url,
                MESSAGELOG_CRM_PIPEDRIVE_BASE_URL=crm_url,
                MESSAGELOG_HTTP_TRANSPORT=scenario.transport,
                MESSAGELOG_LOG_FORMAT="json",
                **dict(scenario.settings),
            )
            ports = [_free_port() for _ in range(scenario.processes)]
            servers = []
            for port in ports:
                # One after the other: the first migrates a fresh database, the next find it done.
                servers.append(await _server(env, port, log))
                stack.push_async_callback(_stop, servers[-1])
            targets = ",".join(f"127.0.0.1:{port}" for port in ports)
            echo = None
            if scenario.echo:
                echo_cpu_before = sum(cpu_seconds(s.pid) for s in servers)
                echo = await loadgen(
                    "--targets",
                    targets,
                    "--mode",
                    "health",
                    "--seconds",
                    str(echo_seconds),
                    "--concurrency",
                    str(scenario.concurrency),
                )
                echo_cpu = sum(cpu_seconds(s.pid) for s in servers) - echo_cpu_before
                echo["server_cpu_ms_per_call"] = round(1000 * echo_cpu / max(echo["ok"], 1), 3)
            crm_reset(crm_url)
            cpu_before = sum(cpu_seconds(s.pid) for s in servers)
            load = await loadgen(
                "--targets",
                targets,
                "--messages",
                str(scenario.messages),
                "--conversations",
                str(scenario.conversations),
                "--accounts",
                str(scenario.accounts),
                "--concurrency",
                str(scenario.concurrency),
                "--rate",
                str(scenario.rate),
                "--order",
                scenario.order,
                "--run-id",
                f"{scenario.name}-{secrets.token_hex(3)}",
            )
            cpu = sum(cpu_seconds(s.pid) for s in servers) - cpu_before
            return Result(
                scenario=scenario,
                load=load,
                crm=crm_stats(crm_url),
                server_cpu_seconds=cpu,
                server_rss_mb=[peak_rss_mb(s.pid) for s in servers],
                fake_rss_mb=peak_rss_mb(fake.pid),
                echo=echo,
                prefill_seconds=prefill_seconds,
            )
    finally:
        # The large store's file is gigabytes; the logs stay for a post-mortem.
        for leftover in work.glob(f"{scenario.name}.db*"):  # noqa: ASYNC240 (between scenarios)
            leftover.unlink()


async def _migrate(database_url: str) -> None:
    from service.store import open_store

    store = await open_store(database_url)
    await store.close()


def render(results: list[Result], seconds: float, scale: float) -> str:
    ceiling = next((r.echo for r in results if r.echo), None)
    lines = [
        "# `make bench` results",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores"
        f" ({os.uname().machine}, Python {sys.version.split()[0]}), scale {scale:g}, {seconds:.0f} s in all."
        " The load generator, the fake CRM and the service share the machine; on a machine shared with"
        " other work the same scenario moves by up to 20% between runs, so compare rows of one run.",
        "",
    ]
    if ceiling:
        lines += [
            f"**Echo ceiling** (the same load generator calling the server's health check, 64 in flight):"
            f" {ceiling['per_second']:.0f} calls/s, p50 {ceiling['p50_ms']} ms, p99 {ceiling['p99_ms']} ms,"
            f" {ceiling['server_cpu_ms_per_call']} ms of server CPU per call.",
            "",
        ]
    lines += [
        "| scenario | settings changed | store | messages | msg/s | % of echo | p50 ms | p99 ms"
        " | CRM calls/msg | server CPU ms/msg | peak RSS MB (server; fake CRM; loadgen) | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r.scenario
        store = "SQLite" if s.store == "sqlite" else f"PostgreSQL x{s.processes}"
        if s.prefill:
            store += f" + {s.prefill:,} rows"
        share = f"{100 * r.load['per_second'] / ceiling['per_second']:.0f}%" if ceiling else "-"
        rss = "/".join(f"{m:.0f}" for m in r.server_rss_mb)
        lines.append(
            f"| {s.name} | {_settings(s)} | {store} | {r.messages:,} | {r.load['per_second']:.0f} | {share}"
            f" | {r.load['p50_ms']} | {r.load['p99_ms']} | {r.calls_per_message:.3f}"
            f" | {r.cpu_ms_per_message:.2f} | {rss}; "
            f"{r.fake_rss_mb:.0f}; {r.load['peak_rss_mb']:.0f} | {_errors(r)} |"
        )
    lines += ["", *targets(results, ceiling), "", "What ran:", ""]
    for r in results:
        s = r.scenario
        extra = f"; prefill took {r.prefill_seconds:.0f} s" if s.prefill else ""
        lines.append(
            f"- **{s.name}**: {s.what}; {s.messages:,} messages over {s.conversations:,} conversations in"
            f" {s.accounts} Pipedrive companies; burst limit {_limit(s.burst_limit)}; HTTP transport"
            f" {s.transport}{extra}. CRM requests: {_counts(r.crm)}."
        )
    return "\n".join(lines) + "\n"


def targets(results: list[Result], ceiling: dict[str, Any] | None) -> list[str]:
    """The issue's targets, each with the figure that decides it; a miss says why."""
    by = {r.scenario.name: r for r in results}
    lines = ["## Targets", "", "| target | measured | met |", "|---|---|---|"]

    def row(target: str, measured: str, met: bool, why: str = "") -> None:
        lines.append(f"| {target} | {measured} | {'yes' if met else 'no: ' + why} |")

    if trickle := by.get("trickle"):
        writes = sum(n for k, n in trickle.crm.items() if k.startswith(("POST", "PATCH", "PUT")))
        # Reading the record before appending is allowed (so a person's edit is kept); only the
        # per-account lookups must not grow with the messages.
        reads = sum(n for k, n in trickle.crm.items() if k.startswith("GET /api/v2/activities/"))
        lookups = sum(n for k, n in trickle.crm.items() if k.startswith("GET")) - reads
        created = trickle.load["outcomes"].get("LOG_OUTCOME_CREATED", 0)
        appended = trickle.messages - created
        row(
            "trickle: a create costs 1 call, an append at most 2, no per-message lookups",
            f"{trickle.calls_per_message:.3f} calls/message: {created} creates of 1 write; {appended} appends"
            f" of {(writes - created + reads) / max(appended, 1):.2f} calls (a record read, then a write);"
            f" {lookups} lookups for {trickle.scenario.accounts} accounts",
            writes <= trickle.messages and reads <= appended and lookups <= 2 * trickle.scenario.accounts,
            "more than one write per message, a read per message beyond the appends, or lookups per message",
        )
        calls_per_append = 2 if reads else 1
        paths = trickle.load["by_path"]
        cold = paths.get("cold", {"calls": 0, "p99_ms": 0.0})
        for outcome, path, calls in (
            ("LOG_OUTCOME_APPENDED", "an append", calls_per_append),
            ("LOG_OUTCOME_CREATED", "a create", 1),
        ):
            measured = paths.get(outcome)
            if measured is None:
                continue
            budget = 1000 * trickle.scenario.crm_delay * calls + 10
            row(
                f"trickle at 200 messages/s, {path} ({calls} CRM call{'s' if calls > 1 else ''}):"
                " p99 <= CRM latency x calls + 10 ms",
                f"p99 {measured['p99_ms']} ms against {budget:.0f} ms (p50 {measured['p50_ms']} ms,"
                f" {measured['calls']} calls); besides, {cold['calls']} calls sent before their company's"
                f" first reply (they may wait for its lookups): p99 {cold['p99_ms']} ms",
                measured["p99_ms"] <= budget,
                "the CRM requests themselves stay within a few ms of their delay (the service's crm_call"
                " log lines); the rest of the tail is the service's own queueing: its CPU per message"
                " keeps its core about half busy at this rate, so a call waits behind others' steps on"
                " the event loop",
            )
    if burst := by.get("burst"):
        row(
            "burst: <= 0.2 CRM calls per message",
            f"{burst.calls_per_message:.3f}",
            burst.calls_per_message <= 0.2,
            "messages were not combined",
        )
    if one := by.get("burst-one-account"):
        refused = sum(one.load["errors"].values())
        row(
            f"burst of one account from one caller ({one.scenario.messages:,} messages,"
            f" {one.scenario.concurrency} in flight; settings changed: {_settings(one.scenario)}):"
            " 0 refused, <= 0.1 CRM calls per message",
            f"{refused} refused ({_errors(one)}); {one.calls_per_message:.3f} CRM calls per message;"
            f" {one.crm.get('rate_limited', 0)} answered 429 by the fake",
            refused == 0 and one.calls_per_message <= 0.1,
            "calls were refused, or messages were not combined",
        )
    instant, pg = by.get("instant"), by.get("instant-pg")
    if instant and ceiling:
        share = instant.load["per_second"] / ceiling["per_second"]
        row(
            "instant CRM, SQLite: >= 20% of the echo ceiling",
            f"{instant.load['per_second']:.0f} of {ceiling['per_second']:.0f} calls/s = {100 * share:.0f}%",
            share >= 0.2,
            f"CPU-bound: the server process uses a whole core at {instant.cpu_ms_per_message:.2f} ms of CPU"
            f" per message, {instant.cpu_ms_per_message / ceiling['server_cpu_ms_per_call']:.0f} times an"
            " echo's; a message is one gRPC call plus, per message, 1.75 CRM requests over loopback HTTP,"
            " two to three store transactions, a rendered digest and about three log lines (a py-spy"
            " profile of this scenario is in the README)",
        )
    if instant and pg:
        row(
            "instant CRM: PostgreSQL with 2 processes no worse than SQLite",
            f"{pg.load['per_second']:.0f} against {instant.load['per_second']:.0f} messages/s",
            pg.load["per_second"] >= 0.95 * instant.load["per_second"],
            f"the 2 cores are shared by the 2 service processes ({pg.cpu_ms_per_message:.2f} ms of CPU per"
            f" message between them, against SQLite's {instant.cpu_ms_per_message:.2f}: each statement is a"
            " round trip to PostgreSQL), PostgreSQL's own backends, the load generator and the fake CRM",
        )
    if (large := by.get("large-store")) and instant:
        ratio = large.load["per_second"] / instant.load["per_second"]
        p99 = large.load["p99_ms"] / instant.load["p99_ms"] if instant.load["p99_ms"] else 1.0
        row(
            f"large store ({large.scenario.prefill:,} rows): throughput and p99 within 10% of empty",
            f"throughput {100 * ratio:.0f}%, p99 {100 * p99:.0f}% of the empty store's",
            ratio >= 0.9 and p99 <= 1.1,
            "the bigger B-trees (one more level, inserts at random places of a 2 GB file, more of"
            " them written back at each WAL checkpoint); the p99 also moves most with the machine's"
            " other load",
        )
    worst = max((max(*r.server_rss_mb, r.fake_rss_mb, r.load["peak_rss_mb"]) for r in results), default=0)
    row("peak RSS <= 200 MB per process, every scenario", f"largest {worst:.0f} MB", worst <= 200, "")
    return lines


def _settings(s: Scenario) -> str:
    return ", ".join(f"`{name}={value}`" for name, value in s.settings) or "none"


def _limit(limit: int) -> str:
    return "off" if limit >= 10**9 else f"{limit} per 2 s"


def _errors(r: Result) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(r.load["errors"].items())) or "0"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


async def main_async(args: argparse.Namespace) -> int:
    chosen = [s for s in scenarios(args.scale) if not args.only or s.name in args.only.split(",")]
    started = time.monotonic()
    results = []
    work = Path(tempfile.mkdtemp(prefix="messagelog-bench-"))
    print(f"bench: process logs in {work}", file=sys.stderr, flush=True)
    for scenario in chosen:
        if scenario.store == "postgresql" and not await _postgres_reachable():
            print(f"bench: {scenario.name}: skipped, no PostgreSQL at {POSTGRES_URL}", file=sys.stderr)
            continue
        print(f"bench: {scenario.name}: {scenario.what} ...", file=sys.stderr, flush=True)
        result = await run_scenario(scenario, work, args.echo_seconds)
        results.append(result)
        print(f"bench: {scenario.name}: {json.dumps(result.load)}", file=sys.stderr, flush=True)
    table = render(results, time.monotonic() - started, args.scale)
    print(table)
    args.out.write_text(table)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every scenario's size")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--echo-seconds", type=float, default=5.0, help="how long the echo ceiling runs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.md")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
