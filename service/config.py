"""Settings, read once from the environment (MESSAGELOG_*); see the README's settings table."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 50051
DEFAULT_CRM_TIMEOUT_SECONDS = 10.0
PREFIX = "MESSAGELOG_"
# Read by other programs that share the prefix (the messagelog CLI, the tests), not by the service.
READ_ELSEWHERE = frozenset(
    {"MESSAGELOG_TARGET", "MESSAGELOG_CRM_AUTHORIZATION", "MESSAGELOG_TEST_POSTGRES_URL"}
)


class SettingsError(ValueError):
    """A setting has a value the service cannot work with."""


@dataclass(frozen=True)
class RetryPolicy:
    """How the adapter base retries a failed CRM request within one call."""

    max_attempts: int = 4
    base_delay_seconds: float = 0.2
    max_delay_seconds: float = 2.0
    # A Retry-After longer than this is handed to the caller (UNAVAILABLE with RetryInfo) instead.
    max_rate_limit_wait_seconds: float = 5.0
    # Don't start a retry that would have less than this before the caller's deadline.
    min_attempt_seconds: float = 0.5


@dataclass(frozen=True)
class CrmSettings:
    """One adapter's settings: MESSAGELOG_CRM_<NAME>_<SETTING>, else MESSAGELOG_CRM_<SETTING>."""

    base_url: str | None
    timeout_seconds: float
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    database_url: str = "sqlite:///messagelog.db"
    crm_timeout_seconds: float = DEFAULT_CRM_TIMEOUT_SECONDS
    # Tries of one CRM request within a call, the first included.
    crm_max_attempts: int = 4
    # Longest a call waits for its turn at a busy digest when the caller set no deadline.
    max_call_seconds: float = 30.0
    # A digest lease outlives a crashed holder by at most this long.
    digest_lease_seconds: float = 15.0
    # After a create that got no answer, how long before the record is looked for and, if absent,
    # created again: a slow CRM may still finish the first create within this time.
    create_settle_seconds: float = 30.0
    # How much one CRM record holds before its conversation-day continues in the next record.
    max_record_messages: int = 200
    max_record_bytes: int = 256 * 1024
    shutdown_grace_seconds: float = 10.0
    # The Prometheus endpoint's port on the same host; None: no endpoint, 0: any free port.
    metrics_port: int | None = None
    # How often the store is pinged; health reports NOT_SERVING while it does not answer.
    health_check_seconds: float = 5.0
    log_level: str = "info"
    log_format: str = "auto"
    # Caller authentication and transport security; see the README's security section.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    auth_tokens_file: str = ""
    allow_insecure_bind: bool = False
    # Caller name -> the CRMs it may log into; callers not named may use every CRM.
    caller_crms: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Memory that calls in progress may hold (service.limits.PendingWork); past it calls are
    # RESOURCE_EXHAUSTED. 64 MiB is about 3,500 calls of typical size.
    max_pending_bytes: int = 64 * 1024 * 1024
    # Health Watch streams open at once, all callers together; each holds a stream until its
    # caller ends it. Beyond it, RESOURCE_EXHAUSTED. Check, which probes use, is not counted.
    max_health_watches: int = 100
    log_phone_numbers: str = "masked"
    # The HTTP transport under the httpx API adapters use: "aiohttp" or "httpx" (httpcore).
    http_transport: str = "aiohttp"
    # Digests (and their messages) last written this many days ago are purged once fully logged.
    retention_days: int = 35
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = _ReadEnvironment(os.environ if environ is None else environ)
        settings = cls(
            host=env.get("MESSAGELOG_HOST", cls.host),
            port=_int(env, "MESSAGELOG_PORT", DEFAULT_PORT, minimum=0, maximum=65535),
            database_url=env.get("MESSAGELOG_DATABASE_URL", "") or _default_database_url(),
            crm_timeout_seconds=_float(env, "MESSAGELOG_CRM_TIMEOUT", DEFAULT_CRM_TIMEOUT_SECONDS),
            crm_max_attempts=_int(
                env, "MESSAGELOG_CRM_MAX_ATTEMPTS", cls.crm_max_attempts, minimum=1, maximum=10
            ),
            max_call_seconds=_float(env, "MESSAGELOG_MAX_CALL_SECONDS", cls.max_call_seconds),
            digest_lease_seconds=_float(env, "MESSAGELOG_DIGEST_LEASE_SECONDS", cls.digest_lease_seconds),
            create_settle_seconds=_float(env, "MESSAGELOG_CREATE_SETTLE_SECONDS", cls.create_settle_seconds),
            max_record_messages=_int(
                env, "MESSAGELOG_MAX_RECORD_MESSAGES", cls.max_record_messages, minimum=2, maximum=100_000
            ),
            max_record_bytes=_int(
                env,
                "MESSAGELOG_MAX_RECORD_BYTES",
                cls.max_record_bytes,
                minimum=1024,
                maximum=100 * 1024 * 1024,
            ),
            shutdown_grace_seconds=_float(
                env, "MESSAGELOG_SHUTDOWN_GRACE_SECONDS", cls.shutdown_grace_seconds
            ),
            metrics_port=_optional_port(env, "MESSAGELOG_METRICS_PORT"),
            health_check_seconds=_float(env, "MESSAGELOG_HEALTH_CHECK_SECONDS", cls.health_check_seconds),
            log_level=env.get("MESSAGELOG_LOG_LEVEL", cls.log_level).lower(),
            log_format=env.get("MESSAGELOG_LOG_FORMAT", cls.log_format).lower(),
            tls_cert_file=env.get("MESSAGELOG_TLS_CERT_FILE", ""),
            tls_key_file=env.get("MESSAGELOG_TLS_KEY_FILE", ""),
            tls_client_ca_file=env.get("MESSAGELOG_TLS_CLIENT_CA_FILE", ""),
            auth_tokens_file=env.get("MESSAGELOG_AUTH_TOKENS_FILE", ""),
            allow_insecure_bind=_bool(env, "MESSAGELOG_ALLOW_INSECURE_BIND"),
            caller_crms=_caller_crms(env.get("MESSAGELOG_CALLER_CRMS", "")),
            max_pending_bytes=_int(
                env, "MESSAGELOG_MAX_PENDING_BYTES", cls.max_pending_bytes, minimum=1024 * 1024, maximum=2**40
            ),
            max_health_watches=_int(
                env, "MESSAGELOG_MAX_HEALTH_WATCHES", cls.max_health_watches, minimum=1, maximum=100_000
            ),
            log_phone_numbers=env.get("MESSAGELOG_LOG_PHONE_NUMBERS", cls.log_phone_numbers).lower(),
            http_transport=env.get("MESSAGELOG_HTTP_TRANSPORT", cls.http_transport).lower(),
            retention_days=_int(
                env, "MESSAGELOG_RETENTION_DAYS", cls.retention_days, minimum=2, maximum=36_500
            ),
            environ=env,
        )
        if settings.log_level not in {"debug", "info", "warning", "error"}:
            raise SettingsError(
                f"MESSAGELOG_LOG_LEVEL must be debug, info, warning or error, not {settings.log_level!r}"
            )
        if settings.log_format not in {"auto", "json", "console"}:
            raise SettingsError(
                f"MESSAGELOG_LOG_FORMAT must be auto, json or console, not {settings.log_format!r}"
            )
        if settings.http_transport not in {"aiohttp", "httpx"}:
            raise SettingsError(
                f"MESSAGELOG_HTTP_TRANSPORT must be aiohttp or httpx, not {settings.http_transport!r}"
            )
        if settings.log_phone_numbers not in {"masked", "full"}:
            raise SettingsError(
                f"MESSAGELOG_LOG_PHONE_NUMBERS must be masked or full, not {settings.log_phone_numbers!r}"
            )
        settings._check_security()
        return settings

    def unread_names(self) -> list[str]:
        """MESSAGELOG_* variables no setting read so far (a misspelt name is silently ignored
        otherwise); meaningful once startup has read every CRM's settings."""
        env = self.environ
        read = env.read if isinstance(env, _ReadEnvironment) else set(env)
        return sorted(k for k in env if k.startswith(PREFIX) and k not in read and k not in READ_ELSEWHERE)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_file)

    @property
    def authenticates_callers(self) -> bool:
        return bool(self.tls_client_ca_file or self.auth_tokens_file)

    def _check_security(self) -> None:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise SettingsError("MESSAGELOG_TLS_CERT_FILE and MESSAGELOG_TLS_KEY_FILE go together")
        if self.tls_client_ca_file and not self.tls:
            raise SettingsError("MESSAGELOG_TLS_CLIENT_CA_FILE needs MESSAGELOG_TLS_CERT_FILE and _KEY_FILE")
        # Two sources of identity would leave open which one a caller is known by.
        if self.tls_client_ca_file and self.auth_tokens_file:
            raise SettingsError("set MESSAGELOG_TLS_CLIENT_CA_FILE or MESSAGELOG_AUTH_TOKENS_FILE, not both")
        if self.caller_crms and not self.authenticates_callers:
            raise SettingsError(
                "MESSAGELOG_CALLER_CRMS needs caller authentication"
                " (MESSAGELOG_TLS_CLIENT_CA_FILE or MESSAGELOG_AUTH_TOKENS_FILE)"
            )

    def crm(self, name: str) -> CrmSettings:
        prefix = f"MESSAGELOG_CRM_{name.upper()}_"
        base_url = self.environ.get(prefix + "BASE_URL") or None
        if base_url is not None:
            base_url = base_url.rstrip("/")
            if not base_url.startswith(("http://", "https://")):
                raise SettingsError(f"{prefix}BASE_URL must start with http:// or https://")
        timeout = _float(self.environ, prefix + "TIMEOUT", self.crm_timeout_seconds)
        attempts = _int(self.environ, prefix + "MAX_ATTEMPTS", self.crm_max_attempts, minimum=1, maximum=10)
        return CrmSettings(
            base_url=base_url, timeout_seconds=timeout, retry=RetryPolicy(max_attempts=attempts)
        )


class _ReadEnvironment(Mapping[str, str]):
    """The environment, remembering which names were looked up: whatever was never looked up is
    no setting, which is how unread_names finds misspelt ones without a second list of names."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _default_database_url() -> str:
    return f"sqlite:///{Path.cwd() / 'messagelog.db'}"


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}, not {value}")
    return value


def _optional_port(env: Mapping[str, str], name: str) -> int | None:
    """A port (0: any free one), or None when the setting is empty and the listener is off."""
    if not env.get(name, ""):
        return None
    return _int(env, name, 0, minimum=0, maximum=65535)


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def _caller_crms(raw: str) -> dict[str, frozenset[str]]:
    name = "MESSAGELOG_CALLER_CRMS"
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise SettingsError(f'{name} must be JSON such as {{"billing": ["pipedrive", "clio"]}}') from None
    if not isinstance(value, dict) or not all(
        isinstance(crms, list) and all(isinstance(c, str) for c in crms) for crms in value.values()
    ):
        raise SettingsError(f"{name} must map each caller name to a list of CRM names")
    return {caller: frozenset(c.lower() for c in crms) for caller, crms in value.items()}


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, not {value}")
    return value
