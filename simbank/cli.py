"""The ``simbank`` command: simulate a labelled bank, evaluate the pipeline on it, run the demo.

Each subcommand module exposes ``configure(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from simbank.simulate.config import ConfigError

SUBCOMMANDS = {
    "simulate": ("simbank.simulate.cli", "generate a labelled simulated bank"),
    "evaluate": ("simbank.evaluate.run", "run a labelled simulation through the real pipeline"),
    "demo": ("simbank.demo", "the demo: a small bank through the real pipeline"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(prog="simbank", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name == chosen:  # only the chosen subcommand's module is imported
            importlib.import_module(module).configure(p)
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        rc: int = importlib.import_module(SUBCOMMANDS[args.command][0]).run(args)
    except ConfigError as exc:  # a simulated bank that cannot be: say so in one line
        print(f"simbank {args.command}: {exc}", file=sys.stderr)
        return 2
    return rc


if __name__ == "__main__":
    sys.exit(main())
