from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import grpc
import pytest
from messagelog.v1 import message_log_service_pb2 as service_pb
from messagelog.v1 import message_log_service_pb2_grpc as service_grpc

from service.config import Settings
from service.logging_setup import configure_logging
from service.server import RunningServer, running
from tests.fakes.base import FakeCrm
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import StatusDetails

configure_logging("info", "json")


@dataclass
class Harness:
    """A real server on a free port, a stub dialing it, and the fake CRM it talks to."""

    stub: service_grpc.MessageLogServiceStub
    fake: FakeCrm
    server: RunningServer
    auth: str
    # Sent with every call besides crm-authorization (a caller's bearer token, for instance).
    extra_metadata: tuple[tuple[str, str], ...] = ()

    def metadata(self, auth: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("crm-authorization", self.auth if auth is None else auth), *self.extra_metadata)

    async def add(
        self, request: service_pb.AddMessageLogRequest, *, auth: str | None = None, timeout: float = 10
    ) -> service_pb.AddMessageLogResponse:
        return await self.stub.AddMessageLog(request, metadata=self.metadata(auth), timeout=timeout)

    async def update(
        self, request: service_pb.UpdateMessageLogRequest, *, auth: str | None = None, timeout: float = 10
    ) -> service_pb.UpdateMessageLogResponse:
        return await self.stub.UpdateMessageLog(request, metadata=self.metadata(auth), timeout=timeout)

    async def add_error(self, request: service_pb.AddMessageLogRequest, **kw: Any) -> StatusDetails:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await self.add(request, **kw)
        return StatusDetails(raised.value)

    async def update_error(self, request: service_pb.UpdateMessageLogRequest, **kw: Any) -> StatusDetails:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await self.update(request, **kw)
        return StatusDetails(raised.value)


# Seals message text in the test stores (service/store/sealing.py); a test key, not a secret.
TEST_STORE_KEY = "dGVzdC1rZXktZm9yLW1lc3NhZ2Vsb2ctdGVzdHMtMzI="


def base_env(tmp_path: Path) -> dict[str, str]:
    return {
        "MESSAGELOG_PORT": "0",
        "MESSAGELOG_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "MESSAGELOG_LOG_FORMAT": "json",
        "MESSAGELOG_SHUTDOWN_GRACE_SECONDS": "1",
        # PostgreSQL stores need a key; an SQLite store makes its own (tests/security/test_at_rest.py).
        "MESSAGELOG_STORE_KEY": TEST_STORE_KEY,
    }


def dial(port: int, credentials: grpc.ChannelCredentials | None = None) -> grpc.aio.Channel:
    target = f"127.0.0.1:{port}"
    if credentials is None:
        return grpc.aio.insecure_channel(target)
    return grpc.aio.secure_channel(target, credentials)


@asynccontextmanager
async def harness_for(
    fake: FakeCrm,
    auth: str,
    env: dict[str, str],
    credentials: grpc.ChannelCredentials | None = None,
    extra_metadata: tuple[tuple[str, str], ...] = (),
) -> AsyncIterator[Harness]:
    async with fake.serve() as base_url:
        settings = Settings.from_env({f"MESSAGELOG_CRM_{fake.name.upper()}_BASE_URL": base_url, **env})
        async with running(settings) as server, dial(server.port, credentials) as channel:
            stub = service_grpc.MessageLogServiceStub(channel)
            yield Harness(stub, fake, server, auth, extra_metadata)


# Suites that run on both stores (SQLite, and PostgreSQL: the store replicas share); every other
# test module runs on SQLite only.
BOTH_STORES = frozenset(
    {"test_service_e2e", "test_contract", "test_edits", "test_ambiguous_create", "test_digest"}
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_kind" in metafunc.fixturenames and metafunc.module.__name__.rsplit(".", 1)[-1] in BOTH_STORES:
        metafunc.parametrize("store_kind", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def store_kind(request: pytest.FixtureRequest) -> str:
    """Which store the harness's server uses: "sqlite" unless the module runs on both (BOTH_STORES)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def shared_pg_database() -> Iterator[str]:
    """One PostgreSQL database for every both-stores test, made once and dropped at the end: a
    database per test would cost each test its CREATE DATABASE."""
    name = f"messagelog_suite_{secrets.token_hex(6)}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_URL.rpartition('/')[0]}/{name}"
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(statement: str) -> None:
    """Runs statement on the test server; on a thread of its own, as the first test that needs
    it asks from inside its event loop."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _execute(statement)).result()


async def _execute(statement: str) -> None:
    try:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        _skip_without_postgres(exc)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@pytest.fixture
async def env(tmp_path: Path, store_kind: str, request: pytest.FixtureRequest) -> dict[str, str]:
    settings = base_env(tmp_path)
    if store_kind == "postgresql":
        url = request.getfixturevalue("shared_pg_database")
        connection = await asyncpg.connect(url, timeout=5)
        try:
            # Each test starts empty; the schema stays (the server's start finds it current).
            if await connection.fetchval("SELECT to_regclass('digests')") is not None:
                await connection.execute("TRUNCATE digests, messages RESTART IDENTITY CASCADE")
        finally:
            await connection.close()
        settings["MESSAGELOG_DATABASE_URL"] = url
    return settings


@pytest.fixture
def make_harness(env: dict[str, str]) -> Callable[..., Any]:
    def make(
        fake: FakeCrm,
        auth: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        extra_metadata: tuple[tuple[str, str], ...] = (),
        **extra_env: str,
    ) -> Any:
        return harness_for(fake, auth, {**env, **extra_env}, credentials, extra_metadata)

    return make


PIPEDRIVE_AUTH = "Bearer pd-token"


@pytest.fixture
def pipedrive_env() -> dict[str, str]:
    """Extra settings for the `pipedrive` harness; a test module overrides this fixture to change them."""
    return {}


@pytest.fixture
async def pipedrive(
    make_harness: Callable[..., Any], pipedrive_env: dict[str, str]
) -> AsyncIterator[Harness]:
    """The real server against a fake Pipedrive, the CRM most tests speak to."""
    async with make_harness(FakePipedrive(), PIPEDRIVE_AUTH, **pipedrive_env) as harness:
        yield harness


def fake_pipedrive(h: Harness) -> FakePipedrive:
    assert isinstance(h.fake, FakePipedrive)
    return h.fake


POSTGRES_URL = os.environ.get("MESSAGELOG_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh database on the test server, dropped afterwards."""
    try:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        _skip_without_postgres(exc)
    name = f"messagelog_test_{secrets.token_hex(6)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = POSTGRES_URL.rpartition("/")
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _skip_without_postgres(exc: BaseException) -> NoReturn:
    reason = f"PostgreSQL at {POSTGRES_URL} is unreachable ({type(exc).__name__}: {exc})"
    if os.environ.get("CI"):
        pytest.fail(reason + "; CI must run the PostgreSQL tests")
    print(f"\nSKIPPED PostgreSQL tests: {reason}", file=sys.stderr)
    pytest.skip(reason)
