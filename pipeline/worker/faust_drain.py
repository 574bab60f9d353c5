"""Faust's fetch loop (``Consumer._drain_messages``) without four tasks per record.

Faust hands every fetched record to its conductor (which decodes it and puts it
on each subscribed stream's buffer) inside ``Service.wait_first``: the delivery
races the consumer's ``suspend_flow`` event, so that a rebalance can abandon a
delivery stuck on a full stream buffer. ``wait_first`` wraps the delivery, the
event and the service's stopped and crashed events in a task each and cancels
three of them again, for every record. Almost no delivery ever waits, yet that
machinery is most of what a Faust agent costs per record: ``bench/throughput.py``
measured a no-op agent at ~170 µs of CPU per record with Faust's loop and ~60 µs
with this one (6,220 against 17,177 records/s in one run; ``bench/README.md``).

:func:`drain_messages` is the same loop with an eager delivery (:func:`deliver`):
the conductor's coroutine is started at once, as Python 3.12's eager tasks would,
and it almost always ends without waiting. Only a delivery that must wait (flow
control stopped for a rebalance, a full producer buffer, a full stream buffer)
goes on as a task raced against ``suspend_flow``, exactly as in Faust; while
``suspend_flow`` is set, every delivery goes through Faust's own race. The rest
is unchanged in meaning: records before the partition's read offset (from before
a seek) are dropped, a jump in offsets is recorded as a gap for the commit, a
commit is made every ``broker_commit_every`` acknowledgements, the loop yields
to the event loop every 100 records, and errors end it as they end Faust's.

:func:`install` puts it in place of Faust's method for every consumer of the
process (the worker's :func:`pipeline.worker.app.create_app` does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final

from faust.transport.consumer import CONSUMER_FETCHING, Consumer

log = logging.getLogger(__name__)

YIELD_EVERY: Final = 100
_INSTALLED: Final = "_pipeline_eager_drain"
FAUST_DRAIN_MESSAGES: Final = Consumer._drain_messages  # Faust's own, for the benchmark


async def finish(coro: Coroutine[Any, Any, Any], waiting: Any) -> Any:
    """Run ``coro``, started and now waiting on ``waiting`` (a future, or None for a
    bare yield), to its end as a task would: each time what it waits on is done it
    is resumed; cancelled, it sees CancelledError where it waits."""
    while True:
        cancelled = False
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                waiting._asyncio_future_blocking = False
                await asyncio.wait((waiting,))
        except asyncio.CancelledError:
            # A future cancelled here raises CancelledError inside coro when resumed;
            # one already done (or a bare yield) gets it thrown in, as Task.cancel does.
            cancelled = waiting is None or not waiting.cancel()
        try:
            waiting = coro.throw(asyncio.CancelledError()) if cancelled else coro.send(None)
        except StopIteration as stop:
            return stop.value


async def deliver(consumer: Any, callback: Callable[[Any], Any], message: Any) -> None:
    """Hand ``message`` to ``callback`` (the conductor), eagerly: most deliveries end
    here without a task; one that must wait is raced against ``suspend_flow``."""
    coro = callback(message)
    try:
        waiting = coro.send(None)
    except StopIteration:
        return
    await consumer.wait_first(finish(coro, waiting), consumer.suspend_flow.wait())


async def drain_messages(self: Any, fetcher: Any) -> None:
    """``Consumer._drain_messages`` with :func:`deliver` (see the module's text)."""
    callback = self.callback
    read_offset = self._read_offset
    acks_enabled_for = self.app.topics.acks_enabled_for
    commit_every = self._commit_every
    suspend_flow = self.suspend_flow
    since_yield = 0
    try:
        while not (self._stopped.is_set() or fetcher._stopped.is_set()):
            self.diag.set_flag(CONSUMER_FETCHING)
            records = self.getmany(timeout=1.0)
            await self.sleep(0)  # getmany may return at once, again and again
            if self.should_stop:
                continue
            async for tp, message in records:
                since_yield += 1
                if since_yield > YIELD_EVERY:
                    since_yield = 0
                    await asyncio.sleep(0)
                offset = message.offset
                last = read_offset[tp]
                if last is not None and offset < last:
                    continue  # fetched before a seek back; read again from there
                if last and offset - last > 1 and acks_enabled_for(message.topic):
                    await self._add_gap(tp, last + 1, offset)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                if suspend_flow.is_set():
                    await self.wait_first(callback(message), suspend_flow.wait())
                else:
                    await deliver(self, callback, message)
                read_offset[tp] = offset
            self.diag.unset_flag(CONSUMER_FETCHING)
    except (*self.consumer_stopped_errors, asyncio.CancelledError):
        if self.transport.app.should_stop:
            log.info("fetch loop stopped: the worker is stopping")
            return
        raise
    finally:
        self.diag.unset_flag(CONSUMER_FETCHING)


def install() -> None:
    """Use :func:`drain_messages` in every Faust consumer of this process (idempotent)."""
    if getattr(Consumer, _INSTALLED, False):
        return
    Consumer._drain_messages = drain_messages  # type: ignore[method-assign]
    setattr(Consumer, _INSTALLED, True)


def uninstall() -> None:
    """Faust's own loop again (the benchmark's stock no-op agent; tests)."""
    Consumer._drain_messages = FAUST_DRAIN_MESSAGES  # type: ignore[method-assign]
    setattr(Consumer, _INSTALLED, False)
