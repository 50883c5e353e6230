"""The committed stubs and descriptor set in clients/ are exactly what `make proto` makes from protos/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)],
        cwd=ROOT,
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "messagelog" / "v1").iterdir()}
    committed = {
        p.relative_to(ROOT / "clients"): p.read_bytes()
        for p in (ROOT / "clients" / "messagelog" / "v1").iterdir()
        if p.name != "__init__.py" and p.suffix in (".py", ".pyi", ".binpb")
    }
    assert fresh.keys() == committed.keys(), "run `make proto` and commit clients/"
    stale = sorted(str(name) for name in fresh if fresh[name] != committed[name])
    assert not stale, f"stale generated files {stale}: run `make proto` and commit clients/"
