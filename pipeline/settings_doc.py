"""The settings table of the docs, generated from :class:`pipeline.settings.Settings`.

Every field becomes one row ``| PIPELINE_X | default | meaning |``; the meaning
is the field's docstring. ``docs/operations.md`` and ``README.md`` hold the
table between two markers (``make docs`` rewrites both), and
``tests/unit/test_settings_doc.py`` keeps them equal to this output.

    python -m pipeline.settings_doc                      # print the table
    python -m pipeline.settings_doc --write docs/operations.md --write README.md
    python -m pipeline.settings_doc --check docs/operations.md
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any

from pipeline.settings import ENV_PREFIX, SECRET_FIELDS, Settings

REGENERATE = "make docs"
BEGIN = f"<!-- settings-table: begin (generated: {REGENERATE}) -->"
END = "<!-- settings-table: end -->"
HEADER = "| variable | default | meaning |\n|---|---|---|"


class SettingsDocError(ValueError):
    """A field has no description, or a document lacks the table's markers."""


def _default(value: Any) -> str:
    if value is None:
        return "*(unset)*"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, datetime):
        return f"`{value.isoformat()}`"
    if isinstance(value, PurePath) and not value.is_absolute():
        return f"`./{value}`"
    text = str(value)
    return f"`{text}`" if text else '`""` (empty)'


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def settings_rows() -> list[tuple[str, str, str]]:
    """``(variable, default, meaning)`` for every field, in declaration order."""
    rows = []
    for name, field in Settings.model_fields.items():
        if not field.description:
            raise SettingsDocError(
                f"Settings.{name} has no description: add a docstring below the field"
            )
        var = f"{ENV_PREFIX}{name.upper()}"
        meaning = _cell(field.description)
        if name in SECRET_FIELDS:
            meaning += f" Or a file holding it: `{var}_FILE`."
        rows.append((f"`{var}`", _default(field.default), meaning))
    return rows


def settings_table() -> str:
    """The Markdown table, ending with a newline."""
    lines = [HEADER] + [f"| {v} | {d} | {m} |" for v, d, m in settings_rows()]
    return "\n".join(lines) + "\n"


def with_table(document: str) -> str:
    """``document`` with the text between the markers replaced by the current table."""
    start = document.find(BEGIN)
    stop = document.find(END)
    if start < 0 or stop < start:
        raise SettingsDocError(f"the document has no {BEGIN!r} ... {END!r} markers")
    head = document[: start + len(BEGIN)]
    return f"{head}\n{settings_table()}{document[stop:]}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.settings_doc", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--write", type=Path, metavar="DOC", action="append", help="rewrite the table in DOC"
    )
    group.add_argument(
        "--check", type=Path, metavar="DOC", action="append", help="exit 1 if DOC is stale"
    )
    args = parser.parse_args(argv)
    if args.write is None and args.check is None:
        sys.stdout.write(settings_table())
        return 0
    status = 0
    for path in args.write or args.check:
        current = path.read_text(encoding="utf-8")
        updated = with_table(current)
        if args.check is not None:
            if updated != current:
                print(f"{path}: the settings table is stale; run {REGENERATE}", file=sys.stderr)
                status = 1
        elif updated != current:
            path.write_text(updated, encoding="utf-8")
            print(f"{path}: settings table rewritten")
    return status


if __name__ == "__main__":
    sys.exit(main())
