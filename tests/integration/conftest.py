"""Integration fixtures: the real broker and database started by ``infra/``.

Every test gets its own topic prefix and consumer group, so tests share one
broker without seeing each other's data.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.broker import clients
from pipeline.broker.topics import ensure_topics
from pipeline.settings import Settings
from simbank.workers import WorkerProcess
from tests.integration.kit import (
    BOOTSTRAP,
    DATABASE_URL,
    PARTITIONS,
    Roles,
    broker_settings,
    free_port,
    reachable,
    with_login,
    with_search_path,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def services_up() -> None:
    host, _, port = BOOTSTRAP.split(",")[0].rpartition(":")
    if not reachable(host or "localhost", int(port)):
        pytest.fail(f"Kafka is not reachable at {BOOTSTRAP}: run the tests with `make test`")
    dsn_host = DATABASE_URL.split("@")[-1].split("/")[0]
    pg_host, _, pg_port = dsn_host.rpartition(":")
    if not reachable(pg_host or "localhost", int(pg_port or 5432)):
        pytest.fail(f"Postgres is not reachable at {dsn_host}: run the tests with `make test`")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    run = uuid.uuid4().hex[:10]
    return Settings(
        kafka_bootstrap=BOOTSTRAP,
        database_url=DATABASE_URL,
        topic_prefix=f"t{run}.",
        app_id=f"test-{run}",
        web_port=free_port(),
        data_dir=tmp_path / "data",
        partitions=PARTITIONS,
        pseudonym_key="test-key",
    )


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path) -> Iterator[Any]:
    started: list[WorkerProcess] = []

    def _start(web_port: int | None = None) -> WorkerProcess:
        w = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log", web_port)
        started.append(w)
        return w

    yield _start
    for w in started:
        w.stop()


@pytest.fixture
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    p = clients.producer(broker_settings(), linger_ms=5)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def topics(settings: Settings) -> Settings:
    await ensure_topics(settings, PARTITIONS)
    return settings


@pytest.fixture
async def db() -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(DATABASE_URL)
    yield conn
    await conn.close()


@pytest.fixture
async def roles() -> AsyncIterator[Roles]:
    """A fresh database (owner: the dev role) and a login role for the worker, dropped after."""
    run = uuid.uuid4().hex[:10]
    database, role = f"aw_roles_{run}", f"aw_worker_{run}"
    admin = await asyncpg.connect(DATABASE_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
        await admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'worker-pw'")
        owner = urlsplit(DATABASE_URL)
        yield Roles(
            database,
            role,
            with_login(DATABASE_URL, owner.username or "", owner.password or "", database),
            with_login(DATABASE_URL, role, "worker-pw", database),
        )
    finally:
        await drop_database(admin, database)
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


async def drop_database(admin: asyncpg.Connection, database: str) -> None:
    """Drop ``database``. FORCE may not terminate a session of another role that is still
    closing (a worker that just exited; the dev role is no superuser: CI saw
    InsufficientPrivilegeError): such a session goes away by itself, so wait for it."""
    for _ in range(40):
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            return
        except asyncpg.exceptions.InsufficientPrivilegeError:
            await asyncio.sleep(0.25)
    await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


# -- the console's fixtures: a Postgres schema of its own, its database role ------


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A fresh schema with every migration applied; its DSN (search_path set) is yielded."""
    from pipeline.db.migrate import migrate_url

    name = f"cs_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(DATABASE_URL)
    await conn.execute(f"CREATE SCHEMA {name}")
    url = with_search_path(DATABASE_URL, name)
    try:
        await migrate_url(url)
        yield url
    finally:
        await conn.execute(f"DROP SCHEMA {name} CASCADE")
        await conn.close()


@pytest.fixture
async def console_role_url(pg_schema: str) -> AsyncIterator[str]:
    """DSN of a fresh login role that is a member of access_watch_console (migration 0004)."""
    role = f"aw_console_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    conn = await asyncpg.connect(DATABASE_URL)
    await conn.execute(
        f"CREATE ROLE {role} LOGIN PASSWORD '{password}' IN ROLE access_watch_console"
    )
    userinfo, _, rest = pg_schema.partition("@")
    scheme = userinfo.split("//")[0]
    try:
        yield f"{scheme}//{role}:{password}@{rest}"
    finally:
        await conn.execute(f"DROP ROLE {role}")
        await conn.close()
