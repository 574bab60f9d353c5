"""``pipeline worker``: one Faust worker process."""

from __future__ import annotations

import asyncio
import logging

import faust

from pipeline.broker.topics import ensure_topics
from pipeline.db.migrate import migrate_url
from pipeline.errors import RetriableError
from pipeline.settings import Settings
from pipeline.worker.agents import register
from pipeline.worker.app import create_app

log = logging.getLogger(__name__)


async def prepare(settings: Settings, wait_s: float = 60.0) -> None:
    """Create missing topics (and tables, where the worker may); wait for Kafka up to
    ``wait_s``."""
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
    if not settings.migrate_on_start:
        return
    try:
        applied = await migrate_url(settings.migration_url)
        if applied:
            log.info("database migrated: %s", ", ".join(applied))
    except OSError as exc:
        # The alert store retries (and migrates) once Postgres is reachable.
        log.warning("Postgres not reachable at start (%s); alerts will queue on the topic", exc)


def run_worker(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(prepare(settings))
    app = create_app(settings)
    register(app, settings)
    worker = faust.Worker(app, loop=loop, loglevel=settings.log_level)
    worker.execute_from_commandline()
