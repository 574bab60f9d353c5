"""The worker's two global tables: the reference data and the peer statistics.

Both are :class:`~pipeline.broker.tail.Tail` readers of whole topics. They run
in the process that holds the core: the worker, or its scoring process
(:mod:`pipeline.worker.scorer`), where they run on a thread of their own and
apply each record under ``lock``, which the core holds while it scores.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext

from pipeline.broker.tail import Tail
from pipeline.observability.metrics import WorkerMetrics
from pipeline.peers import days as peer_days
from pipeline.peers.book import PeerBook
from pipeline.reference.reader import reference_reader
from pipeline.reference.state import ReferenceState
from pipeline.settings import Settings
from pipeline.worker.publish import DeadLetterSender

log = logging.getLogger(__name__)


def reader_tails(
    s: Settings,
    reference: ReferenceState,
    book: PeerBook,
    dead_letters: DeadLetterSender,
    metrics: WorkerMetrics,
    lock: AbstractContextManager[object] | None = None,
) -> tuple[Tail, Tail]:
    """The reference tail and the peer-statistics tail, applying into ``reference`` and
    ``book``."""
    guard = lock if lock is not None else nullcontext()

    async def apply_peer_record(
        topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> None:
        if value is None:
            return  # a compaction tombstone: nothing to apply
        try:
            rec = peer_days.decode(value)
        except Exception as exc:  # msgspec errors: an unreadable internal record
            log.error("peer statistics %s[%d]@%d unreadable: %s", topic, partition, offset, exc)
            metrics.state_resets.labels(kind="peer_day", reason="corrupt").inc()
            return
        with guard:
            book.add(rec)

    reference_tail = reference_reader(
        s,
        reference,
        dead_letters,
        lambda kind: metrics.reference_records.labels(kind=kind).inc(),
        on_error=lambda: metrics.batches_dropped.labels(agent="reference").inc(),
        lock=lock,
    )
    peer_tail = Tail(
        s,
        [s.peer_days_topic],
        apply_peer_record,
        "peer statistics",
        on_error=lambda: metrics.batches_dropped.labels(agent="peers").inc(),
    )
    return reference_tail, peer_tail
