"""Creating the contract's topics (and nothing else) when they are missing."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    InvalidReplicationFactorError,
    KafkaConnectionError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    for_code,
)

from pipeline.broker import clients
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


async def start_admin(settings: Settings) -> AIOKafkaAdminClient:
    """A started admin client; an unreachable broker raises RetriableError, a broker
    that refuses our TLS/SASL settings raises KafkaAuthError (both say why)."""
    admin = clients.admin(settings)
    try:
        await admin.start()
    except KafkaConnectionError:
        await admin.close()
        await clients.check_connection(settings)  # raises with the reason
        raise RetriableError(
            f"cannot reach Kafka at {settings.kafka_bootstrap} (it answered a moment later)"
        ) from None
    return admin


async def create_topics(
    admin: AIOKafkaAdminClient,
    settings: Settings,
    wanted: dict[str, dict[str, str]],
    partitions: int,
    counts: dict[str, int] | None = None,
) -> list[str]:
    """Create the topics of ``wanted`` (name -> config) that do not exist, with
    ``partitions`` partitions (``counts`` overrides per topic) and the configured
    replication factor and min ISR; return the names created. A topic created
    concurrently by someone else is fine; any other refusal raises."""
    existing = set(await admin.list_topics())
    created: list[str] = []
    for name, cfg in wanted.items():
        if name in existing:
            continue
        n = (counts or {}).get(name, partitions)
        topic = clients.new_topic(settings, name, n, cfg)
        try:
            response = await admin.create_topics([topic])
        except TopicAlreadyExistsError:
            log.debug("topic %s created concurrently", name)
            continue
        for item in response.topic_errors:
            _check_created(settings, item)
        created.append(name)
    if created:
        log.info("created topics: %s", ", ".join(created))
    return created


def _check_created(settings: Settings, item: tuple[Any, ...]) -> None:
    topic, code = item[0], item[1]
    message = item[2] if len(item) > 2 else ""
    if code in (0, TopicAlreadyExistsError.errno):
        return
    error = for_code(code)
    if error is InvalidReplicationFactorError:
        raise clients.KafkaSecurityError(
            f"cannot create topic {topic} with PIPELINE_REPLICATION_FACTOR="
            f"{settings.replication_factor}: {message or 'more replicas than brokers'}"
        )
    if error in (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
        raise clients.KafkaAuthError(
            f"Kafka refused to create topic {topic} for user "
            f"{settings.kafka_sasl_username or '(anonymous)'}: {error.__name__} (grant CREATE "
            "on the topic prefix, or create the topics beforehand with `pipeline create-topics`)"
        )
    raise error(f"could not create topic {topic}: {message}")


async def ensure_topics(
    settings: Settings, partitions: int | None = None, replay: bool = False
) -> list[str]:
    """Create missing contract topics and the worker's internal topics; return those created.

    ``replay`` (demo, evaluation): the access topic keeps records forever, since
    replayed events carry old timestamps that time-based retention would delete.
    """
    admin = await start_admin(settings)
    try:
        wanted = contract_topics(settings)
        # The worker's internal topics, created before its consumer subscribes
        # (a topic created later is only seen at the next metadata refresh).
        counts: dict[str, int] = {}
        for name, (count, cfg) in internal_topics(settings).items():
            wanted[name] = cfg
            if count is not None:
                counts[name] = count
        if replay:
            wanted[settings.access_topic] = {**DELETE, "retention.ms": "-1"}
        n = partitions or settings.partitions
        return await create_topics(admin, settings, wanted, n, counts)
    finally:
        await admin.close()


async def partition_counts(settings: Settings, topics: list[str]) -> dict[str, int]:
    """Partition count per topic (0 when the topic does not exist)."""
    admin = await start_admin(settings)
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    out = dict.fromkeys(topics, 0)
    for entry in described:
        if entry.get("error_code", 0) == 0:
            out[entry["topic"]] = len(entry["partitions"])
    return out
