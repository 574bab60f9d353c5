"""The services started by infra/ answer the way the pipeline expects.

Run against the dev services: `infra/with-services.sh .venv/bin/pytest -m integration`.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from aiokafka.admin import NewTopic

from pipeline.broker import clients
from pipeline.settings import Settings

pytestmark = pytest.mark.integration


async def test_kafka_creates_and_lists_a_topic() -> None:
    settings = Settings.from_env()
    topic = f"infra-check-{uuid.uuid4().hex[:12]}"
    admin = clients.admin(settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        try:
            # CreateTopics answers before the broker's metadata cache lists the topic (a
            # list right after it missed the topic once in CI): wait for it, a while.
            for _ in range(50):
                if topic in await admin.list_topics():
                    break
                await asyncio.sleep(0.1)
            assert topic in await admin.list_topics()
            (described,) = await admin.describe_topics([topic])
            assert len(described["partitions"]) == 3
        finally:
            await admin.delete_topics([topic])
    finally:
        await admin.close()


async def test_postgres_lets_the_pipeline_role_create_tables() -> None:
    settings = Settings.from_env()
    conn = await asyncpg.connect(settings.database_url)
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute("CREATE TABLE infra_check (id int PRIMARY KEY)")
        owner = await conn.fetchval(
            "SELECT tableowner FROM pg_tables WHERE tablename = 'infra_check'"
        )
        assert owner == await conn.fetchval("SELECT current_user")
    finally:
        # Leave nothing behind.
        await tx.rollback()
        await conn.close()
