"""Message text sealed at rest: what the store keeps of a message is encrypted with AES-256-GCM.

The store keeps, until its digest is purged, each message's entry (text, sender name, full phone
number, links: the `entry` column of messages) and a person's edit of a record (the `kept_body`
of digests). Both are sealed here before they are written and opened after they are read; the
rest of a row (hashed scope, CRM ids, times, states) is what the digest logic works with and holds
no message text, name or phone number.

Keys, 32 random bytes written in base64 (e.g. `python -c "import base64, os;
print(base64.urlsafe_b64encode(os.urandom(32)).decode())"`), come from, in this order:
- MESSAGELOG_STORE_KEY (the key) and MESSAGELOG_STORE_OLD_KEYS (comma-separated, open only);
- MESSAGELOG_STORE_KEY_FILE, a file such as a mounted secret: the first key line seals, every
  further line is an old key that only opens; blank lines and # comments are skipped;
- for an SQLite store only, `<database file>.key` beside the database, generated on first start
  with mode 0600. A PostgreSQL store is shared by processes that must agree on the key, so it
  does not start without one of the two above.

Rotation: put the new key first and keep the old one as an old key; new writes are sealed with
the new key and rows sealed with the old one still open. A row lives until its digest is purged
(MESSAGELOG_RETENTION_DAYS after its day, once every message is logged), so the old key can be
dropped that long after the rotation. Each sealed value names its key by a short fingerprint.

A value is bound to its place (column and row) as GCM's associated data, so a sealed entry copied
into another row does not open. Values written before sealing existed (plain JSON or text) are
read as they are and go with the retention purge.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.config import SettingsError

PREFIX = "sealed:v1:"
KEY_BYTES = 32
_NONCE_BYTES = 12
_KEY_ID_BYTES = 4
_BODY_AT = _KEY_ID_BYTES + _NONCE_BYTES


class UnsealableValue(Exception):
    """A sealed value no configured key opens (a missing old key, or a value altered in the store)."""


class Sealer:
    """Seals with the first key; opens with any of them."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise SettingsError("the store needs at least one key")
        self._ciphers = {_key_id(key): AESGCM(key) for key in keys}
        self._sealing_id = _key_id(keys[0])
        self._sealing = self._ciphers[self._sealing_id]

    def seal(self, text: str, place: str) -> str:
        """text, encrypted and bound to `place` (which column of which row holds it)."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._sealing.encrypt(nonce, text.encode(), place.encode())
        return PREFIX + base64.urlsafe_b64encode(self._sealing_id + nonce + sealed).decode()

    def open(self, stored: str, place: str) -> str:
        """The text of a value seal() made for the same place; a value from before sealing as it is."""
        if not stored.startswith(PREFIX):
            return stored
        raw = base64.urlsafe_b64decode(stored[len(PREFIX) :])
        key_id, nonce, sealed = raw[:_KEY_ID_BYTES], raw[_KEY_ID_BYTES:_BODY_AT], raw[_BODY_AT:]
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnsealableValue(f"a stored value was sealed with a key not configured ({key_id.hex()})")
        try:
            return cipher.decrypt(nonce, sealed, place.encode()).decode()
        except InvalidTag:
            raise UnsealableValue("a stored value does not open: it was altered or moved") from None


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:_KEY_ID_BYTES]


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode()


def parse_key(text: str, where: str) -> bytes:
    """A key written in base64 (standard or URL-safe alphabet); errors never quote it."""
    try:
        key = base64.b64decode(text.strip().replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(f"{where} is not base64") from None
    if len(key) != KEY_BYTES:
        raise SettingsError(f"{where} must be {KEY_BYTES} bytes in base64, not {len(key)}")
    return key


def sealer_for(environ: Mapping[str, str], database_url: str) -> Sealer:
    """The store's sealer from the environment (see the module docstring)."""
    if environ.get("MESSAGELOG_STORE_KEY", ""):
        old = [k for k in environ.get("MESSAGELOG_STORE_OLD_KEYS", "").split(",") if k.strip()]
        return Sealer(
            [parse_key(environ["MESSAGELOG_STORE_KEY"], "MESSAGELOG_STORE_KEY")]
            + [parse_key(k, f"MESSAGELOG_STORE_OLD_KEYS item {n}") for n, k in enumerate(old, start=1)]
        )
    if environ.get("MESSAGELOG_STORE_KEY_FILE", ""):
        return Sealer(_keys_in_file(Path(environ["MESSAGELOG_STORE_KEY_FILE"]), "MESSAGELOG_STORE_KEY_FILE"))
    if database_url.startswith("sqlite:///"):
        return Sealer(_keys_in_file(_generated_key_file(database_url), "the store's key file"))
    raise SettingsError(
        "a PostgreSQL store needs MESSAGELOG_STORE_KEY or MESSAGELOG_STORE_KEY_FILE: message text is"
        " encrypted at rest (see the README's security section)"
    )


def _keys_in_file(path: Path, name: str) -> list[bytes]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read {name} ({path}): {type(exc).__name__}") from None
    lines = [line.strip() for line in text.splitlines()]
    keys = [line for line in lines if line and not line.startswith("#")]
    if not keys:
        raise SettingsError(f"{name} ({path}) holds no key")
    return [parse_key(key, f"{name} key {n}") for n, key in enumerate(keys, start=1)]


def _generated_key_file(database_url: str) -> Path:
    """`<database file>.key`, made with mode 0600 on first use (never replaced once it exists)."""
    path = Path(database_url.removeprefix("sqlite:///") + ".key")
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    except OSError as exc:
        raise SettingsError(f"cannot create the store's key file {path}: {type(exc).__name__}") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as key_file:
        key_file.write(
            "# The key that encrypts message text in the store beside this file (see the README).\n"
            "# Losing it makes the stored messages unreadable; never share it.\n"
            f"{new_key()}\n"
        )
    return path
