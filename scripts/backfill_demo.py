"""`make backfill-demo`: a 5,000-message export backfilled through the real service into a fake Pipedrive.

The fake CRM runs here (tests/fakes), the service runs as `python -m service` and the backfill as
the `messagelog` console script, each its own process, as they would in production. Run from the
repository root with it on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.fakes import message_store
from tests.fakes.pipedrive import FakePipedrive

BIN = Path(sys.executable).parent


async def wait_for_port(log: Path, process: asyncio.subprocess.Process) -> int:
    for _ in range(300):
        text = await asyncio.to_thread(log.read_text)
        for line in text.splitlines():
            event = json.loads(line)
            if event.get("event") == "server_started":
                return int(event["port"])
        if process.returncode is not None:
            raise SystemExit(f"the service exited with {process.returncode}: {text[-500:]}")
        await asyncio.sleep(0.1)
    raise SystemExit("the service did not start in 30 s")


async def demo(args: argparse.Namespace, work: Path) -> int:
    exported = message_store.records(args.count, conversations=args.conversations)
    lines = message_store.write(work / "export.jsonl", exported)
    context = work / "context.json"
    context.write_text(json.dumps(message_store.context(args.conversations)))
    fake = FakePipedrive(burst_limit=args.burst_limit)
    async with fake.serve() as base_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESSAGELOG_")}
        env |= {
            "MESSAGELOG_PORT": "0",
            "MESSAGELOG_DATABASE_URL": f"sqlite:///{work / 'store.db'}",
            "MESSAGELOG_LOG_FORMAT": "json",
            "MESSAGELOG_CRM_PIPEDRIVE_BASE_URL": base_url,
        }
        server_log = work / "server.log"
        with server_log.open("w") as sink:
            server = await asyncio.create_subprocess_exec(
                str(BIN / "python"), "-m", "service", env=env, stderr=sink
            )
        try:
            port = await wait_for_port(server_log, server)
            print(
                f"demo: {args.count} messages over {args.conversations} conversations; fake Pipedrive "
                f"allows {args.burst_limit} requests per 2 s; service on port {port}",
                flush=True,
            )
            started = time.monotonic()
            backfill = await asyncio.create_subprocess_exec(
                str(BIN / "messagelog"), "backfill", str(lines), "--context", str(context),
                "--target", f"127.0.0.1:{port}", "--concurrency", str(args.concurrency),
                "--progress-every", "2", "--crm-authorization", "Bearer pd-token",
            )  # fmt: skip
            code = await backfill.wait()
            elapsed = time.monotonic() - started
        finally:
            server.send_signal(signal.SIGTERM)
            await server.wait()
    expected = message_store.expected_outcomes(exported)
    print(
        f"demo: elapsed {elapsed:.1f} s; the fake holds {len(fake.activities)} activities "
        f"(expected {expected['created']}) after {len(fake.requests)} CRM requests",
        flush=True,
    )
    return code or int(len(fake.activities) != expected["created"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--conversations", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--burst-limit", type=int, default=400, help="fake Pipedrive requests per 2 s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="backfill-demo-") as work:
        return asyncio.run(demo(args, Path(work)))


if __name__ == "__main__":
    sys.exit(main())
