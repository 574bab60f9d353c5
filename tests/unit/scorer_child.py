"""A scoring process for unit tests: :mod:`pipeline.worker.scorer`'s own loop, with the
reference data and peer statistics ready from the start (empty) instead of read from
Kafka. ``python -m tests.unit.scorer_child``."""

from __future__ import annotations

import sys
import threading
import time

from pipeline.observability.metrics import WorkerMetrics
from pipeline.peers.book import PeerBook
from pipeline.reference.state import ReferenceState
from pipeline.settings import Settings
from pipeline.worker import scorer


class Loaded:
    def __init__(self) -> None:
        self.reference_ready = threading.Event()
        self.peers_ready = threading.Event()
        self.reference_ready.set()
        self.peers_ready.set()
        self.metrics = WorkerMetrics()
        self.metrics.reference_records.labels(kind="staff").inc(3)  # seen merged by the worker

    @property
    def polled_at(self) -> tuple[float, float]:
        now = time.monotonic()
        return now, now


def loaded(
    settings: Settings, reference: ReferenceState, book: PeerBook, lock: threading.Lock
) -> Loaded:
    return Loaded()


if __name__ == "__main__":
    sys.exit(scorer.main(loaded))
