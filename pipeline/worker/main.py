"""``pipeline worker``: one Faust worker process."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from pipeline.broker.topics import ensure_topics
from pipeline.db.migrate import migrate_url
from pipeline.errors import RetriableError
from pipeline.observability.metrics import install_faust_sensor
from pipeline.settings import Settings
from pipeline.worker.agents import register
from pipeline.worker.app import create_app
from pipeline.worker.runtime import Runtime

log = logging.getLogger(__name__)


async def prepare(settings: Settings, wait_s: float = 60.0) -> None:
    """Create missing topics and tables; wait for Kafka up to ``wait_s``."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        try:
            await ensure_topics(settings)
            break
        except RetriableError as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("%s; retrying", exc)
            await asyncio.sleep(2.0)
    try:
        applied = await migrate_url(settings.database_url)
        if applied:
            log.info("database migrated: %s", ", ".join(applied))
    except OSError as exc:
        # The alert sink retries (and migrates) once Postgres is reachable.
        log.warning("Postgres not reachable at start (%s); alerts will queue on the topic", exc)


def worker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``faust.Worker``.

    The CLI has configured logging already (text or JSON lines,
    :mod:`pipeline.observability.logging`); by default mode's worker would
    replace the root handlers with its own coloured ones. In JSON mode the
    start-up banner, which Faust prints to stdout, is left out too.
    """
    return {
        "loglevel": settings.log_level,
        "override_logging": False,
        "quiet": settings.log_format == "json",
    }


def run_worker(settings: Settings) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(prepare(settings))
    app = create_app(settings)
    runtime = Runtime(settings)
    register(app, runtime)
    if settings.faust_metrics:
        # Faust's sensor writes into the worker's registry: one /metrics page.
        install_faust_sensor(app, runtime.metrics)
    worker = faust.Worker(app, loop=loop, **worker_options(settings))
    worker.execute_from_commandline()
