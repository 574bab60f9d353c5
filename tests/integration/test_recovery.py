"""State survives restarts and rebalances; workers give exactly the alerts of the core alone."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from pipeline.settings import Settings
from simbank.workers import WorkerProcess
from tests.chaos.harness import (
    expected_alerts,
    identity,
    publish_accesses,
    publish_reference,
    read_alerts,
    small_bank,
    wait_until,
)
from tests.integration.kit import free_port


async def drained(workers: list[WorkerProcess], events: int) -> bool:
    return sum(w.metric("pipeline_events_in_total") for w in workers) >= events


async def test_a_restarted_worker_resumes_and_the_alerts_are_the_cores(
    topics: Settings, start_worker: Any
) -> None:
    s = topics.replace(dev_mode=True)
    bank = small_bank(seed=5, staff=24, days=6, branches=2)
    want = expected_alerts(bank, s)
    assert want, "the bank raises alerts"
    await publish_reference(s, bank)
    half = len(bank.accesses) // 2
    first = start_worker()
    first.wait_healthy()
    await publish_accesses(s, bank.accesses[:half])
    await wait_until(lambda: first.metric("pipeline_events_in_total") >= half, 120)
    assert first.stop(signal.SIGTERM) == 0
    second = start_worker()
    second.wait_healthy()
    await publish_accesses(s, bank.accesses[half:])
    await wait_until(
        lambda: second.metric("pipeline_events_in_total") >= len(bank.accesses) - half, 120
    )

    async def complete() -> bool:
        return identity(await read_alerts(s)) >= identity(want)

    await wait_until(complete, 60, 1.0)
    assert identity(await read_alerts(s)) == identity(want)


async def test_two_workers_give_the_same_alerts_as_the_core_alone(
    topics: Settings, start_worker: Any, tmp_path: Path
) -> None:
    s = topics
    bank = small_bank(seed=9, staff=24, days=6, branches=2)
    want = expected_alerts(bank, s)
    await publish_reference(s, bank)
    workers = [start_worker(), start_worker(free_port())]
    for w in workers:
        w.wait_healthy()
    await publish_accesses(s, bank.accesses)
    await wait_until(
        lambda: sum(w.metric("pipeline_events_in_total") for w in workers) >= len(bank.accesses),
        180,
    )
    assert all(w.metric("pipeline_events_in_total") > 0 for w in workers), "both shared the work"

    async def complete() -> bool:
        return identity(await read_alerts(s)) >= identity(want)

    await wait_until(complete, 60, 1.0)
    assert identity(await read_alerts(s)) == identity(want)
