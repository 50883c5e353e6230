"""The fake Pipedrive in a process of its own, for `make bench`.

    python -m bench.fake_crm --port 18090 --delay 0.1 --burst-limit 480

It answers like tests/fakes/pipedrive.py, with every request's reply delayed by --delay seconds, and
takes any `Bearer pd-token-<company>` token with Pipedrive's 2-second burst limit per token (each
company has its own). It counts what it served: GET /__stats returns
{"requests": {"<METHOD> <route>": n}, "rate_limited": n}; POST /__reset zeroes the counts. Neither
is counted nor rate limited. Requests are counted, not kept, so a long run does not grow its memory.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
import time
from collections import Counter

from tests.fakes.base import FakeRequest, FakeResponse, Fault
from tests.fakes.pipedrive import FakePipedrive

_ID = re.compile(r"/\d+")


class CountingPipedrive(FakePipedrive):
    def __init__(self, *, burst_limit: int, reply_delay: float) -> None:
        super().__init__(burst_limit=burst_limit)
        self.reply_delay = reply_delay
        self.counts: Counter[str] = Counter()
        # The base fake keeps one burst window; here each token (company) has its own.
        self._windows: dict[str, tuple[float, int]] = {}

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not token.startswith("pd-token"):
            return super().authorize(request)
        # Each token is its own company, numbered by the order tokens are first seen.
        self.companies.setdefault(token, 7001 + len(self.companies))
        self._window_start, self._window_count = self._windows.get(token, (time.monotonic(), 0))
        try:
            return super().authorize(request)
        finally:
            self._windows[token] = (self._window_start, self._window_count)

    async def handle(self, request: FakeRequest) -> FakeResponse | Fault:
        if request.path == "/__stats":
            return FakeResponse(200, {"requests": dict(self.counts)})
        if request.path == "/__reset":
            self.counts.clear()
            return FakeResponse(204)
        answer = await super().handle(request)
        self.requests.clear()
        self.identity_lookups.clear()
        self.counts[f"{request.method} {_ID.sub('/{id}', request.path)}"] += 1
        if isinstance(answer, FakeResponse) and answer.status == 429:
            self.counts["rate_limited"] += 1
        return answer


async def _serve(port: int, delay: float, burst_limit: int) -> None:
    fake = CountingPipedrive(burst_limit=burst_limit, reply_delay=delay)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with fake.serve(port) as url:
        print(f"fake_crm ready {url}", flush=True)
        await stop.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.1, help="seconds before every reply")
    parser.add_argument("--burst-limit", type=int, default=480, help="requests per token per 2 s")
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.delay, args.burst_limit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
