"""``pipeline console``: serve the analysts' console (settings from PIPELINE_* variables)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pipeline.settings import Settings, SettingsError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bind", default=None, help="address (default PIPELINE_CONSOLE_BIND)")
    parser.add_argument(
        "--port", type=int, default=None, help="port (default PIPELINE_CONSOLE_PORT)"
    )
    parser.add_argument(
        "--stop-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop by itself after this many seconds (demos, smoke tests)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        s = Settings.from_env()
        changes: dict[str, object] = {}
        if args.bind is not None:
            changes["console_bind"] = args.bind
        if args.port is not None:
            changes["console_port"] = args.port
        if changes:
            s = s.replace(**changes)
        from pipeline.console.app import serve

        asyncio.run(serve(s, args.stop_after))
    except SettingsError as exc:
        print(f"pipeline console: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"pipeline console: {exc}", file=sys.stderr)
        return 1
    return 0
