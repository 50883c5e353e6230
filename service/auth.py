"""Who may call: TLS for the port, caller identity (mutual TLS or bearer tokens), the memory budget.

With MESSAGELOG_TLS_CLIENT_CA_FILE, TLS itself refuses callers without a certificate from that
CA, and a caller is known by its certificate subject. With MESSAGELOG_AUTH_TOKENS_FILE, a caller
sends `authorization: Bearer <token>`; the file holds only SHA-256 hashes, so reading it does not
hand out tokens, and every hash is compared in constant time. Health Check and reflection stay
open, so probes, load balancers and grpcurl work without credentials. Health Watch does not: a
stream is held as long as its caller likes, so it needs the caller's identity like any RPC, and
at most MESSAGELOG_MAX_HEALTH_WATCHES are open at once (9,000 idle anonymous streams held 291 MB).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import structlog

from service.caller import Caller, current_caller
from service.config import Settings, SettingsError
from service.errors import (
    CallerUnauthenticated,
    HealthWatchesExhausted,
    MessageLogError,
    PendingWorkExhausted,
)
from service.grpc_handlers import with_behavior
from service.limits import RETRY_AFTER_SECONDS, PendingWork
from service.servicer import error_metadata

log = structlog.get_logger("messagelog.rpc")

OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
)
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
AUTHORIZATION_METADATA = "authorization"
_TOKEN_LINE = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})\s+(\S.{0,127})$")
# The subject as gRPC reports it in the TLS auth context (RFC 2253, e.g. "CN=billing,O=Acme").
_SUBJECT_KEYS = ("x509_subject", "x509_common_name")

Tokens = tuple[tuple[bytes, str], ...]


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def load_tokens(path: str) -> Tokens:
    """Reads `<sha256 hex of the token> <caller name>` lines; blank lines and # comments are skipped.

    Errors name the line, never its text: a mistake could put a raw token there.
    """
    name = "MESSAGELOG_AUTH_TOKENS_FILE"
    text = _read(name, path)
    tokens: list[tuple[bytes, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _TOKEN_LINE.match(line)
        if match is None:
            raise SettingsError(f"{name} line {number} must be '<sha256 hex of the token> <caller name>'")
        tokens.append((bytes.fromhex(match[1]), match[2].strip()))
    if not tokens:
        raise SettingsError(f"{name} ({path}) holds no token")
    return tuple(tokens)


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """The port's TLS credentials, or None for plaintext; unusable files stop startup."""
    if not settings.tls:
        return None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(
            f"MESSAGELOG_TLS_CERT_FILE and MESSAGELOG_TLS_KEY_FILE are not a usable certificate and key"
            f" ({type(exc).__name__}: {exc.strerror or exc.args[-1]})"
        ) from None
    client_ca = None
    if settings.tls_client_ca_file:
        try:
            ssl.create_default_context(cafile=settings.tls_client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(
                f"MESSAGELOG_TLS_CLIENT_CA_FILE is not a usable CA certificate ({type(exc).__name__})"
            ) from None
        client_ca = _read("MESSAGELOG_TLS_CLIENT_CA_FILE", settings.tls_client_ca_file).encode()
    key = _read("MESSAGELOG_TLS_KEY_FILE", settings.tls_key_file).encode()
    cert = _read("MESSAGELOG_TLS_CERT_FILE", settings.tls_cert_file).encode()
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def _read(name: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read {name} ({path}): {type(exc).__name__}") from None


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls without a proven caller or past the memory budget of calls in progress, and
    binds the caller to the call's log lines and to `current_caller` for per-CRM authorization."""

    def __init__(self, settings: Settings, tokens: Tokens = ()) -> None:
        self._settings = settings
        self._tokens = tokens
        self._mutual_tls = bool(settings.tls_client_ca_file)
        self._pending = PendingWork(settings.max_pending_bytes)
        self._watches = 0

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method
        handler = await continuation(handler_call_details)
        if handler is not None and method == HEALTH_WATCH:
            return self._guarded_watch(handler, handler_call_details.invocation_metadata or ())
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        if handler.unary_unary is None:
            # Only unary methods are guarded below; anything else stays closed.
            return None
        inner = handler.unary_unary
        metadata = handler_call_details.invocation_metadata or ()

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                caller = self._identify(context, metadata)
                with self._pending.hold(request.ByteSize()):
                    token = current_caller.set(caller)
                    # By token, not bound_contextvars(): see RequestContextInterceptor.
                    bound = structlog.contextvars.bind_contextvars(caller=caller.name if caller else None)
                    try:
                        return await inner(request, context)
                    finally:
                        structlog.contextvars.reset_contextvars(**bound)
                        current_caller.reset(token)
            except (CallerUnauthenticated, PendingWorkExhausted) as exc:
                log.info(
                    "rpc",
                    method=method.rsplit("/", 1)[-1],
                    status=exc.grpc_code.name,
                    reason=exc.reason,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                )
                await context.abort(exc.grpc_code, exc.message, error_metadata(exc, ""))
                raise AssertionError("abort returned") from exc  # pragma: no cover

        return with_behavior(handler, behavior)

    def _guarded_watch(self, handler: grpc.RpcMethodHandler, metadata: Any) -> grpc.RpcMethodHandler:
        """Health Watch, for identified callers only (when callers authenticate) and within the cap."""
        inner = handler.unary_stream
        limit = self._settings.max_health_watches

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> None:
            try:
                self._identify(context, metadata)
                if self._watches >= limit:
                    raise HealthWatchesExhausted(
                        f"{limit} health watches are open; use Check, or retry shortly",
                        retry_after=RETRY_AFTER_SECONDS,
                    )
            except MessageLogError as exc:
                await context.abort(exc.grpc_code, exc.message, error_metadata(exc, ""))
            self._watches += 1
            try:
                await inner(request, context)
            finally:
                self._watches -= 1

        return grpc.unary_stream_rpc_method_handler(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _identify(self, context: grpc.aio.ServicerContext, metadata: Any) -> Caller | None:
        if self._mutual_tls:
            name = _certificate_subject(context)
        elif self._tokens:
            name = self._token_caller(metadata)
        else:
            return None
        if not name:
            raise CallerUnauthenticated(
                "this service needs a caller identity: a client certificate or an authorization bearer token"
            )
        return Caller(name, self._settings.caller_crms.get(name))

    def _token_caller(self, metadata: Any) -> str:
        presented = ""
        for key, value in metadata:
            if key == AUTHORIZATION_METADATA and isinstance(value, str):
                scheme, _, credential = value.strip().partition(" ")
                if scheme.lower() == "bearer":
                    presented = credential.strip()
        if not presented:
            return ""
        digest = token_hash(presented)
        found = ""
        # Every entry is compared, so the time taken says nothing about which hash came close.
        for expected, caller in self._tokens:
            if hmac.compare_digest(digest, expected):
                found = caller
        return found


def _certificate_subject(context: grpc.aio.ServicerContext) -> str:
    auth = context.auth_context()
    for key in _SUBJECT_KEYS:
        values = auth.get(key)
        if values:
            value: bytes = values[0]
            return value.decode("utf-8", "replace")
    return ""
