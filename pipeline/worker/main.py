"""``pipeline worker``: one Faust worker process.

Before Faust starts, the worker checks what it can check cheaply and refuses to
start, with one line on stderr and no traceback, when:

* exit 2: a setting is unfit for production (the placeholder or an empty
  pseudonym key without ``PIPELINE_DEV_MODE=true``), the Kafka security
  settings are incomplete or name unusable files, the broker refuses the TLS
  handshake or the SASL credentials, or Postgres refuses the TLS handshake or
  the password;
* exit 3: ``PIPELINE_MIGRATE_ON_START=false`` and the database lacks a
  migration of this code (run ``pipeline migrate`` with the owner role first;
  an orchestrator restarting the worker retries it);
* exit 1: Kafka stayed unreachable for a minute.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from typing import Any

import asyncpg
import faust

from pipeline.broker.clients import KafkaAuthError
from pipeline.broker.topics import ensure_topics
from pipeline.db.migrate import SchemaBehindError, prepare_schema
from pipeline.errors import RetriableError
from pipeline.observability.logs import quiet_payload_loggers
from pipeline.observability.metrics import install_faust_sensor
from pipeline.settings import Settings, SettingsError
from pipeline.worker.agents import register
from pipeline.worker.app import create_app

log = logging.getLogger(__name__)

EXIT_REFUSED = 2
EXIT_SCHEMA_BEHIND = 3
EXIT_UNREACHABLE = 1


class PostgresRefusedError(SettingsError):
    """Postgres answered but refused this worker (TLS verification, password)."""


async def prepare(settings: Settings, wait_s: float = 60.0) -> None:
    """Create missing topics, then migrate or check the schema; wait for Kafka up to
    ``wait_s``. Postgres being down is not fatal: alerts queue on their topic."""
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
        applied = await prepare_schema(settings)
        if applied:
            log.info("database migrated: %s", ", ".join(applied))
    except ssl.SSLError as exc:  # before OSError: an SSLError is an OSError
        raise PostgresRefusedError(f"Postgres TLS: {exc}") from None
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        raise PostgresRefusedError(f"Postgres refused the login: {exc}") from None
    except OSError as exc:
        # The alert sink retries once Postgres is reachable.
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


def run_worker(settings: Settings) -> int:
    """Run a worker until it is stopped; returns the exit status when it refuses to start."""
    try:
        settings.check_production()
    except SettingsError as exc:
        print(f"pipeline worker: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # with its parents
    except OSError as exc:
        print(
            f"pipeline worker: cannot create PIPELINE_DATA_DIR {settings.data_dir}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(prepare(settings))
    except (SettingsError, KafkaAuthError) as exc:
        print(f"pipeline worker: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except SchemaBehindError as exc:
        print(f"pipeline worker: {exc}", file=sys.stderr)
        return EXIT_SCHEMA_BEHIND
    except RetriableError as exc:
        print(f"pipeline worker: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    app = create_app(settings)
    rt = register(app, settings)
    if settings.faust_metrics:
        # Faust's sensor writes into the worker's registry: one /metrics page.
        install_faust_sensor(app, rt.metrics)
    quiet_payload_loggers()  # before Faust sets the root level: records never reach the log
    worker = faust.Worker(app, loop=loop, **worker_options(settings))
    worker.execute_from_commandline()
    return 0
