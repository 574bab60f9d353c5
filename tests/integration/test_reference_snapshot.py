"""A restarted reference reader goes on from its snapshot, and only when the topics agree."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from pipeline.broker.partitioning import partition_for
from pipeline.broker.tail import Tail
from pipeline.broker.topics import ensure_topics
from pipeline.contract.records import DeadLetter
from pipeline.reference import snapshot
from pipeline.reference.reader import reference_reader
from pipeline.reference.state import ReferenceState
from pipeline.settings import Settings
from pipeline.timeutil import format_ts
from tests.chaos.harness import publish_reference, small_bank
from tests.integration.kit import PARTITIONS, send_json

T0 = 1_772_000_000.0


async def _no_dead_letters(dl: DeadLetter, key: bytes | None) -> None:
    raise AssertionError(f"unexpected dead letter {dl}")


@contextlib.asynccontextmanager
async def reading(s: Settings) -> AsyncIterator[tuple[ReferenceState, Tail]]:
    """A reader loaded to ``ready``; stopped (and its snapshot written) on exit."""
    state = ReferenceState()
    tail = reference_reader(s, state, _no_dead_letters, lambda kind: None)
    task = asyncio.ensure_future(tail.run())
    try:
        await asyncio.wait_for(tail.ready.wait(), 60)
        yield state, tail
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def content(state: ReferenceState) -> tuple[Any, ...]:
    """What a state holds, whatever order its records were applied in across partitions
    (the image numbers the profile classes in the order they were first seen)."""
    im = state.image()
    return (
        im.staff,
        im.assignments,
        {cid: im.classes[i] for i, cids in enumerate(im.profiles) for cid in cids},
        im.related,
        {cid: [(at, im.classes[i], rel) for at, i, rel in v] for cid, v in im.history.items()},
        state.counts(),
    )


def staff_record(i: int, branch: str) -> dict[str, Any]:
    return {
        "staff_id": f"EXTRA{i}",
        "branch_id": branch,
        "role": "teller",
        "status": "active",
        "effective_at": format_ts(T0 + i),
    }


async def send_staff(producer: AIOKafkaProducer, s: Settings, n: int, branch: str) -> None:
    for i in range(n):
        await send_json(producer, s.staff_topic, f"EXTRA{i}", staff_record(i, branch))


async def caught_up(state: ReferenceState, want: Callable[[ReferenceState], bool]) -> None:
    deadline = time.monotonic() + 30
    while not want(state):
        assert time.monotonic() < deadline, "the reader did not apply the new records"
        await asyncio.sleep(0.2)


async def test_a_restarted_reader_reads_only_what_came_after_its_snapshot(
    topics: Settings, producer: AIOKafkaProducer
) -> None:
    bank = small_bank(seed=3, staff=24, days=5, branches=2)
    await publish_reference(topics, bank)
    async with reading(topics) as (_, tail):
        assert tail.records == len(bank.reference) and tail.resumed_from is None
    assert snapshot.path_in(topics.data_dir).exists()

    await send_staff(producer, topics, 5, "BR9")
    async with reading(topics) as (resumed, tail):
        assert tail.resumed_from == len(bank.reference)
        assert tail.records == 5, "only the records after the snapshot were read"
    async with reading(topics.replace(reference_snapshot_records=0)) as (full, tail):
        assert tail.records == len(bank.reference) + 5
    assert content(resumed) == content(full)
    assert resumed.staff_at("EXTRA4", T0 + 10) is not None


async def test_a_snapshot_of_other_topics_is_not_used(topics: Settings, tmp_path: Path) -> None:
    """Topics of the same names that do not hold the snapshot's records (created again,
    another cluster): the record before each offset differs, so everything is read."""
    other = topics.replace(topic_prefix=topics.topic_prefix + "x.", data_dir=tmp_path / "other")
    await ensure_topics(other, PARTITIONS)
    await publish_reference(other, small_bank(seed=8, staff=24, days=5, branches=2))
    async with reading(other) as (_, tail):
        pass
    # The same snapshot, with its positions renamed onto the first topics: same offsets
    # exist there (as many records or more), different records at them.
    found = snapshot.read(snapshot.path_in(other.data_dir))
    assert found is not None
    image, positions = found
    renamed = {
        (t.replace(other.topic_prefix, topics.topic_prefix), p): v
        for (t, p), v in positions.items()
    }
    bank = small_bank(seed=9, staff=60, days=5, branches=2)
    held = Counter(
        (topics.topic_prefix + suffix, partition_for(key or b"", PARTITIONS))
        for suffix, key, _ in bank.reference
    )
    # Every offset of the snapshot exists in these topics: only the checksums can tell.
    assert all(held[k] >= off for k, (off, _) in renamed.items()), "a bigger bank is needed"
    await publish_reference(topics, bank)
    snapshot.write(snapshot.path_in(topics.data_dir), image, renamed)
    async with reading(topics) as (state, tail):
        assert tail.resumed_from is None, "the snapshot was dropped"
        assert tail.records == len(bank.reference)
    async with reading(topics.replace(reference_snapshot_records=0)) as (full, _):
        assert content(state) == content(full)


async def test_the_snapshot_is_written_again_after_enough_records(
    topics: Settings, producer: AIOKafkaProducer
) -> None:
    every = 3
    s = topics.replace(reference_snapshot_records=every)
    await publish_reference(s, small_bank(seed=4, staff=24, days=5, branches=2))
    path = snapshot.path_in(s.data_dir)
    async with reading(s) as (state, _):
        deadline = time.monotonic() + 10
        while not path.exists():  # written in a thread once the reader is ready
            assert time.monotonic() < deadline, "no snapshot once ready"
            await asyncio.sleep(0.1)
        first = path.stat().st_mtime_ns
        await send_staff(producer, s, every, "BR7")
        await caught_up(state, lambda st: st.staff_at(f"EXTRA{every - 1}", T0 + 99) is not None)
        deadline = time.monotonic() + 10
        while path.stat().st_mtime_ns == first:
            assert time.monotonic() < deadline, "no new snapshot after enough records"
            await asyncio.sleep(0.2)
    found = snapshot.read(path)
    assert found is not None
    back = ReferenceState()
    back.restore(found[0])
    assert back.staff_at(f"EXTRA{every - 1}", T0 + 99) is not None
    assert back.counts() == state.counts()
