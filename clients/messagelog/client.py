"""A small hand-written client for messagelog.v1: channels, typed errors, and MessageLogClient.

    MessageLogError              any failed call, decoded from its google.rpc.Status details
      .code                      the gRPC status code
      .reason, .domain           google.rpc.ErrorInfo ("" when the server sent none)
      .metadata                  ErrorInfo metadata, such as {"crm": ..., "crm_http_status": ...}
      .field_violations          google.rpc.BadRequest, as (field, description) pairs
      .retry_delay               google.rpc.RetryInfo in seconds, or None

Channels retry UNAVAILABLE only (AIP-194), declared in the channel's service config, so every
stub on the channel gets the same policy. Above that, MessageLogClient tries a call again, a
bounded number of times and within the call's timeout, when the answer is UNAVAILABLE or
RESOURCE_EXHAUSTED with RetryInfo (the server's memory budget was spent), waiting what RetryInfo
asks. A failed call never marks its message as logged, which is what makes these retries safe.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from messagelog.v1 import message_log_service_pb2 as service_pb
from messagelog.v1 import message_log_service_pb2_grpc as service_grpc

SERVICE_NAME = "messagelog.v1.MessageLogService"
HEALTH_SERVICE_NAME = "grpc.health.v1.Health"
AUTH_METADATA = "crm-authorization"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
DEFAULT_TARGET = "localhost:50051"
# The server works at most 30 s on a call without a deadline (MESSAGELOG_MAX_CALL_SECONDS); a
# client deadline a little above that lets the server's own limit answer first.
DEFAULT_TIMEOUT_SECONDS = 35.0
# Tries of a call after its first, when the answer says a retry can succeed (MessageLogError.retryable).
DEFAULT_RETRIES = 4
# The wait before a retry when the answer carries no RetryInfo: this, doubling per retry.
FIRST_PAUSE_SECONDS = 0.25

ChannelOptions = list[tuple[str, Any]]


def service_config(
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    max_attempts: int = 4,
    initial_backoff: float = 0.2,
    max_backoff: float = 5.0,
    backoff_multiplier: float = 2.0,
) -> str:
    """The channel's service config: a default deadline and a retry on UNAVAILABLE only."""
    method_config = {
        "name": [{"service": SERVICE_NAME}, {"service": HEALTH_SERVICE_NAME}],
        "timeout": f"{timeout:g}s",
        "retryPolicy": {
            "maxAttempts": max_attempts,
            "initialBackoff": f"{initial_backoff:g}s",
            "maxBackoff": f"{max_backoff:g}s",
            "backoffMultiplier": backoff_multiplier,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }
    return json.dumps({"methodConfig": [method_config]})


def channel_options(**config: Any) -> ChannelOptions:
    """Options for grpc.insecure_channel / grpc.aio.insecure_channel; keywords go to service_config."""
    return [("grpc.enable_retries", 1), ("grpc.service_config", service_config(**config))]


def aio_channel(
    target: str = DEFAULT_TARGET, *, credentials: grpc.ChannelCredentials | None = None, **config: Any
) -> grpc.aio.Channel:
    """An asyncio channel with the retry policy and default deadline; plaintext unless credentials."""
    options = channel_options(**config)
    if credentials is not None:
        return grpc.aio.secure_channel(target, credentials, options=options)
    return grpc.aio.insecure_channel(target, options=options)


def channel(
    target: str = DEFAULT_TARGET, *, credentials: grpc.ChannelCredentials | None = None, **config: Any
) -> grpc.Channel:
    """The blocking counterpart of aio_channel, for scripts without an event loop."""
    options = channel_options(**config)
    if credentials is not None:
        return grpc.secure_channel(target, credentials, options=options)
    return grpc.insecure_channel(target, options=options)


# Trailing metadata of a successful call: CRM requests the service sent again within it (absent: none).
CRM_RETRIES_TRAILER = "x-crm-retries"


class MessageLogError(Exception):
    """A failed messagelog call, with the details the server attached to its status."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: dict[str, str] | None = None,
        field_violations: Sequence[tuple[str, str]] = (),
        retry_delay: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata = dict(metadata or {})
        self.field_violations = tuple(field_violations)
        self.retry_delay = retry_delay

    @property
    def retryable(self) -> bool:
        """UNAVAILABLE, or RESOURCE_EXHAUSTED that says when to come back (a request too large
        for the server carries no RetryInfo and never succeeds)."""
        if self.code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            return self.retry_delay is not None
        return self.code is grpc.StatusCode.UNAVAILABLE

    def __str__(self) -> str:
        head = f"{self.code.name} {self.reason}" if self.reason else self.code.name
        text = f"{head}: {self.message}"
        if self.field_violations:
            text += " (" + "; ".join(f"{f} {d}" for f, d in self.field_violations) + ")"
        return text

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> MessageLogError:
        """Decodes a failed call (sync or aio); a status without details still gives code and message."""
        code: grpc.StatusCode = error.code()
        message: str = error.details() or ""
        found: dict[str, Any] = {}
        for key, value in error.trailing_metadata() or ():
            if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
                continue
            status = status_pb2.Status.FromString(value)
            message = status.message or message
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    found.update(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))
                elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    found["field_violations"] = [(v.field, v.description) for v in bad.field_violations]
                elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    retry = error_details_pb2.RetryInfo()
                    detail.Unpack(retry)
                    found["retry_delay"] = retry.retry_delay.ToNanoseconds() / 1e9
        return cls(code, message, **found)


class MessageLogClient:
    """MessageLogService over one asyncio channel; failures raise MessageLogError.

    Use as `async with MessageLogClient("host:50051") as client:`, or pass a channel you own.
    A retryable failure is tried again up to `retries` times, as its RetryInfo says, within the
    call's timeout; the last failure is raised.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        channel: grpc.aio.Channel | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        self._owns_channel = channel is None
        self._channel = channel if channel is not None else aio_channel(target, timeout=timeout)
        self._stub = service_grpc.MessageLogServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self.timeout = timeout
        self.retries = retries

    async def __aenter__(self) -> MessageLogClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    def _metadata(self, crm_authorization: str, request_id: str | None) -> tuple[tuple[str, str], ...]:
        metadata = ((AUTH_METADATA, crm_authorization),)
        return (*metadata, ("x-request-id", request_id)) if request_id else metadata

    async def add_message_log(
        self,
        request: service_pb.AddMessageLogRequest,
        crm_authorization: str,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
        on_crm_retries: Callable[[int], None] | None = None,
    ) -> service_pb.AddMessageLogResponse:
        """Logs one message; crm_authorization is the exact Authorization value the CRM expects.

        on_crm_retries, when given, is told how many CRM requests the service sent again within
        the call (waits for a 429's Retry-After, 5xx retries), from the CRM_RETRIES_TRAILER."""
        response: service_pb.AddMessageLogResponse = await self._call(
            self._stub.AddMessageLog, request, crm_authorization, timeout, request_id, on_crm_retries
        )
        return response

    async def update_message_log(
        self,
        request: service_pb.UpdateMessageLogRequest,
        crm_authorization: str,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> service_pb.UpdateMessageLogResponse:
        """Appends one message to the record named by request.log_id."""
        response: service_pb.UpdateMessageLogResponse = await self._call(
            self._stub.UpdateMessageLog, request, crm_authorization, timeout, request_id
        )
        return response

    async def _call(
        self,
        method: Callable[..., Any],
        request: Any,
        crm_authorization: str,
        timeout: float | None,
        request_id: str | None,
        on_crm_retries: Callable[[int], None] | None = None,
    ) -> Any:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        metadata = self._metadata(crm_authorization, request_id)
        retry = 0
        while True:
            try:
                left = max(deadline - time.monotonic(), 0.001)
                call = method(request, metadata=metadata, timeout=left)
                response = await call
                if on_crm_retries is not None:
                    for key, value in await call.trailing_metadata() or ():
                        if key == CRM_RETRIES_TRAILER and str(value).isdigit():
                            on_crm_retries(int(value))
                return response
            except grpc.RpcError as exc:
                error = MessageLogError.from_rpc_error(exc)
            pause = FIRST_PAUSE_SECONDS * 2**retry if error.retry_delay is None else error.retry_delay
            # Up to a fifth more, so callers refused together do not all come back at once.
            pause *= 1 + random.random() / 5  # noqa: S311 (jitter, not security)
            if not error.retryable or retry == self.retries or time.monotonic() + pause >= deadline:
                raise error from None
            retry += 1
            await asyncio.sleep(pause)

    async def health(self, service: str = "", *, timeout: float = 5.0) -> str:
        """The grpc.health.v1 status name, such as "SERVING" or "NOT_SERVING"."""
        try:
            reply = await self._health.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            raise MessageLogError.from_rpc_error(exc) from None
        name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return name
