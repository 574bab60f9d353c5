"""take_ready (pipeline.worker.faust_take) on a real Faust stream (an agent's test_context)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import faust
import pytest

from pipeline.worker.faust_take import take_ready


class Recorder:
    """An app with one agent that takes batches with ``take_ready`` and, for each,
    waits for :attr:`gate` before acking it."""

    def __init__(self, max_: int, within: float) -> None:
        self.app = faust.App("take-ready-test", store="memory://", autodiscover=False)
        self.batches: list[list[bytes]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        topic = self.app.topic("t", key_serializer="raw", value_serializer="raw")

        async def agent(stream: Any) -> None:
            async for events in take_ready(stream, max_, within):
                self.batches.append([e.value for e in events])
                await self.gate.wait()
                for e in events:
                    await stream.ack(e)

        self.agent = self.app.agent(topic, name="take")(agent)


@pytest.fixture(autouse=True)
async def collected() -> AsyncIterator[None]:
    """Each test's apps, streams and generators are collected while its loop runs: left
    to a later collection, their finalizers ran inside pytest's own ast.parse at the end
    of the session and CPython 3.11.7 raised "AST constructor recursion depth mismatch"."""
    yield
    gc.collect()


async def until(fn: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not fn():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_a_trickle_is_handed_over_at_once_not_after_within() -> None:
    r = Recorder(max_=100, within=30.0)
    async with r.agent.test_context() as a:
        started = asyncio.get_running_loop().time()
        await a.put(value=b"0", wait=False)
        await until(lambda: r.batches == [[b"0"]], timeout=5.0)
        assert asyncio.get_running_loop().time() - started < 5.0  # not the 30 s of within
        for i in (1, 2, 3):
            await a.put(value=b"%d" % i, wait=False)
        await until(lambda: sum(map(len, r.batches)) == 4)
    assert [v for b in r.batches for v in b] == [b"0", b"1", b"2", b"3"]


async def test_what_came_while_the_agent_was_busy_follows_at_once_in_batches_of_max() -> None:
    r = Recorder(max_=5, within=30.0)
    async with r.agent.test_context() as a:
        r.gate.clear()
        for i in range(3):
            await a.put(value=b"%d" % i, wait=False)
        await until(lambda: len(r.batches) == 1)
        for i in range(3, 12):
            await a.put(value=b"%d" % i, wait=False)
        await asyncio.sleep(0.05)
        assert len(r.batches) == 1  # the agent is still busy with the first batch
        r.gate.set()
        await until(lambda: sum(map(len, r.batches)) == 12)
    assert r.batches[0] == [b"0", b"1", b"2"]
    assert all(len(b) <= 5 for b in r.batches)
    assert r.batches[1] == [b"%d" % i for i in range(3, 8)]  # gathered while busy, max_ of them
    assert [v for b in r.batches for v in b] == [b"%d" % i for i in range(12)]


async def test_the_stream_acks_nothing_itself_and_the_processor_goes_with_the_generator() -> None:
    app = faust.App("take-ready-close", store="memory://", autodiscover=False)
    seen: dict[str, Any] = {}

    async def agent(stream: Any) -> None:
        seen["before"] = (len(stream._processors), stream.enable_acks)
        batches = take_ready(stream, 10, 1.0)
        events = await batches.__anext__()
        seen["during"] = (len(stream._processors), stream.enable_acks, len(events))
        await batches.aclose()
        seen["after"] = (len(stream._processors), stream.enable_acks)

    wrapped = app.agent(app.topic("t", value_serializer="raw"), name="close")(agent)
    async with wrapped.test_context() as a:
        await a.put(value=b"0", wait=False)
        await until(lambda: "after" in seen)
    n, acks = seen["before"]
    assert seen["during"] == (n + 1, False, 1)
    assert seen["after"] == (n, acks)
    with pytest.raises(ValueError, match="max_ >= 1"):
        take_ready(object(), 0, 1.0)
