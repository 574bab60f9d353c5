"""The ``pipeline`` command: worker, migrate, create-topics, publish-reference, ...

Each subcommand module exposes ``configure(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Sequence

from pipeline.errors import PipelineError
from pipeline.observability.logging import configure_logging
from pipeline.observability.logs import quiet_payload_loggers
from pipeline.settings import Settings, SettingsError

SUBCOMMANDS = {
    "worker": ("pipeline.cli", "start a worker (settings from PIPELINE_* variables)"),
    "migrate": ("pipeline.cli", "create or migrate the Postgres schema"),
    "create-topics": ("pipeline.cli", "create the contract's topics if missing"),
    "schemas": ("pipeline.contract.schemas", "generate or check schemas/*.schema.json"),
    "publish-reference": ("pipeline.reference.publish", "load HR/CRM exports onto the topics"),
    "normalize": (
        "pipeline.normalize.agent",
        "map a core-banking CDC topic onto access-events (mapping file)",
    ),
    "console": ("pipeline.console.cli", "serve the analysts' triage console (web)"),
}


def _configure_builtin(name: str, parser: argparse.ArgumentParser) -> None:
    if name == "create-topics":
        parser.add_argument("--partitions", type=int, default=None)
    if name == "migrate":
        parser.add_argument(
            "--grant-worker",
            metavar="ROLE",
            default=None,
            help="then grant ROLE exactly the worker's privileges (docs/security.md)",
        )


def _run_builtin(name: str, args: argparse.Namespace, settings: Settings) -> int:
    if name == "worker":
        from pipeline.worker.main import run_worker

        return run_worker(settings)
    if name == "migrate":
        import asyncpg

        from pipeline.db.migrate import migrate_url
        from pipeline.db.roles import RoleError, grant_worker_url

        # The owner role (PIPELINE_MIGRATE_DATABASE_URL), else PIPELINE_DATABASE_URL.
        try:
            applied = asyncio.run(migrate_url(settings.migration_url))
        except (OSError, asyncpg.PostgresError) as exc:
            print(f"pipeline migrate: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
        print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
        if args.grant_worker:
            try:
                asyncio.run(grant_worker_url(settings.migration_url, args.grant_worker))
            except (RoleError, OSError, asyncpg.PostgresError) as exc:
                print(f"pipeline migrate: {exc}", file=sys.stderr)
                return 2
            print(f"granted the worker's privileges to {args.grant_worker}")
        return 0
    if name == "create-topics":
        from pipeline.broker.topics import ensure_topics

        created = asyncio.run(ensure_topics(settings, args.partitions))
        print("created: " + (", ".join(created) if created else "nothing (all exist)"))
        return 0
    raise AssertionError(name)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(prog="pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name != chosen:
            continue  # only the chosen subcommand's module is imported
        if module == "pipeline.cli":
            _configure_builtin(name, p)
        else:
            importlib.import_module(module).configure(p)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    quiet_payload_loggers()  # docs/security.md, "What is logged"
    if args.command != "worker":
        logging.getLogger("aiokafka").setLevel(logging.WARNING)
    module, _ = SUBCOMMANDS[args.command]
    if module == "pipeline.cli":
        try:
            return _run_builtin(args.command, args, settings)
        except (PipelineError, SettingsError) as exc:
            # Bad settings, a broker refusing our credentials, an unreachable service:
            # one line saying which, no traceback.
            print(f"pipeline {args.command}: {exc}", file=sys.stderr)
            return 2
    rc: int = importlib.import_module(module).run(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
