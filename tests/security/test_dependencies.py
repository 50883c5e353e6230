"""Dependency hygiene and what the store keeps: pinned, auditable dependencies; no credentials at rest."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms, update_request

ROOT = Path(__file__).resolve().parents[2]
CRM_TOKEN = "pd-secret-a81f6e"


async def test_the_store_never_keeps_credentials(make_harness: Callable[..., Any], tmp_path: Path) -> None:
    async with make_harness(FakePipedrive(token=CRM_TOKEN), f"Bearer {CRM_TOKEN}") as h:
        created = await h.add(add_request("pipedrive", sms("m1")))
        await h.add(add_request("pipedrive", sms("m2", "2026-11-20T15:05:00Z")))
        await h.update(
            update_request(add_request("pipedrive", sms("m3", "2026-11-20T15:06:00Z")), created.log_id)
        )
        await h.add_error(add_request("pipedrive", sms("m4")), auth="Bearer wrong-a81f6e")

    rows, files = stored(tmp_path)
    assert "m1" in "".join(rows)  # the scan reads the data that matters
    for blob in rows + files:
        assert CRM_TOKEN not in blob
        assert "a81f6e" not in blob


def stored(folder: Path) -> tuple[list[str], list[str]]:
    """Every row of every table, and the raw database files (free pages and WAL included)."""
    files = [path.read_bytes().decode("latin-1") for path in folder.glob("store.db*")]
    with sqlite3.connect(folder / "store.db") as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = [repr(db.execute(f'SELECT * FROM "{table}"').fetchall()) for table in tables]  # noqa: S608
    return rows, files


def test_every_locked_dependency_is_pinned_and_the_audit_target_is_separate() -> None:
    lock = [line for line in (ROOT / "requirements.lock").read_text().splitlines() if line.strip()]
    assert lock
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", line) for line in lock)
    assert any(line.startswith("pip_audit==") for line in lock)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^audit: .*\n\t.*scripts/audit\.sh", makefile, re.MULTILINE)
    (test_line,) = [line for line in makefile.splitlines() if line.startswith("test:")]
    assert "audit" not in test_line
