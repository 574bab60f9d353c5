"""simbank on Kafka as any external producer and analyst would be: topics, publishing, reading.

Only the contract's topics (names from the prefix) are touched: simbank creates the
input topics it writes (reference topics compacted, access events kept forever since a
replay carries old timestamps, the feedback topic) and the alerts topic it reads; the
worker creates the rest itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

import pipeline.broker.clients as clients
from pipeline.settings import Settings
from simbank.simulate.model import Simulation
from simbank.timestamps import parse_ts

ACCESS_TOPIC: Final = "access-events"
REFERENCE_TOPICS: Final = ("staff-directory", "staff-assignments", "customer-profiles")
FEEDBACK_TOPIC: Final = "alert-feedback"
ALERTS_TOPIC: Final = "alerts"
# Replayed events carry their own (past) timestamps as Kafka record timestamps. With the
# default retention.ms (7 days) the broker would delete closed segments of a replay older
# than that within minutes, so a topic created here keeps events until deleted.
ACCESS_TOPIC_CONFIG: Final = {"cleanup.policy": "delete", "retention.ms": "-1"}
# Compacted, but a superseded record outlives its successor for 30 days (a restarting
# worker rebuilds reference history from the topic).
REFERENCE_TOPIC_CONFIG: Final = {
    "cleanup.policy": "compact",
    "min.compaction.lag.ms": str(30 * 86_400_000),
}
DELETE_CONFIG: Final = {"cleanup.policy": "delete"}
SEND_CHUNK: Final = 2000  # sends in flight before waiting for their acks


def kafka_settings(bootstrap: str) -> Settings:
    """The environment's PIPELINE_KAFKA_* settings (TLS, SASL, as the pipeline's own
    clients use them) for ``bootstrap``: simbank connects to a bank's secured Kafka the
    same way the workers do."""
    return Settings.from_env().replace(kafka_bootstrap=bootstrap)


@dataclass(frozen=True)
class PublishStats:
    reference: int
    events: int
    reference_seconds: float
    events_seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.events_seconds if self.events_seconds > 0 else 0.0


async def ensure_topics(
    bootstrap: str,
    prefix: str,
    partitions: int = 8,
    replication: int = 1,
    *,
    with_feedback: bool = True,
) -> list[str]:
    """Create simbank's topics where missing (reference, access events, and with
    ``with_feedback`` the feedback and alerts topics); returns the names created. A topic
    created concurrently by someone else (TOPIC_ALREADY_EXISTS) is fine; any other error
    is raised."""
    wanted = {prefix + ACCESS_TOPIC: ACCESS_TOPIC_CONFIG}
    wanted.update({prefix + t: REFERENCE_TOPIC_CONFIG for t in REFERENCE_TOPICS})
    if with_feedback:
        wanted[prefix + FEEDBACK_TOPIC] = DELETE_CONFIG
        wanted[prefix + ALERTS_TOPIC] = DELETE_CONFIG
    admin = clients.admin(kafka_settings(bootstrap))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(name, partitions, replication, topic_configs=dict(cfg))
            for name, cfg in wanted.items()
            if name not in existing
        ]
        if not new:
            return []
        response = await admin.create_topics(new)
        created: list[str] = []
        for item in response.topic_errors:
            topic, code = item[0], item[1]
            message = item[2] if len(item) > 2 else ""
            if code == 0:
                created.append(topic)
            elif code != TopicAlreadyExistsError.errno:
                raise for_code(code)(f"could not create topic {topic}: {message}")
        await _wait_for_leaders(admin, [t.name for t in new])
        return created
    finally:
        await admin.close()


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, topics: list[str], timeout: float = 30.0
) -> None:
    """Wait until every partition of ``topics`` has a leader, so the first sends do not
    bounce with NOT_LEADER_OR_FOLLOWER while the new topics settle."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        described = await admin.describe_topics(topics)
        ready = all(
            t["error_code"] == 0
            and t["partitions"]
            and all(p["error_code"] == 0 and p["leader"] >= 0 for p in t["partitions"])
            for t in described
        )
        if ready:
            # A KRaft broker lists the new leader in its metadata a moment before the
            # partition accepts writes; without this pause the first sends bounce (and are
            # retried) with NOT_LEADER_OR_FOLLOWER.
            await asyncio.sleep(1.0)
            return
        if loop.time() >= deadline:
            return
        await asyncio.sleep(0.2)


async def partition_count(bootstrap: str, topic: str) -> int:
    admin = clients.admin(kafka_settings(bootstrap))
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if not described or described[0]["error_code"] != 0:
        raise RuntimeError(f"topic {topic} does not exist")
    return len(described[0]["partitions"])


class Publisher:
    """An idempotent producer for simbank's records (reference, accesses, feedback)."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.prefix = prefix
        self._producer = clients.producer(
            kafka_settings(bootstrap),
            acks="all",
            enable_idempotence=True,  # a retried batch is not written twice
            linger_ms=20,
            max_batch_size=512 * 1024,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def _send_all(
        self, items: Iterable[tuple[str, bytes | None, bytes | None, int | None]]
    ) -> int:
        pending: list[asyncio.Future[Any]] = []
        n = 0
        for topic, key, value, ts in items:
            pending.append(await self._producer.send(topic, value=value, key=key, timestamp_ms=ts))
            n += 1
            if len(pending) >= SEND_CHUNK:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return n

    async def reference(self, sim: Simulation) -> int:
        """Every reference record, in publication order, acknowledged."""
        return await self._send_all(
            (
                self.prefix + r.topic,
                r.key.encode(),
                None if r.value is None else orjson.dumps(r.value),
                None,
            )
            for r in sim.reference
        )

    async def events(self, events: Sequence[dict[str, Any]]) -> int:
        """Accesses keyed by staff_id, Kafka timestamp = occurred_at, acknowledged."""
        topic = self.prefix + ACCESS_TOPIC
        return await self._send_all(
            (
                topic,
                str(ev["staff_id"]).encode(),
                orjson.dumps(ev),
                round(parse_ts(ev["occurred_at"]) * 1000),
            )
            for ev in events
        )

    async def feedback(self, values: Sequence[bytes]) -> int:
        """AlertFeedback JSON values, keyed by alert_id, acknowledged."""
        topic = self.prefix + FEEDBACK_TOPIC
        return await self._send_all(
            (topic, str(orjson.loads(v)["alert_id"]).encode(), v, None) for v in values
        )


async def publish_kafka(
    sim: Simulation,
    bootstrap: str,
    prefix: str,
    rate: float | None,
    partitions: int = 8,
    replication: int = 1,
) -> PublishStats:
    """Publish the reference records (all acknowledged before any event), then the events
    keyed by staff_id with the Kafka timestamp = occurred_at. ``rate=None`` sends as fast
    as the broker acknowledges; otherwise events are paced at ``rate`` per second."""
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    await ensure_topics(bootstrap, prefix, partitions, replication)
    pub = Publisher(bootstrap, prefix)
    await pub.start()
    try:
        began = time.perf_counter()
        await pub.reference(sim)
        ref_done = time.perf_counter()
        if rate is None:
            await pub.events(sim.events)
        else:
            loop = asyncio.get_running_loop()
            start = loop.time()
            step = max(1, int(rate // 10))
            for i in range(0, len(sim.events), step):
                delay = start + i / rate - loop.time()
                if delay > 0.002:
                    await asyncio.sleep(delay)
                await pub.events(sim.events[i : i + step])
        ended = time.perf_counter()
    finally:
        await pub.stop()
    return PublishStats(len(sim.reference), len(sim.events), ref_done - began, ended - ref_done)


class TopicReader:
    """Reads a topic from the beginning, on every call the records added since the last."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._consumer = clients.consumer(kafka_settings(bootstrap), group_id=None)
        self._tps: list[TopicPartition] = []

    async def start(self) -> None:
        n = await partition_count(self.bootstrap, self.topic)
        await self._consumer.start()
        self._tps = [TopicPartition(self.topic, p) for p in range(n)]
        self._consumer.assign(self._tps)
        await self._consumer.seek_to_beginning(*self._tps)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def new_records(self) -> list[dict[str, Any]]:
        """Every JSON record written since the last call, up to the current end."""
        end = await self._consumer.end_offsets(self._tps)
        out: list[dict[str, Any]] = []
        pending = {tp for tp in self._tps if await self._consumer.position(tp) < end[tp]}
        while pending:
            batch = await self._consumer.getmany(*pending, timeout_ms=1000, max_records=5000)
            for records in batch.values():
                out.extend(orjson.loads(r.value) for r in records if r.value is not None)
            for tp in list(pending):
                # the position passes gaps (control records) that no record fills
                if await self._consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
        return out


async def read_all(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` up to its current end."""
    reader = TopicReader(bootstrap, topic)
    await reader.start()
    try:
        return await reader.new_records()
    finally:
        await reader.stop()
