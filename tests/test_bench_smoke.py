"""`make bench` runs end to end: tiny trickle, instant and one-account burst scenarios through real
processes."""

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
            "trickle,instant,burst-one-account",
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
        assert int(cells[4].replace(",", "")) >= 10  # messages logged
        assert cells[-2] == "0"  # errors
        # CRM calls per message: one write, plus at an account's first call its two lookups (at this
        # size nearly every call is an account's first).
        assert 0 < float(cells[9]) <= 3.0
    # Settings a user would not have are printed beside the figures they change.
    assert rows["instant"][2].strip() == "`MESSAGELOG_CRM_PIPEDRIVE_RATE=off`"
    assert rows["trickle"][2].strip() == "none"
    # A burst of one account from one caller is logged, none of it refused, its messages combined.
    burst = [cell.strip() for cell in rows["burst-one-account"]]
    assert (burst[4], burst[-2]) == ("100", "0")
    assert float(burst[9]) <= 0.2
