"""Assembles and runs the gRPC server: MessageLogService, health, reflection, graceful stop."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import re
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from messagelog.v1 import message_log_service_pb2 as service_pb
from messagelog.v1 import message_log_service_pb2_grpc as service_grpc
from sqlalchemy.engine import make_url

from service import metrics, reflection
from service.adapters.registry import NAMES, AdapterRegistry
from service.auth import AuthInterceptor, Tokens, load_tokens, server_credentials
from service.caller import current_request_id
from service.config import Settings, SettingsError
from service.digest import DigestLogger
from service.errors import StoreUnavailable
from service.grpc_handlers import RequestDecodingInterceptor, with_behavior
from service.inspection import Inspector
from service.limits import CrmCapacity, budgets_from_env
from service.outbound import http_client, origin
from service.retention import purge_periodically
from service.servicer import REQUEST_ID_METADATA, MessageLogServicer
from service.store import RecordCap, Store, open_store
from service.validation import MAX_REQUEST_BYTES_RECEIVED

log = structlog.get_logger("messagelog.server")

SERVICE_NAME = service_pb.DESCRIPTOR.services_by_name["MessageLogService"].full_name
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class StartupError(Exception):
    """The service cannot start; the message says why in one line."""


@dataclass
class RunningServer:
    port: int
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    store: Store
    metrics_port: int | None


class RequestContextInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Binds a request id and the peer to every log line of a unary call, and returns the request
    id to the caller as x-request-id, in the response headers of a successful call and in the
    trailers of a failed one: the caller's own when well-formed (1-64 of A-Z a-z 0-9 . _ -), else
    a new one, so a caller can find its call in the logs."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        request_id = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == REQUEST_ID_METADATA and isinstance(value, str) and _REQUEST_ID.fullmatch(value):
                request_id = value
        request_id = request_id or secrets.token_hex(8)

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            # Tokens to reset, rather than bound_contextvars(), which copies the whole context
            # on every call to find what it overwrites.
            bound = structlog.contextvars.bind_contextvars(request_id=request_id, peer=context.peer())
            token = current_request_id.set(request_id)
            try:
                response = await inner(request, context)
                # Headers only once the call succeeded: a client's gRPC retries (UNAVAILABLE) stop
                # at the first headers they see, so a failure returns the id in its trailers.
                await context.send_initial_metadata(((REQUEST_ID_METADATA, request_id),))
                return response
            finally:
                current_request_id.reset(token)
                structlog.contextvars.reset_contextvars(**bound)

        return with_behavior(handler, behavior)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _security(settings: Settings) -> tuple[grpc.ServerCredentials | None, Tokens]:
    """The port's credentials and the token table; refuses an exposed port nobody could trust."""
    try:
        credentials = server_credentials(settings)
        tokens = load_tokens(settings.auth_tokens_file) if settings.auth_tokens_file else ()
    except SettingsError as exc:
        raise StartupError(str(exc)) from None
    exposed = not _is_loopback(settings.host)
    if exposed and not (settings.tls and settings.authenticates_callers) and not settings.allow_insecure_bind:
        raise StartupError(
            f"refusing to listen on {_address(settings.host, settings.port)} without TLS and caller"
            " authentication; configure them (see the README's security section) or set"
            " MESSAGELOG_ALLOW_INSECURE_BIND=true"
        )
    return credentials, tokens


def _bind(server: grpc.aio.Server, host: str, port: int, credentials: grpc.ServerCredentials | None) -> int:
    """Binds the port, or returns 0; a taken port is found first with a plain socket, so the
    operator sees our one line rather than gRPC's own error output."""
    if port:
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host.strip("[]"), port))
        except OSError:
            return 0
    try:
        address = _address(host, port)
        bound: int = (
            server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
        )
    except RuntimeError:
        return 0
    return bound


def _override_origins(settings: Settings) -> list[tuple[str, str, int]]:
    """Where configured base URL overrides point: trusted as configured, private addresses included.

    Reads every CRM's settings, so a bad one stops startup before anything serves."""
    urls = (settings.crm(name).base_url for name in NAMES)
    return [origin(httpx.URL(url)) for url in urls if url]


def _serve_metrics(settings: Settings) -> metrics.MetricsEndpoint | None:
    if settings.metrics_port is None:
        return None
    try:
        return metrics.MetricsEndpoint(settings.host, settings.metrics_port)
    except OSError as exc:
        address = _address(settings.host, settings.metrics_port)
        raise StartupError(f"cannot serve metrics on {address}: {exc.strerror or exc}") from None


async def _follow_store(store: Store, health_servicer: health.aio.HealthServicer, interval: float) -> None:
    """Reports the service NOT_SERVING while the store does not answer, so readiness probes and
    balancers send calls to replicas that can log them, and SERVING again once it answers."""
    serving = True
    while True:
        await asyncio.sleep(interval)
        try:
            # A database that hangs is as unusable as one that refuses.
            async with asyncio.timeout(interval):
                await store.ping()
            reachable = True
        except (StoreUnavailable, TimeoutError):
            reachable = False
        if reachable == serving:
            continue
        serving = reachable
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        # Only the service follows the store: "" says the process is alive, and a liveness probe
        # on it must not restart every replica while the database is away.
        await health_servicer.set(SERVICE_NAME, status)
        if serving:
            log.info("store_reachable")
        else:
            log.warning("store_unreachable", health="NOT_SERVING")


async def _open_store(settings: Settings) -> Store:
    try:
        return await open_store(settings.database_url, settings.environ)
    except SettingsError as exc:
        raise StartupError(str(exc)) from None
    except StoreUnavailable as exc:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        cause = exc.__cause__
        detail = f"{type(cause).__name__}: {str(cause).splitlines()[0][:200]}" if cause else "unavailable"
        raise StartupError(f"cannot open the store at {where} ({detail})") from None


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[RunningServer]:
    """Starts the whole service; on exit stops it gracefully and closes the store and HTTP pool."""
    credentials, tokens = _security(settings)
    try:
        trusted = _override_origins(settings)
        budgets = budgets_from_env(settings.environ, NAMES)
    except SettingsError as exc:
        raise StartupError(str(exc)) from None
    store = await _open_store(settings)
    http = http_client(trusted, settings.http_transport)
    try:
        registry = AdapterRegistry(settings, http)
        digests = DigestLogger(
            store,
            lease_seconds=settings.digest_lease_seconds,
            create_settle_seconds=settings.create_settle_seconds,
            crm_capacity=CrmCapacity(budgets),
            record_cap=RecordCap(settings.max_record_messages, settings.max_record_bytes),
        )
        server = grpc.aio.server(
            # Metrics first, so calls the others refuse are counted too.
            interceptors=[
                metrics.MetricsInterceptor(),
                RequestContextInterceptor(),
                AuthInterceptor(settings, tokens),
                RequestDecodingInterceptor(SERVICE_NAME),
            ],
            # No SO_REUSEPORT: a second instance on a taken port must fail, not silently share it.
            options=[
                ("grpc.max_receive_message_length", MAX_REQUEST_BYTES_RECEIVED),
                ("grpc.so_reuseport", 0),
            ],
        )
        service_grpc.add_MessageLogServiceServicer_to_server(
            MessageLogServicer(settings, registry, digests, Inspector(store)), server
        )
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable(server, (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name))
        address = _address(settings.host, settings.port)
        port = _bind(server, settings.host, settings.port, credentials)
        if port == 0:
            raise StartupError(f"cannot listen on {address}: the address is in use or not available")
        endpoint = _serve_metrics(settings)
        try:
            await server.start()
            for name in ("", SERVICE_NAME):
                await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
            watcher = asyncio.create_task(
                _follow_store(store, health_servicer, settings.health_check_seconds)
            )
            purger = asyncio.create_task(purge_periodically(store, settings.retention_days))
            try:
                yield RunningServer(
                    port=port,
                    server=server,
                    health=health_servicer,
                    store=store,
                    metrics_port=endpoint.port if endpoint else None,
                )
            finally:
                for task in (watcher, purger):
                    task.cancel()
                await asyncio.wait([watcher, purger])
                await health_servicer.enter_graceful_shutdown()
                await server.stop(settings.shutdown_grace_seconds)
                await digests.drain()
        finally:
            if endpoint is not None:
                # Its shutdown waits for the HTTP thread's poll, which must not stall this loop.
                await asyncio.to_thread(endpoint.close)
    finally:
        await http.aclose()
        await store.close()


async def serve(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT, then lets in-flight calls finish."""
    async with running(settings) as service:
        # Handlers first: whoever reads the startup lines may signal as soon as they appear.
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        log.info(
            "server_started",
            address=_address(settings.host, service.port),
            port=service.port,
            metrics_port=service.metrics_port,
            store=service.store.dialect,
        )
        unread = settings.unread_names()
        if unread:
            log.warning(
                "unknown_settings",
                names=unread,
                detail="these MESSAGELOG_* variables are no setting of this service and are ignored;"
                " misspelt? (see the README's settings table)",
            )
        if not (settings.tls and settings.authenticates_callers):
            log.warning(
                "insecure_listener",
                tls=settings.tls,
                caller_auth=settings.authenticates_callers,
                detail="any process that reaches this port can call it; see the README's security section",
            )
        # What startup made (modules, the registry, the store) lives as long as the process: out
        # of the collector's sight, a full collection pauses every call for a few ms, not ~50
        # (`make bench`, trickle scenario, measured with gc.callbacks).
        gc.freeze()
        await stopping.wait()
        log.info("server_stopping", grace_seconds=settings.shutdown_grace_seconds)
    log.info("server_stopped")
