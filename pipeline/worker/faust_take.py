"""Batches of a Faust stream handed over as soon as nothing more is ready.

Faust's ``Stream.noack_take(max_, within)`` gives the agent a batch when
``max_`` events wait, or when a timer of ``within`` seconds fires; the timer
starts again after every batch, and while the agent works on one the next
is held back. A live stream never fills a batch, so each record waited for
the timer, and the records that came while the agent was busy waited a full
``within`` more once it was done: with ``within`` 0.1 s the median from
publish to alert in ``bench/latency.py`` was ~170 ms at 2,500 accesses/s,
of which the cycle itself took ~30 ms.

:func:`take_ready` ends a batch when the stream is quiet instead: once it
holds an event, it gathers while more are queued or arrived in the last turn
of the event loop, and hands over what it has as soon as neither is true, or
when ``max_`` events wait, or ``within`` seconds after the first one. A live
stream's batch is then what one fetch brought (the fetch wait of
:mod:`pipeline.worker.faust_fetch` sets its size), and records that came
while the agent was busy go into the next batch at once. Under load, batches
grow by themselves: catching up, the queue is never empty and every batch
is ``max_`` events, as with Faust's. The buffer also keeps filling while the
agent works (Faust's stops at the first event), up to ``max_``, where the
stream waits for room.

Like ``noack_take``, it turns the stream's own acks off: the agent acks each
event itself. It uses the same Faust internals as ``noack_take`` does (a
stream processor, the stream's passive drainer, the channel's queue);
``tests/unit/test_faust_take.py`` runs it on a real stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any


def take_ready(stream: Any, max_: int, within: float) -> AsyncIterator[list[Any]]:
    """Lists of up to ``max_`` events of ``stream`` (not acknowledged), each as soon as
    the stream is quiet, or full, or ``within`` seconds after its first event.

    The generator is registered with the stream, as Faust registers its own ``take``
    generators, so that stopping the stream closes it (and removes its processor)
    instead of leaving that to the garbage collector."""
    if max_ < 1 or within <= 0:
        raise ValueError(f"take_ready needs max_ >= 1 and within > 0 (got {max_}, {within})")
    batches = _batches(stream, max_, within)
    active = getattr(stream, "_active_agens", None)
    if active is not None:
        active.add(batches)
    return batches


async def _batches(stream: Any, max_: int, within: float) -> AsyncIterator[list[Any]]:
    buffer: list[Any] = []
    arrived = asyncio.Event()  # set when the buffer gets its first event
    room = asyncio.Event()  # set when the buffer has room again
    room.set()

    async def wait_for_room(value: Any) -> Any:
        while len(buffer) >= max_ and not stream.should_stop:
            room.clear()
            await stream.wait(room)
        buffer.append(stream.current_event)
        arrived.set()
        return value

    def add(value: Any) -> Any:
        # A plain function: Faust awaits a processor's result only if it is awaitable, so
        # the common case costs no coroutine; a full buffer returns one that waits.
        if len(buffer) >= max_:
            return wait_for_room(value)
        event = stream.current_event
        if event is None:
            raise RuntimeError("take_ready: the stream has no current event")
        buffer.append(event)
        arrived.set()
        return value

    queue = stream.channel.queue
    loop = asyncio.get_running_loop()
    acks_before = stream.enable_acks
    stream.enable_acks = False
    stream.add_processor(add)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            if not buffer:
                arrived.clear()
                if await stream.wait_for_stopped(arrived):
                    break
                continue
            deadline = loop.time() + within
            while len(buffer) < max_ and loop.time() < deadline:
                had = len(buffer)
                await asyncio.sleep(0)
                if len(buffer) == had and queue.empty():
                    break  # nothing came in a whole turn and nothing is queued
            batch = buffer[:max_]
            del buffer[:max_]
            room.set()
            yield batch
    finally:
        stream.enable_acks = acks_before
        stream._processors.remove(add)
