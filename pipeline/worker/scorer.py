"""The scoring process: the core of one worker, in a child process of its own.

``PIPELINE_SCORING_PROCESS=true`` starts it (``python -m pipeline.worker.scorer``,
with the worker's environment, so the same settings). The worker keeps what
Faust does (the consumer group, the access stream, the state table, acks,
publishing, Postgres); this process holds what scores: the reference data and
the peer statistics (their readers run on a thread here, so they are held
once, in this process), the per-employee states it was sent, and the
:class:`~pipeline.core.engine.Core`. It answers the worker's requests one at a
time, in order (:mod:`pipeline.worker.scorer_wire`), and encodes the effects
as the records to publish, so the worker only sends bytes.

A state the worker did not send along with a batch is asked for
(:class:`~pipeline.worker.scorer_wire.Get`) and waited for: the worker's table
is the only copy. Failure: when the worker goes away (end of stdin), this
process exits; when it dies, the worker sees the end of its stdout and stops
too (exit 70), and the container restarts both.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import IO, Any, Final, Protocol

import msgspec

from pipeline.alerts.ids import Pseudonymizer
from pipeline.broker import clients
from pipeline.broker.tail import Tail
from pipeline.core.engine import Core
from pipeline.core.offline import core_config
from pipeline.core.store import Store
from pipeline.observability.logging import configure_logging
from pipeline.observability.logs import quiet_payload_loggers
from pipeline.observability.metrics import WorkerMetrics
from pipeline.peers.book import PeerBook
from pipeline.reference.state import ReferenceState
from pipeline.settings import Settings
from pipeline.worker import scorer_wire as wire
from pipeline.worker.publish import DeadLetterSender, encode_outbox
from pipeline.worker.readers import reader_tails
from pipeline.worker.runtime import finding_bytes

log = logging.getLogger(__name__)

EXIT_READER_FAILED: Final = 70


class ShippedBacking:
    """The states the worker sent (popped on first use: the core's store keeps the
    decoded state from then on); any other is asked for with ``ask``."""

    def __init__(self, ask: Callable[[str], bytes | None]) -> None:
        self.ask = ask
        self._values: dict[str, tuple[int, bytes | None]] = {}
        self.asked = 0

    def put(self, key: str, partition: int, value: bytes | None) -> None:
        self._values[key] = (partition, value)

    def get(self, key: str, /) -> bytes | None:
        got = self._values.pop(key, None)
        if got is not None:
            return got[1]
        self.asked += 1
        return self.ask(key)

    def forget(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        self._values = {k: v for k, v in self._values.items() if v[0] not in gone}

    def __len__(self) -> int:
        return len(self._values)


class Scorer:
    """The worker's requests answered with the core (no I/O but ``ask``)."""

    def __init__(
        self,
        settings: Settings,
        reference: ReferenceState,
        book: PeerBook,
        ask: Callable[[str], bytes | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.backing = ShippedBacking(ask)
        self.store = Store(self.backing, settings.partitions)
        self.core = Core(
            reference,
            core_config(settings),
            self.store,
            book,
            Pseudonymizer(settings.pseudonym_key, raw=settings.raw_customer_ids),
            clock=clock,
        )

    def _ship(self, states: list[wire.Shipped]) -> None:
        for key, partition, value in states:
            if not self.store.has_staff(key):  # a state in use here is newer than the table's
                self.backing.put(key, partition, value)

    def handle(self, req: wire.Request) -> wire.Reply:
        core = self.core
        if isinstance(req, wire.Batch):
            self._ship(req.states)
            core.offer(req.records)
            caught = frozenset(req.caught_up)
            out = core.drain(caught.__contains__)
            writes = self.store.pending_writes() if req.flush else None
            return wire.Cycle(
                encode_outbox(out, self.settings, finding_bytes),
                out.done,
                writes,
                {p: len(q) for p, q in core.queues.items()},
                self.counts(),
            )
        if isinstance(req, wire.Assign):
            core.assign(req.partitions)
            return wire.Done()
        if isinstance(req, wire.Revoke):
            writes = self.store.pending_writes()
            core.revoke(req.partitions)
            self.backing.forget(req.partitions)
            return wire.Revoked(writes)
        if isinstance(req, wire.Learn):
            self._ship(req.states)
            return wire.Learned([core.apply_feedback(*v) for v in req.verdicts])
        raise TypeError(f"the scorer does not handle {type(req).__name__}")

    def counts(self) -> wire.Counts:
        st = self.core.stats
        return wire.Counts(
            st.duplicates,
            st.peer_days,
            st.newest_event_at,
            [(kind, reason, n) for (kind, reason), n in self.store.resets.items()],
            self.core.waiting(),
        )


class Readers(threading.Thread):
    """The reference and peer-statistics readers, on an event loop of this thread, with
    a producer of their own for the reference data's dead letters."""

    def __init__(
        self,
        settings: Settings,
        reference: ReferenceState,
        book: PeerBook,
        metrics: WorkerMetrics,
        lock: threading.Lock,
    ) -> None:
        super().__init__(name="readers", daemon=True)
        self.settings = settings
        self.reference = reference
        self.book = book
        self.metrics = metrics
        self.lock = lock
        self.reference_ready = threading.Event()
        self.peers_ready = threading.Event()
        self.polled_at = (time.monotonic(), time.monotonic())

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException:
            log.critical("the scoring process's readers failed; stopping", exc_info=True)
        logging.shutdown()
        os._exit(EXIT_READER_FAILED)  # a reader never ends by itself

    async def _main(self) -> None:
        producer = clients.producer(self.settings)
        await producer.start()
        try:
            sender = DeadLetterSender(_Producer(producer), self.settings, self.metrics)
            ref, peers = reader_tails(
                self.settings, self.reference, self.book, sender, self.metrics, self.lock
            )
            watch = asyncio.create_task(self._watch(ref, peers))
            try:
                await asyncio.gather(ref.run(), peers.run())
            finally:
                watch.cancel()
        finally:
            await producer.stop()

    async def _watch(self, ref: Tail, peers: Tail) -> None:
        """Copy the tails' readiness and loop turns where the serving thread reads them."""
        while True:
            if ref.ready.is_set():
                self.reference_ready.set()
            if peers.ready.is_set():
                self.peers_ready.set()
            self.polled_at = (ref.polled_at, peers.polled_at)
            await asyncio.sleep(0.1)


class _Producer:
    def __init__(self, producer: Any) -> None:
        self.producer = producer

    async def send(self, topic: str, key: bytes | None, value: bytes | None) -> Any:
        return await self.producer.send(topic, value=value, key=key)


class Pipe:
    """Frames over this process's stdin and stdout; requests read while a :class:`Get`
    waits for its answer are kept for later."""

    def __init__(self, inp: IO[bytes], out: IO[bytes]) -> None:
        self.inp = inp
        self.out = out
        self.queued: deque[wire.Request] = deque()

    def _read(self) -> wire.Request | None:
        header = self.inp.read(wire.HEADER.size)
        if len(header) < wire.HEADER.size:
            return None
        size = wire.frame_size(header)
        body = self.inp.read(size)
        if len(body) < size:
            return None
        return wire.request_decoder.decode(body)

    def next(self) -> wire.Request | None:
        """The next request (None: the worker is gone)."""
        return self.queued.popleft() if self.queued else self._read()

    def send(self, msg: msgspec.Struct) -> None:
        self.out.write(wire.frame(msg))
        self.out.flush()

    def ask(self, key: str) -> bytes | None:
        self.send(wire.Get(key))
        while True:
            msg = self._read()
            if msg is None:
                raise EOFError("the worker went away while a state was asked for")
            if isinstance(msg, wire.Value):
                if msg.key != key:
                    raise RuntimeError(f"asked for state {key!r}, got {msg.key!r}")
                return msg.value
            self.queued.append(msg)


class ReaderStatus(Protocol):
    """What :func:`serve` reports of the readers (:class:`Readers`)."""

    reference_ready: threading.Event
    peers_ready: threading.Event
    polled_at: tuple[float, float]
    metrics: WorkerMetrics


StartReaders = Callable[[Settings, ReferenceState, PeerBook, threading.Lock], ReaderStatus]


def start_readers(
    settings: Settings, reference: ReferenceState, book: PeerBook, lock: threading.Lock
) -> ReaderStatus:
    readers = Readers(settings, reference, book, WorkerMetrics(), lock)
    readers.start()
    return readers


def serve(settings: Settings, pipe: Pipe, readers: StartReaders = start_readers) -> int:
    """Answer requests until the worker goes away or says stop."""
    lock = threading.Lock()
    reference, book = ReferenceState(), PeerBook(settings.partitions)
    status = readers(settings, reference, book, lock)
    scorer = Scorer(settings, reference, book, pipe.ask)
    frozen = False
    cpu0 = time.process_time()
    while (req := pipe.next()) is not None:
        if isinstance(req, wire.Stop):
            pipe.send(wire.Stopped(time.process_time() - cpu0))
            return 0
        if isinstance(req, wire.Status):
            ready = status.reference_ready.is_set() and status.peers_ready.is_set()
            if ready and not frozen:  # see Runtime.freeze_loaded_heap
                frozen = True
                gc.collect()
                gc.freeze()
            pipe.send(
                wire.State(
                    status.reference_ready.is_set(),
                    status.peers_ready.is_set(),
                    status.polled_at[0],
                    status.polled_at[1],
                    reference.counts(),
                    scorer.core.waiting(),
                    families(status.metrics) if req.metrics else None,
                )
            )
            continue
        with lock:
            reply = scorer.handle(req)
        pipe.send(reply)
    log.info("the worker went away: the scoring process stops")
    return 0


def families(metrics: WorkerMetrics) -> list[wire.Family]:
    return [
        (f.name, f.type, [(s.name, dict(s.labels), float(s.value)) for s in f.samples])
        for f in metrics.collect()
    ]


def main(readers: StartReaders = start_readers) -> int:
    # A signal to the whole process group (Ctrl-C, an init that forwards SIGTERM to the
    # group) is the worker's to handle: it stops gracefully, then closes stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The binary stdout is the worker's; anything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    pipe = Pipe(sys.stdin.buffer, out)
    first = pipe.next()
    if not isinstance(first, wire.Start):
        print("pipeline.worker.scorer: started without the worker's settings", file=sys.stderr)
        return 2
    settings = Settings.model_validate_json(first.settings)
    configure_logging(settings.log_level, settings.log_format)
    quiet_payload_loggers()
    return serve(settings, pipe, readers)


if __name__ == "__main__":
    sys.exit(main())
