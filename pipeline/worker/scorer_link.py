"""The worker's side of its scoring process (:mod:`pipeline.worker.scorer`).

:class:`ScorerLink` starts the child and carries requests to it and replies
back, in order; a :class:`~pipeline.worker.scorer_wire.Get` of the child is
answered from the state table at once. :class:`RemoteAccessProcessor` is the
access agent's batch function over it: the same intake, order of effects and
flushes as :class:`~pipeline.worker.access.AccessProcessor`, with up to
``DEPTH`` batches in the child at once, so that Faust takes the next batch
while the child scores the last.

Order of effects, as in ``access``: the replies are handled one at a time in
the order of the batches; each one's records are published and acknowledged
by the broker; a reply that carries state writes (the child encodes them when
the batch asked for a flush, after that batch, so they hold nothing of a later
one) has them written to the table and acknowledged, and only then are the
records handled so far acked. A reply whose publishing was cut short (the
worker stopping) marks the processor interrupted: nothing is written or acked
from then on, and the next owner replays those records.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final

from pipeline.core.engine import Inbound
from pipeline.observability.metrics import WorkerMetrics
from pipeline.settings import Settings
from pipeline.worker import scorer_wire as wire
from pipeline.worker.access import Consumer, Intake, StateTable
from pipeline.worker.publish import OutboxPublisher

log = logging.getLogger(__name__)

DEPTH: Final = 4  # batches in the child at once (bench/README.md, "Scoring in a second process")
STATUS_EVERY_S: Final = 0.25
PIPE_BYTES: Final = 1 << 20
METRICS_WAIT_S: Final = 2.0
REVOKE_WAIT_S: Final = 30.0  # replies still in flight at a revoke are waited for this long


class ScorerExited(RuntimeError):
    """The scoring process ended, or its stream broke."""


class ScorerLink:
    def __init__(
        self,
        settings: Settings,
        table: StateTable,
        argv: Sequence[str] = (sys.executable, "-m", "pipeline.worker.scorer"),
    ) -> None:
        self.settings = settings
        self.table = table
        self.argv = list(argv)
        self.proc: asyncio.subprocess.Process | None = None
        self._pending: deque[asyncio.Future[wire.Reply]] = deque()
        self._reader: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None
        self.closed = asyncio.Event()
        self.asked = 0  # states the child asked for (not sent with their batch)

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=wire.MAX_FRAME,
        )
        log.info("scoring process started (pid %d)", self.proc.pid)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        for stream in (self.proc.stdin, self.proc.stdout):
            _widen(stream)
        self.proc.stdin.write(wire.frame(wire.Start(self.settings.model_dump_json().encode())))
        self._reader = asyncio.create_task(self._read(), name="scorer-link")

    def request(self, msg: wire.Request) -> asyncio.Future[wire.Reply]:
        """Send ``msg`` (written at once, in order); the future gets its reply."""
        if self.failure is not None:
            raise ScorerExited(str(self.failure))
        if self.proc is None or self.proc.stdin is None:
            raise ScorerExited("the scoring process is not running")
        fut: asyncio.Future[wire.Reply] = asyncio.get_running_loop().create_future()
        self.proc.stdin.write(wire.frame(msg))
        self._pending.append(fut)
        return fut

    async def call(self, msg: wire.Request) -> wire.Reply:
        fut = self.request(msg)
        await self.drain()
        return await fut

    async def drain(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            try:
                await self.proc.stdin.drain()
            except (ConnectionError, BrokenPipeError) as exc:
                raise ScorerExited(f"the scoring process's stdin closed: {exc}") from exc

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        out = self.proc.stdout
        try:
            while True:
                header = await out.readexactly(wire.HEADER.size)
                body = await out.readexactly(wire.frame_size(header))
                msg = wire.reply_decoder.decode(body)
                if isinstance(msg, wire.Get):
                    self.asked += 1
                    value = self.table.get(msg.key)
                    assert self.proc.stdin is not None
                    self.proc.stdin.write(wire.frame(wire.Value(msg.key, value)))
                    continue
                if not self._pending:
                    raise ScorerExited(f"a {type(msg).__name__} came with no request waiting")
                fut = self._pending.popleft()
                if not fut.done():
                    fut.set_result(msg)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            code = await self._returncode()
            why = f"exit code {code}" if code is not None else f"{type(exc).__name__}: {exc}"
            self._fail(ScorerExited(f"the scoring process ended ({why})"))
        finally:
            self.closed.set()

    async def _returncode(self) -> int | None:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), 5.0)
        except TimeoutError:
            return None

    def _fail(self, exc: BaseException) -> None:
        self.failure = exc
        while self._pending:
            fut = self._pending.popleft()
            if not fut.done():
                fut.set_exception(exc)

    async def stop(self) -> float | None:
        """Ask the child to stop; its CPU seconds (None: it was gone)."""
        if self.proc is None or self.failure is not None:
            return None
        try:
            reply = await asyncio.wait_for(self.call(wire.Stop()), 10.0)
        except (ScorerExited, TimeoutError):
            return None
        finally:
            await self.close()
        return reply.cpu_seconds if isinstance(reply, wire.Stopped) else None

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.proc is not None and self.proc.returncode is None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10.0)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def _widen(stream: Any) -> None:
    """Give a pipe to the child ``PIPE_BYTES`` of buffer (Linux; 64 KiB by default, less
    than one batch): fewer turns of both loops per batch."""
    transport = getattr(stream, "transport", None) or getattr(stream, "_transport", None)
    pipe = transport.get_extra_info("pipe") if transport is not None else None
    if pipe is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    try:
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError as exc:  # above /proc/sys/fs/pipe-max-size: the default stays
        log.debug("pipe buffer not widened: %s", exc)


class RemoteStatus:
    """What the child reports of its readers, refreshed by :meth:`run` (the worker's
    ``reference`` task): readiness and loop turns as a :class:`Tail` shows them."""

    class View:
        def __init__(self) -> None:
            self.ready = asyncio.Event()
            self.polled_at = time.monotonic()

    def __init__(self, link: ScorerLink) -> None:
        self.link = link
        self.reference = self.View()
        self.peers = self.View()
        self.counts: dict[str, int] = {}
        self.waiting = 0

    def update(self, st: wire.State) -> None:
        if st.reference_ready:
            self.reference.ready.set()
        if st.peers_ready:
            self.peers.ready.set()
        self.reference.polled_at = st.reference_polled_at
        self.peers.polled_at = st.peers_polled_at
        self.counts = st.reference
        self.waiting = st.waiting

    async def run(self) -> None:
        """Start the child and ask for its status every ``STATUS_EVERY_S`` while it lives;
        raises once it ended (the worker stops)."""
        await self.link.start()
        while True:
            reply = await self.link.call(wire.Status(metrics=False))
            if isinstance(reply, wire.State):
                self.update(reply)
            await asyncio.sleep(STATUS_EVERY_S)

    async def metrics(self) -> list[wire.Family]:
        """The child's metric families (none while it is not running, or when it does not
        answer within ``METRICS_WAIT_S``: the page then has this process's alone)."""
        if self.link.proc is None or self.link.failure is not None:
            return []
        try:
            reply = await asyncio.wait_for(
                asyncio.shield(self.link.call(wire.Status(metrics=True))), METRICS_WAIT_S
            )
        except (TimeoutError, ScorerExited) as exc:
            log.warning("the scoring process's metrics left out: %s", exc or "no answer")
            return []
        if not isinstance(reply, wire.State) or reply.metrics is None:
            raise ScorerExited(f"a {type(reply).__name__} came for a status")
        self.update(reply)
        return reply.metrics


class RemoteAccessProcessor(Intake):
    """The access agent's batch function, scoring in the child."""

    def __init__(
        self,
        link: ScorerLink,
        publisher: OutboxPublisher,
        table: StateTable,
        consumer: Consumer,
        metrics: WorkerMetrics,
        topic: str,
        partitions: int,
        fatal: Callable[[BaseException], None],
    ) -> None:
        super().__init__(consumer, metrics, topic)
        self.link = link
        self.publisher = publisher
        self.table = table
        self.fatal = fatal
        self.assigned: set[int] = set(range(partitions))
        self._shipped: dict[int, set[str]] = {}  # p -> staff keys sent since assigned
        self._slots = asyncio.Semaphore(DEPTH)
        self._inflight: asyncio.Queue[tuple[asyncio.Future[wire.Reply], float]] = asyncio.Queue()
        self._unfinished = 0  # requests sent whose reply is not handled yet
        self._settled = asyncio.Event()  # set whenever _unfinished is 0
        self._settled.set()
        self._completer: asyncio.Task[None] | None = None
        self._waiting = 0

    # -- intake ------------------------------------------------------------------------
    def assign(self, partitions: Iterable[int]) -> None:
        parts = set(partitions)
        self._assigned(parts)
        if parts != self.assigned and self.link.proc is not None:
            self.assigned = parts
            self._send(wire.Assign(sorted(parts)))

    def waiting(self) -> int:
        return self._waiting

    async def handle(self, events: list[Any], ack: Callable[[Any], Awaitable[Any]]) -> None:
        """Send one batch to the child; return once fewer than ``DEPTH`` are there."""
        self._ack = ack
        async with self.lock:
            inbound = self._take(events, self.assigned)
            if self._rewinds:
                await self._ask_rewinds()
            await self._slots.acquire()
            # Not waiting for the pipe to take it (a batch is larger than a pipe's buffer,
            # so that would wait for the child to finish the batch before): the slots
            # bound what is buffered.
            self._send_batch(inbound)

    async def tick(self) -> None:
        async with self.lock:
            await self._ask_rewinds()
            await self._slots.acquire()
            self._send_batch([])

    async def learn(self, verdicts: Sequence[wire.Verdict]) -> list[bool] | None:
        """Apply analysts' verdicts in the child, then a cycle that writes their states;
        None when the states could not be written (after an interrupted cycle)."""
        async with self.lock:
            states = self._states((sid, p) for sid, p, *_ in verdicts)
            reply = await self._await(wire.Learn(list(verdicts), states))
            if not isinstance(reply, wire.Learned):
                raise ScorerExited(f"a {type(reply).__name__} came for verdicts")
            await self._slots.acquire()
            self._send_batch([], flush=True)
            await self.link.drain()
            await self._wait_settled(None)
            return None if self._interrupted else reply.applied

    async def revoke(self, partitions: Iterable[int]) -> None:
        """Hand partitions over (call under :attr:`lock`): once every reply in flight is
        handled, the child's pending states are written, then it forgets the partitions;
        their records are not acked (the next owner reads them again)."""
        gone = frozenset(partitions)
        if not gone:
            return
        if self.link.proc is None:  # not started yet: nothing was scored here
            self.assigned -= gone
            self._forget(gone)
            return
        if not await self._wait_settled(REVOKE_WAIT_S):
            # Replies still not published: the broker is away, or the worker stops. The
            # child's states are ahead of the topics; nothing of them may be written.
            self._interrupted = True
            self.fatal(ScorerExited(f"replies still unpublished after {REVOKE_WAIT_S:.0f} s"))
        writes: list[tuple[str, bytes]] = []
        if self.link.failure is None and not self._interrupted:
            reply = await self.link.call(wire.Revoke(sorted(gone)))
            if not isinstance(reply, wire.Revoked):
                raise ScorerExited(f"a {type(reply).__name__} came for a revoke")
            writes = reply.writes
        if not self._refuse_flush():
            if writes:
                await self.table.write(writes)
            await self._ack_done(skip_acks=gone)
            self.metrics.state_writes.inc(len(writes))
        self.assigned -= gone
        for p in gone:
            self._shipped.pop(p, None)
        self._forget(gone)

    # -- sending -----------------------------------------------------------------------
    def _states(self, keys: Iterable[tuple[str, int]]) -> list[wire.Shipped]:
        """The table's values of staff keys not sent to the child since assigned."""
        out: list[wire.Shipped] = []
        for sid, p in keys:
            sent = self._shipped.setdefault(p, set())
            if sid not in sent:
                sent.add(sid)
                out.append((sid, p, self.table.get(sid)))
        return out

    def _send_batch(self, inbound: list[Inbound], flush: bool = False) -> None:
        keys = []
        for key, p in {(r.key, r.partition) for r in inbound}:
            if key is not None:
                try:
                    keys.append((key.decode(), p))
                except UnicodeDecodeError:
                    continue  # a key_mismatch dead letter: no state is read for it
        self._send(
            wire.Batch(
                inbound,
                self._states(keys),
                [p for p in sorted(self.assigned) if self.caught_up(p)],
                flush or self._due(True),
            )
        )

    def _send(self, msg: wire.Request) -> None:
        """Send without waiting: the reply is handled by the completer, in order."""
        if self._completer is None:
            self._completer = asyncio.create_task(self._complete(), name="scorer-replies")
        fut = self.link.request(msg)
        self._unfinished += 1
        self._settled.clear()
        self._inflight.put_nowait((fut, time.perf_counter()))

    async def _await(self, msg: wire.Request) -> wire.Reply:
        """Send ``msg`` once every earlier reply is handled, and wait for its reply."""
        await self._wait_settled(None)
        return await self.link.call(msg)

    async def _wait_settled(self, timeout: float | None) -> bool:
        try:
            await asyncio.wait_for(self._settled.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- replies -----------------------------------------------------------------------
    async def _complete(self) -> None:
        try:
            while True:
                fut, sent = await self._inflight.get()
                reply = await fut
                if isinstance(reply, wire.Cycle):
                    await self._cycle(reply, sent)
                    self._slots.release()
                self._unfinished -= 1
                if not self._unfinished:
                    self._settled.set()
        except asyncio.CancelledError:
            if self._unfinished:
                self._interrupted = True
            raise
        except BaseException as exc:
            self._interrupted = True
            self.fatal(exc)
            raise

    async def _cycle(self, reply: wire.Cycle, sent: float) -> None:
        clock = time.perf_counter
        scored = clock()
        await self._publish(self.publisher.send(reply.outbox), reply.done)
        published = clock()
        writes = 0
        if reply.writes is not None and not self._refuse_flush():
            if reply.writes:
                await self.table.write(reply.writes)
            await self._ack_done()
            writes = len(reply.writes)
        written = clock()
        self._flow_control(reply.queues)
        self._observe_cycle(sent, scored, published, written, clock())
        m = self.metrics
        m.batch_records.observe(len(reply.done))
        m.state_writes.inc(writes)
        c = reply.counts
        self._waiting = c.waiting
        resets = {(kind, reason): n for kind, reason, n in c.resets}
        self._export_stats(c.duplicates, c.peer_days, resets, c.newest_event_at)
