"""At rest: message text, names and phone numbers are sealed in the store, whose files are 0600.

Issue 12, item 7: the store kept message text, names and full phone numbers in plain text for the
retention window, in files of mode 0644.
"""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb

from service.config import Settings
from service.server import StartupError, running
from service.store.sealing import Sealer, UnsealableValue, new_key, parse_key
from tests.conftest import Harness, base_env, fake_pipedrive, harness_for
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import CONTACT_PHONE, add_request, sms

AUTH = "Bearer pd-token"
SECRET_TEXT = "please pay invoice 7731 to IBAN XX00 4455"
PERSONS_EDIT = "Call notes by Alice: customer agreed to the quote of 4,250"
# Neither the request's names nor the full number may be readable in the store's files.
PLAIN_VALUES = (SECRET_TEXT, "Jane Doe", CONTACT_PHONE.removeprefix("+"), "IBAN")


def at(minutes_ago: float) -> str:
    """A creation time `minutes_ago` before yesterday's 14:00 UTC: one local day in New York for
    every minute these tests use, whenever they run."""
    anchor = datetime.now(UTC).replace(hour=14, minute=0, second=0, microsecond=0) - timedelta(days=1)
    return (anchor - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def log(h: Harness, message_id: str, minutes_ago: int, text: str) -> pb.LogOutcome:
    response = await h.add(add_request("pipedrive", sms(message_id, at(minutes_ago), text)))
    return response.outcome


def store_bytes(folder: Path) -> bytes:
    """Everything the SQLite store wrote: the database and its journal files."""
    return b"".join(path.read_bytes() for path in sorted(folder.glob("store.db*")) if path.suffix != ".key")


def modes(folder: Path) -> dict[str, int]:
    """The permission bits of every file of the store (database, journals, key file)."""
    return {path.name: mode(path) for path in folder.glob("store.db*")}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def default_env(env: dict[str, str]) -> dict[str, str]:
    """The embedded SQLite default: no key configured."""
    return {**env, "MESSAGELOG_STORE_KEY": ""}


async def test_the_default_store_seals_entries_and_edits_with_a_0600_key_file_beside_it(
    tmp_path: Path, default_env: dict[str, str]
) -> None:
    async with harness_for(FakePipedrive(), AUTH, default_env) as h:
        assert await log(h, "m1", 30, SECRET_TEXT) == pb.LOG_OUTCOME_CREATED
        (activity,) = fake_pipedrive(h).activities.values()
        activity["note"] = f"<p>{PERSONS_EDIT}</p>"  # kept by the next append, as the person's text
        assert await log(h, "m2", 20, "second message") == pb.LOG_OUTCOME_APPENDED
        assert await log(h, "m3", 10, "third message") == pb.LOG_OUTCOME_APPENDED
        note = activity["note"]
        written = store_bytes(tmp_path)

    # Sealed, and opened again for every append: the record still reads whole.
    assert PERSONS_EDIT in note and "third message" in note
    for plain in (*PLAIN_VALUES, PERSONS_EDIT, "second message", "third message"):
        assert plain.encode() not in written, plain
    assert b"sealed:v1:" in written
    files = modes(tmp_path)
    assert "store.db.key" in files
    assert files == dict.fromkeys(files, 0o600)


async def test_an_existing_world_readable_store_is_made_0600(
    tmp_path: Path, default_env: dict[str, str]
) -> None:
    database = tmp_path / "store.db"
    database.touch(mode=0o644)
    os.chmod(database, 0o644)  # whatever the umask made of it

    async with harness_for(FakePipedrive(), AUTH, default_env) as h:
        await log(h, "m1", 5, SECRET_TEXT)

    assert mode(database) == 0o600


async def test_a_rotated_key_seals_new_entries_and_the_old_key_still_opens_earlier_ones(
    tmp_path: Path, env: dict[str, str]
) -> None:
    old, new = new_key(), new_key()
    fake = FakePipedrive()
    async with harness_for(fake, AUTH, {**env, "MESSAGELOG_STORE_KEY": old}) as h:
        await log(h, "m1", 30, "before the rotation")

    # Without the old key the earlier entry cannot be opened, so the record is not rewritten.
    async with harness_for(fake, AUTH, {**env, "MESSAGELOG_STORE_KEY": new}) as h:
        status = await h.add_error(add_request("pipedrive", sms("m2", at(20), "lost")))
    assert status.code == grpc.StatusCode.INTERNAL

    # A mounted key file: the first key seals, the next lines open.
    key_file = tmp_path / "keys"
    key_file.write_text(f"# rotated today\n{new}\n{old}\n")
    rotated = {**env, "MESSAGELOG_STORE_KEY": "", "MESSAGELOG_STORE_KEY_FILE": str(key_file)}
    async with harness_for(fake, AUTH, rotated) as h:
        assert await log(h, "m3", 10, "after the rotation") == pb.LOG_OUTCOME_APPENDED
        (activity,) = fake.activities.values()
        assert "before the rotation" in activity["note"]
        assert "after the rotation" in activity["note"]

    # The new key alone now opens the entry written after the rotation, not the one before.
    sealer = Sealer([parse_key(new, "new")])
    old_only = Sealer([parse_key(old, "old")])
    sealed = sealer.seal("after the rotation", "messages.entry/1/m3")
    assert sealer.open(sealed, "messages.entry/1/m3") == "after the rotation"
    with pytest.raises(UnsealableValue):
        old_only.open(sealed, "messages.entry/1/m3")


def test_a_sealed_value_opens_only_in_its_place_and_unaltered() -> None:
    sealer = Sealer([parse_key(new_key(), "key")])
    sealed = sealer.seal(SECRET_TEXT, "messages.entry/1/m1")

    with pytest.raises(UnsealableValue):
        sealer.open(sealed, "messages.entry/2/m1")  # copied into another digest's row
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(UnsealableValue):
        sealer.open(tampered, "messages.entry/1/m1")
    # A value stored before sealing existed is read as it is.
    assert sealer.open('{"message_id": "m0"}', "messages.entry/1/m0") == '{"message_id": "m0"}'


@pytest.mark.parametrize("key", ["not base64!", "c2hvcnQ=", ""])
async def test_a_bad_key_stops_startup_without_quoting_it(tmp_path: Path, key: str) -> None:
    environ = {
        **base_env(tmp_path),
        "MESSAGELOG_STORE_KEY": "",
        "MESSAGELOG_STORE_KEY_FILE": str(tmp_path / "k"),
    }
    (tmp_path / "k").write_text(key)
    with pytest.raises(StartupError) as raised:
        async with running(Settings.from_env(environ)):
            pass
    assert "MESSAGELOG_STORE_KEY_FILE" in str(raised.value)
    assert not key or key not in str(raised.value)


@pytest.mark.postgres
async def test_a_postgresql_store_needs_a_configured_key(pg_url: str, tmp_path: Path) -> None:
    environ = {**base_env(tmp_path), "MESSAGELOG_DATABASE_URL": pg_url, "MESSAGELOG_STORE_KEY": ""}
    with pytest.raises(StartupError, match="MESSAGELOG_STORE_KEY"):
        async with running(Settings.from_env(environ)):
            pass
