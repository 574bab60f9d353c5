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

from pipeline.observability.logging import configure_logging
from pipeline.settings import Settings, SettingsError

SUBCOMMANDS = {
    "worker": ("pipeline.cli", "start a worker (settings from PIPELINE_* variables)"),
    "migrate": ("pipeline.cli", "create or migrate the Postgres schema"),
    "create-topics": ("pipeline.cli", "create the contract's topics if missing"),
    "publish-reference": ("pipeline.reference.publish", "load HR/CRM exports onto the topics"),
}


def _configure_builtin(name: str, parser: argparse.ArgumentParser) -> None:
    if name == "create-topics":
        parser.add_argument("--partitions", type=int, default=None)


def _run_builtin(name: str, args: argparse.Namespace, settings: Settings) -> int:
    if name == "worker":
        from pipeline.worker.main import run_worker

        run_worker(settings)
        return 0
    if name == "migrate":
        from pipeline.db.migrate import migrate_url

        applied = asyncio.run(migrate_url(settings.database_url))
        print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
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
    if args.command != "worker":
        logging.getLogger("aiokafka").setLevel(logging.WARNING)
    module, _ = SUBCOMMANDS[args.command]
    if module == "pipeline.cli":
        return _run_builtin(args.command, args, settings)
    rc: int = importlib.import_module(module).run(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
