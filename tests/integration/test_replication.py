"""Topics get the configured replication factor and min.insync.replicas, or a clear error."""

from __future__ import annotations

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from pipeline.broker.clients import KafkaSecurityError
from pipeline.broker.topics import ensure_topics, start_admin
from pipeline.settings import Settings


async def test_min_insync_replicas_is_set_on_created_topics(settings: Settings) -> None:
    s = settings.replace(replication_factor=1, min_insync_replicas=1)
    created = await ensure_topics(s, 1)
    assert s.alerts_topic in created
    admin = await start_admin(s)
    try:
        (response,) = await admin.describe_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, s.alerts_topic, {"min.insync.replicas": None}
                )
            ]
        )
    finally:
        await admin.close()
    entries = {e[0]: e for r in response.resources for e in r[4]}
    _name, value, _read_only, source = entries["min.insync.replicas"][:4]
    assert value == "1"
    assert source == 1, (
        "a topic-level setting (DescribeConfigs source TOPIC_CONFIG), not the default"
    )


async def test_more_replicas_than_brokers_is_a_clear_error(settings: Settings) -> None:
    s = settings.replace(replication_factor=3)
    with pytest.raises(KafkaSecurityError, match="PIPELINE_REPLICATION_FACTOR=3"):
        await ensure_topics(s, 1)
