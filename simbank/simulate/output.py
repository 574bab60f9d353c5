"""Writing a simulation out: JSONL files (and back), or Kafka topics.

Files in the output directory:

- ``reference.jsonl``: one ``{"topic", "key", "value"}`` per line, in publication order;
- ``events.jsonl``: one AccessEvent per line, sorted by ``occurred_at``;
- ``incidents.json``: the labelled incidents (a JSON list);
- ``summary.json``: counts, and the config's size and seed;
- ``profile.json``: the bank profile (with ``summary.json``, :func:`read_jsonl` rebuilds
  the config, so a run is reproducible).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from simbank.simulate.config import SimConfig
from simbank.simulate.model import Incident, RefRecord, Simulation
from simbank.simulate.profile import DEFAULT_PROFILE, BankProfile
from simbank.timestamps import parse_ts

REFERENCE_FILE: Final = "reference.jsonl"
EVENTS_FILE: Final = "events.jsonl"
INCIDENTS_FILE: Final = "incidents.json"
SUMMARY_FILE: Final = "summary.json"
PROFILE_FILE: Final = "profile.json"

ACCESS_TOPIC: Final = "access-events"
REFERENCE_TOPICS: Final = ("staff-directory", "staff-assignments", "customer-profiles")
# Replayed events carry their own (past) timestamps as Kafka record timestamps. With the
# default retention.ms (7 days) the broker would delete closed segments of a replay older
# than that within minutes, so a topic created here keeps events until deleted.
ACCESS_TOPIC_CONFIG: Final = {"cleanup.policy": "delete", "retention.ms": "-1"}
REFERENCE_TOPIC_CONFIG: Final = {"cleanup.policy": "compact"}
SEND_CHUNK: Final = 2000  # sends in flight before waiting for their acks


def _lines(items: Iterable[dict[str, Any]], path: Path) -> None:
    with path.open("wb") as f:
        for item in items:
            f.write(orjson.dumps(item))
            f.write(b"\n")


def write_jsonl(sim: Simulation, directory: str | Path) -> Path:
    """Write the four files into ``directory`` (created if needed); returns its path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    _lines((r.to_json() for r in sim.reference), out / REFERENCE_FILE)
    _lines(sim.events, out / EVENTS_FILE)
    incidents = [i.to_json() for i in sim.incidents]
    (out / INCIDENTS_FILE).write_bytes(orjson.dumps(incidents, option=orjson.OPT_INDENT_2) + b"\n")
    summary = sim.summary()
    summary["active_staff_days"] = sim.active_staff_days()
    (out / SUMMARY_FILE).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    profile = sim.config.profile.to_json()
    (out / PROFILE_FILE).write_bytes(orjson.dumps(profile, option=orjson.OPT_INDENT_2) + b"\n")
    return out


def _read_lines(path: Path) -> list[Any]:
    with path.open("rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def read_jsonl(directory: str | Path) -> Simulation:
    """Read back what :func:`write_jsonl` wrote."""
    src = Path(directory)
    summary = orjson.loads((src / SUMMARY_FILE).read_bytes())
    profile_path = src / PROFILE_FILE
    profile = (
        BankProfile.from_json(orjson.loads(profile_path.read_bytes()))
        if profile_path.exists()
        else DEFAULT_PROFILE
    )
    return Simulation(
        config=SimConfig.from_json(summary["config"], profile),
        reference=[RefRecord.from_json(r) for r in _read_lines(src / REFERENCE_FILE)],
        events=_read_lines(src / EVENTS_FILE),
        incidents=[
            Incident.from_json(i) for i in orjson.loads((src / INCIDENTS_FILE).read_bytes())
        ],
    )


# -- Kafka -----------------------------------------------------------------------


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
    bootstrap: str, prefix: str, partitions: int = 8, replication: int = 1
) -> list[str]:
    """Create the reference topics (compacted) and the access-events topic (delete) where
    missing; returns the names created. A topic created concurrently by someone else
    (TOPIC_ALREADY_EXISTS) is fine; any other error is raised."""
    wanted = {prefix + ACCESS_TOPIC: ACCESS_TOPIC_CONFIG}
    wanted.update({prefix + t: REFERENCE_TOPIC_CONFIG for t in REFERENCE_TOPICS})
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
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
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,  # a retried batch is not written twice
        linger_ms=20,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    try:
        began = time.perf_counter()
        pending: list[asyncio.Future[Any]] = []
        for r in sim.reference:
            value = None if r.value is None else orjson.dumps(r.value)
            pending.append(await producer.send(prefix + r.topic, value=value, key=r.key.encode()))
        await asyncio.gather(*pending)
        pending.clear()
        ref_done = time.perf_counter()

        topic = prefix + ACCESS_TOPIC
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, ev in enumerate(sim.events):
            if rate is not None:
                delay = start + i / rate - loop.time()
                if delay > 0.002:
                    await asyncio.sleep(delay)
            fut = await producer.send(
                topic,
                value=orjson.dumps(ev),
                key=str(ev["staff_id"]).encode(),
                timestamp_ms=round(parse_ts(ev["occurred_at"]) * 1000),
            )
            pending.append(fut)
            if len(pending) >= SEND_CHUNK:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        ended = time.perf_counter()
    finally:
        await producer.stop()
    return PublishStats(len(sim.reference), len(sim.events), ref_done - began, ended - ref_done)
