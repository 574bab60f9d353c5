"""Chaos fixtures: the real broker and database (started by the test command), workers as
subprocesses that the tests kill, restart and outnumber."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.broker.topics import ensure_topics
from pipeline.settings import Settings
from simbank.workers import WorkerProcess
from tests.integration.kit import BOOTSTRAP, DATABASE_URL, PARTITIONS, ROOT, free_port, reachable

INFRA = ROOT / "infra"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "chaos" in str(item.fspath):
            item.add_marker(pytest.mark.chaos)


@pytest.fixture(scope="session", autouse=True)
def services_up() -> None:
    host, _, port = BOOTSTRAP.split(",")[0].rpartition(":")
    if not reachable(host or "localhost", int(port)):
        pytest.fail(f"Kafka is not reachable at {BOOTSTRAP}: run the tests with `make test`")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    run = uuid.uuid4().hex[:10]
    return Settings(
        kafka_bootstrap=BOOTSTRAP,
        database_url=DATABASE_URL,
        topic_prefix=f"c{run}.",
        app_id=f"chaos-{run}",
        web_port=free_port(),
        data_dir=tmp_path / "data",
        partitions=PARTITIONS,
        pseudonym_key="chaos-key",
        session_timeout_s=10.0,
    )


@pytest.fixture
async def topics(settings: Settings) -> Settings:
    await ensure_topics(settings, PARTITIONS, replay=True)
    return settings


class Workers:
    """Starts named workers (static membership: a restart keeps the name)."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.settings = settings
        self.logs = logs
        self.live: dict[str, WorkerProcess] = {}
        self.all: list[WorkerProcess] = []
        self.ports: dict[str, int] = {}

    def start(self, name: str, **changes: Any) -> WorkerProcess:
        port = self.ports.setdefault(name, free_port())
        s = self.settings.replace(instance_id=f"{self.settings.app_id}-{name}", **changes)
        w = WorkerProcess(s, self.logs / f"{name}-{len(self.all)}.log", port)
        self.live[name] = w
        self.all.append(w)
        return w

    def kill(self, name: str, sig: int) -> int:
        return self.live.pop(name).stop(sig)

    def consumed(self) -> float:
        return sum(w.metric("pipeline_events_in_total") for w in self.live.values())

    def stop_all(self) -> None:
        for w in self.all:
            w.stop()

    def report(self) -> str:
        """Each worker's exit code and log tail (printed at teardown: pytest shows it
        when the test failed, so a CI failure says what the workers did)."""
        parts = []
        for w in self.all:
            code = w.proc.poll()
            state = "running" if code is None else f"exited {code}"
            parts.append(f"--- {w.log_path.name} ({state}) ---\n{w.tail(80)}")
            if code is None:
                parts.append(live_view(w))
        return "\n".join(parts)


WATCHED = (
    "pipeline_events_in_total",
    "pipeline_events_duplicate_total",
    "pipeline_alerts_out_total",
    "pipeline_partitions_waiting",
    "pipeline_consumer_lag_messages",
    "pipeline_agent_up",
)


def live_view(w: WorkerProcess) -> str:
    """A running worker's /health and the metrics that say whether it moves."""
    try:
        status, body = w.health()
        lines = [f"/health {status}: {body.decode(errors='replace')[:2000]}"]
        lines += [m for m in w.metrics().splitlines() if m.startswith(WATCHED)]
    except OSError as exc:
        return f"(no answer from the worker: {exc})"
    return "\n".join(lines)


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    ws = Workers(settings, tmp_path)
    yield ws
    try:
        print(ws.report())
    finally:
        ws.stop_all()


def infra(service: str, action: str) -> None:
    """Stop or start the shared broker or database (same ports and state as the test run)."""
    subprocess.run(
        ["bash", str(INFRA / f"{service}.sh"), action],
        check=True,
        env=dict(os.environ),
        capture_output=True,
        timeout=180,
    )


@pytest.fixture
def infra_control() -> Any:
    return infra
