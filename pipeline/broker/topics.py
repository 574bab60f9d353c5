"""Creating the contract's topics (and nothing else) when they are missing."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from pipeline.errors import RetriableError
from pipeline.settings import Settings

log = logging.getLogger(__name__)

DELETE = {"cleanup.policy": "delete"}
# Reference topics are compacted, but a superseded record (the staff record a
# future-dated transfer replaces, the assignment a revoke ends) must outlive
# its successor for a while: accesses before the change can still arrive, and
# a restarting worker rebuilds its history from the topic. The log cleaner
# never removes a record on the strength of a successor younger than
# min.compaction.lag.ms, so history is kept for at least that long.
REFERENCE_HISTORY_DAYS = 30
COMPACT = {
    "cleanup.policy": "compact",
    "min.compaction.lag.ms": str(REFERENCE_HISTORY_DAYS * 86_400_000),
}


# The peer statistics: one record per partition and bank day, read whole by
# every worker at start; kept 45 days (wall time), more than the 28-day window.
PEER_DAYS = {
    "cleanup.policy": "compact,delete",
    "retention.ms": str(45 * 86_400_000),
    "max.message.bytes": str(8 * 1024 * 1024),
}


def contract_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic name -> config for every topic of the contract."""
    return {
        settings.access_topic: DELETE,
        settings.staff_topic: COMPACT,
        settings.assignments_topic: COMPACT,
        settings.profiles_topic: COMPACT,
        settings.feedback_topic: DELETE,
        settings.alerts_topic: DELETE,
        settings.ocsf_topic: DELETE,
        settings.dlq_topic: DELETE,
    }


def internal_topics(settings: Settings) -> dict[str, tuple[int | None, dict[str, str]]]:
    """The worker's own topics: name -> (partitions, None = PIPELINE_PARTITIONS; config)."""
    return {
        settings.staff_feedback_topic: (None, DELETE),
        settings.evidence_topic: (None, DELETE),
        settings.peer_days_topic: (1, PEER_DAYS),
    }


async def ensure_topics(
    settings: Settings, partitions: int | None = None, replay: bool = False
) -> list[str]:
    """Create missing contract topics and the worker's internal topic; return those created.

    ``replay`` (demo, evaluation): the access topic keeps records forever, since
    replayed events carry old timestamps that time-based retention would delete.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise RetriableError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    try:
        existing = set(await admin.list_topics())
        n = partitions or settings.partitions
        wanted: dict[str, tuple[int, dict[str, str]]] = {
            name: (n, cfg) for name, cfg in contract_topics(settings).items()
        }
        # The worker's internal topics, created before its consumer subscribes
        # (a topic created later is only seen at the next metadata refresh).
        for name, (count, cfg) in internal_topics(settings).items():
            wanted[name] = (count or n, cfg)
        if replay:
            wanted[settings.access_topic] = (n, {**DELETE, "retention.ms": "-1"})
        extra = {}
        if settings.min_insync_replicas:
            extra["min.insync.replicas"] = str(settings.min_insync_replicas)
        new = [
            NewTopic(
                name=name,
                num_partitions=count,
                replication_factor=settings.replication_factor,
                topic_configs={**cfg, **extra},
            )
            for name, (count, cfg) in wanted.items()
            if name not in existing
        ]
        created: list[str] = []
        for topic in new:
            try:
                await admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                log.debug("topic %s created concurrently", topic.name)
        if created:
            log.info("created topics: %s", ", ".join(created))
        return created
    finally:
        await admin.close()


async def partition_counts(settings: Settings, topics: list[str]) -> dict[str, int]:
    """Partition count per topic (0 when the topic does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise RetriableError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}") from exc
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    out = dict.fromkeys(topics, 0)
    for entry in described:
        if entry.get("error_code", 0) == 0:
            out[entry["topic"]] = len(entry["partitions"])
    return out
