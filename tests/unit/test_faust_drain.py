"""The eager fetch loop (pipeline.worker.faust_drain) against Faust's own."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from mode import Service

from pipeline.worker import faust_drain
from pipeline.worker.faust_drain import FAUST_DRAIN_MESSAGES, deliver, drain_messages


class Consumer(Service):
    """What both loops read of a Faust consumer, over a fixed list of fetches."""

    consumer_stopped_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, fetches: list[list[tuple[str, int]]], commit_every: int | None) -> None:
        super().__init__()
        self.fetches = list(fetches)
        self.delivered: list[tuple[str, int]] = []
        self.gaps: list[tuple[str, int, int]] = []
        self.commits = 0
        self._read_offset: defaultdict[str, int | None] = defaultdict(lambda: None)
        self._commit_every = commit_every
        self._n_acked = 0
        self.suspend_flow = asyncio.Event()
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda t: True))
        self.transport = SimpleNamespace(app=SimpleNamespace(should_stop=False))
        self.diag = SimpleNamespace(set_flag=lambda f: None, unset_flag=lambda f: None)
        self.callback: Callable[[Any], Any] = self.on_message

    async def on_message(self, message: Any) -> None:
        self.delivered.append((message.tp, message.offset))
        self._n_acked += 1  # as if the stream acknowledged it at once

    def getmany(self, timeout: float) -> Any:
        if not self.fetches:
            self._stopped.set()
        batch = self.fetches.pop(0) if self.fetches else []

        async def records() -> Any:
            for tp, offset in batch:
                yield tp, SimpleNamespace(tp=tp, offset=offset, topic="t", key=None, value=b"")

        return records()

    async def _add_gap(self, tp: str, start: int, end: int) -> None:
        self.gaps.append((tp, start, end))

    async def commit(self) -> None:
        self.commits += 1


FETCHES = [
    [("a", 0), ("a", 1), ("b", 5), ("a", 2)],
    [("a", 6), ("b", 6), ("a", 7)],  # a: a gap from 3 to 5
    [
        ("a", 5),
        ("a", 8),
        ("b", 7),
    ],  # a: 5, below the read offset, is dropped
    [("a", i) for i in range(9, 240)] + [("b", 8)],  # long enough to yield midway
]


async def _run(loop_fn: Any) -> Consumer:
    consumer = Consumer(FETCHES, commit_every=50)
    await loop_fn(consumer, SimpleNamespace(_stopped=asyncio.Event()))
    return consumer


async def test_the_eager_loop_delivers_drops_and_records_gaps_as_faust_does() -> None:
    faust = await _run(FAUST_DRAIN_MESSAGES)
    eager = await _run(drain_messages)
    assert eager.delivered == faust.delivered
    assert (eager.gaps, eager.commits) == (faust.gaps, faust.commits)
    assert dict(eager._read_offset) == dict(faust._read_offset)
    # and what both do: nothing of "a" before offset 7 once 7 was read; one gap
    assert ("a", 5) not in eager.delivered and ("a", 8) in eager.delivered
    assert eager.gaps == [("a", 3, 6)]
    assert len(eager.delivered) == 241
    assert eager.commits == 4  # a commit each time 50 more were acknowledged
    assert eager._read_offset["a"] == 239 and eager._read_offset["b"] == 8


async def test_a_delivery_that_needs_no_wait_runs_without_a_task() -> None:
    loop = asyncio.get_running_loop()
    made: list[Any] = []
    factory = loop.get_task_factory()

    def counting(lp: Any, coro: Any, **kw: Any) -> Any:
        made.append(coro)
        return asyncio.Task(coro, loop=lp, **kw)

    consumer = Consumer([], commit_every=None)
    loop.set_task_factory(counting)
    try:
        await deliver(consumer, consumer.callback, SimpleNamespace(tp="a", offset=3))
    finally:
        loop.set_task_factory(factory)
    assert consumer.delivered == [("a", 3)]
    assert made == []


async def test_a_delivery_that_waits_is_finished_once_its_future_is_done() -> None:
    consumer = Consumer([], commit_every=None)
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    seen: list[object] = []

    async def slow(message: Any) -> None:
        seen.append(await gate)
        await asyncio.sleep(0)  # a bare yield as well
        seen.append(message.offset)

    asyncio.get_running_loop().call_later(0.01, gate.set_result, 42)
    await deliver(consumer, slow, SimpleNamespace(tp="a", offset=7))
    assert seen == [42, 7]


async def test_a_waiting_delivery_is_abandoned_when_the_flow_is_suspended() -> None:
    consumer = Consumer([], commit_every=None)
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    ended: list[str] = []

    async def stuck(message: Any) -> None:
        try:
            await gate  # a full stream buffer, say
            ended.append("delivered")
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise
        finally:
            ended.append("finally")

    asyncio.get_running_loop().call_later(0.01, consumer.suspend_flow.set)
    await asyncio.wait_for(deliver(consumer, stuck, SimpleNamespace(tp="a", offset=1)), 5)
    await asyncio.sleep(0.01)  # the abandoned delivery's cancellation runs
    assert ended == ["cancelled", "finally"]
    assert gate.cancelled()


async def test_an_error_in_a_delivery_ends_the_loop() -> None:
    consumer = Consumer(FETCHES, commit_every=None)

    async def broken(message: Any) -> None:
        raise ValueError("cannot decode")

    consumer.callback = broken
    with pytest.raises(ValueError, match="cannot decode"):
        await drain_messages(consumer, SimpleNamespace(_stopped=asyncio.Event()))


def test_install_replaces_faust_s_loop_and_uninstall_restores_it() -> None:
    from faust.transport.consumer import Consumer as FaustConsumer

    faust_drain.install()
    faust_drain.install()
    assert FaustConsumer._drain_messages is drain_messages
    faust_drain.uninstall()
    assert FaustConsumer._drain_messages is FAUST_DRAIN_MESSAGES
    faust_drain.install()
