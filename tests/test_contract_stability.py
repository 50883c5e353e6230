"""`buf breaking` keeps v1 stable: a renumbered field fails it, and so does `make lint`'s step in a
fresh clone of main (CI's checkout) and on a branch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUF = Path(sys.executable).parent / "buf"
CHECK = ROOT / "scripts" / "buf_breaking.sh"
PROTO = Path("protos/messagelog/v1/message_log.proto")
FIELD = "  string hostname = 2;\n"


def renumber(protos_parent: Path) -> None:
    proto = protos_parent / PROTO
    text = proto.read_text()
    assert FIELD in text, "the field this test renumbers is still in the contract"
    proto.write_text(text.replace(FIELD, "  string hostname = 7;\n"))


def run(args: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"BUF": str(BUF), "PATH": "/usr/bin:/bin"},
    )


def git(repo: Path, *args: str) -> None:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"]
    subprocess.run(["git", *identity, *args], cwd=repo, check=True, capture_output=True)


def test_a_renumbered_field_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    unchanged = run([BUF, "breaking", tmp_path / "protos", "--against", ROOT / "protos"], tmp_path)
    renumber(tmp_path)

    broken = run([BUF, "breaking", tmp_path / "protos", "--against", ROOT / "protos"], tmp_path)

    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert broken.returncode != 0
    assert 'field "2" with name "hostname" on message "CrmUser" was deleted' in broken.stdout


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A repository whose main holds today's contract, as CI's clone source."""
    repo = tmp_path / "origin"
    shutil.copytree(ROOT / "protos", repo / "protos")
    git(repo, "init", "-q")
    git(repo, "add", "protos")
    git(repo, "commit", "-q", "-m", "contract")
    return repo


def test_a_fresh_clone_of_main_passes_until_a_commit_renumbers_a_field(origin: Path, tmp_path: Path) -> None:
    git(tmp_path, "clone", "-q", str(origin), "clean")
    clean = run([CHECK], tmp_path / "clean")
    renumber(origin)
    git(origin, "commit", "-q", "-am", "renumber")
    git(tmp_path, "clone", "-q", str(origin), "broken")

    broken = run([CHECK], tmp_path / "broken")

    assert clean.returncode == 0, clean.stderr
    assert broken.returncode == 1
    assert "breaks the v1 contract" in broken.stderr


def test_a_branch_is_checked_against_where_it_left_main(origin: Path) -> None:
    git(origin, "checkout", "-q", "-b", "feature")
    renumber(origin)

    uncommitted = run([CHECK], origin)
    git(origin, "commit", "-q", "-am", "renumber")
    committed = run([CHECK], origin)

    assert uncommitted.returncode == committed.returncode == 1
