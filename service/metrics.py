"""Prometheus metrics: every series the service exports, and the small hooks the code paths call.

Label values come only from fixed sets (method names, status codes, CRM names from the registry,
operation names written in the code, HTTP statuses, outcomes), never from a request's ids, hosts
or users, so the number of series stays bounded whatever callers send.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import Counter, Histogram, start_http_server

from service.errors import StoreUnavailable
from service.grpc_handlers import with_behavior

P = ParamSpec("P")
T = TypeVar("T")

# Seconds; a CRM call or an RPC that includes one takes from tens of milliseconds to the timeout.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Store operations are single short transactions.
_STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

RPC_SECONDS = Histogram(
    "messagelog_rpc_duration_seconds",
    "Unary RPCs by method and gRPC status code; _count is the number of calls.",
    ["method", "code"],
    buckets=_LATENCY_BUCKETS,
)
CRM_REQUEST_SECONDS = Histogram(
    "messagelog_crm_request_duration_seconds",
    "HTTP requests to CRMs by CRM, operation and HTTP status (0: no reply); _count is the number sent.",
    ["crm", "operation", "http_status"],
    buckets=_LATENCY_BUCKETS,
)
CRM_RETRIES = Counter(
    "messagelog_crm_retries",
    "CRM requests sent again within a call after a failure.",
    ["crm", "operation"],
)
DIGEST_OUTCOMES = Counter(
    "messagelog_digest_outcomes",
    "Messages logged, by CRM and outcome: created, appended or already_logged.",
    ["crm", "outcome"],
)
STORE_SECONDS = Histogram(
    "messagelog_store_operation_duration_seconds",
    "Store operations by operation and result (ok, unavailable, error).",
    ["operation", "result"],
    buckets=_STORE_BUCKETS,
)


# Each series' child, looked up once per label values: labels() checks and converts its arguments
# and takes a lock on every call, and the label values are few (see the module docstring).
_rpc_seconds = functools.cache(RPC_SECONDS.labels)
_crm_request_seconds = functools.cache(CRM_REQUEST_SECONDS.labels)
_crm_retries = functools.cache(CRM_RETRIES.labels)
_digest_outcomes = functools.cache(DIGEST_OUTCOMES.labels)
_store_seconds = functools.cache(STORE_SECONDS.labels)


def crm_request(crm: str, operation: str, http_status: int, seconds: float) -> None:
    status = str(http_status) if 100 <= http_status <= 599 else "0"
    _crm_request_seconds(crm, operation, status).observe(seconds)


def crm_retry(crm: str, operation: str) -> None:
    _crm_retries(crm, operation).inc()


def digest_outcome(crm: str, outcome: str) -> None:
    _digest_outcomes(crm, outcome).inc()


def timed_store_operation(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Times a guarded store operation under its function name, with how it ended."""
    operation = fn.__name__

    @wraps(fn)
    async def timed(*args: P.args, **kwargs: P.kwargs) -> T:
        started = time.perf_counter()
        result = "error"
        try:
            value = await fn(*args, **kwargs)
            result = "ok"
            return value
        except StoreUnavailable:
            result = "unavailable"
            raise
        finally:
            _store_seconds(operation, result).observe(time.perf_counter() - started)

    return timed


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Times every unary call of a registered method, with the status it ended with, including
    calls the interceptors after it refuse."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        # Registered methods only (an unknown one has no handler), so the label stays bounded.
        method = handler_call_details.method.lstrip("/")

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.UNKNOWN
            try:
                response = await inner(request, context)
                code = context.code() or grpc.StatusCode.OK
                return response
            except BaseException:
                code = context.code() or code
                raise
            finally:
                _rpc_seconds(method, code.name).observe(time.perf_counter() - started)

        return with_behavior(handler, behavior)


class MetricsEndpoint:
    """The /metrics HTTP endpoint, on its own port and thread, off the gRPC event loop."""

    def __init__(self, host: str, port: int) -> None:
        server, thread = start_http_server(port, addr=host.strip("[]"))
        self._server: WSGIServer = server
        self._thread: threading.Thread = thread
        self.port: int = server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
