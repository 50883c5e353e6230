"""`make bench` runs end to end: a tiny trickle and instant scenario through real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_bench_harness_runs_and_reports_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--scale",
            "0.002",
            "--only",
            "trickle,instant",
            "--echo-seconds",
            "1",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )

    table = out.read_text()
    assert "**Echo ceiling**" in table
    rows = {
        line.split("|")[1].strip(): line.split("|") for line in table.splitlines() if line.startswith("| ")
    }
    for name in ("trickle", "instant"):
        cells = [cell.strip() for cell in rows[name]]
        assert int(cells[3].replace(",", "")) >= 10  # messages logged
        assert cells[-2] == "0"  # errors
        # CRM calls per message: one write, plus at an account's first call its two lookups (at this
        # size nearly every call is an account's first).
        assert 0 < float(cells[8]) <= 3.0
