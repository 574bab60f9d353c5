"""HR and CRM exports (CSV or JSONL) -> contract records, checked by the pipeline's own decoder.

Pure: the functions take lines that the caller has read (a file object will do)
and return results; nothing here opens files or talks to Kafka
(:mod:`pipeline.reference.publish` does).

Every row becomes the contract's JSON object and is then *encoded and decoded*
with :mod:`pipeline.contract.decode`, so an export is accepted by exactly the rules the
worker applies to the topic. A row that the decoder refuses is a
:class:`Rejected` carrying the decoder's error code, the file and the line.

CSV conventions (the header row names the contract's fields):

* surrounding whitespace of every cell is dropped, and an empty cell means the
  field is absent, so the contract's default applies (``op`` -> ``assign``,
  ``timezone`` -> ``Asia/Shanghai``) and a required field reads as missing;
* ``valid_to`` empty means open-ended (JSON ``null``);
* ``related_staff_ids`` is a ``;``-separated list; empty items are dropped, an
  empty cell is the empty list;
* the header must hold every required field of the record; unknown columns are
  ignored (and reported); a UTF-8 byte-order mark is ignored;
* a row with more or fewer cells than the header is rejected as
  ``malformed_row``, a row with bytes that are not UTF-8 as ``not_utf8`` (the
  caller opens the file with ``errors="surrogateescape"``).

JSONL: one JSON object per line, taken byte for byte (blank lines skipped); the
decoder's rules apply unchanged, so e.g. ``"related_staff_ids": null`` or
``"timezone": null`` is refused just as the worker would refuse it (while
``"shift_start": null``, an unknown shift, is accepted).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from pipeline.contract.decode import (
    DecodeError,
    decode_assignment,
    decode_customer_profile,
    decode_staff_record,
)
from pipeline.contract.records import Assignment, CustomerProfile, StaffRecord

KINDS: Final = ("staff", "assignments", "profiles")
FORMATS: Final = ("csv", "jsonl")
# Extra error codes for problems of the CSV layer (the rest are decode.ERROR_CODES).
MALFORMED_ROW: Final = "malformed_row"

_EXTENSIONS: Final = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_BOM: Final = b"\xef\xbb\xbf"

Record = StaffRecord | Assignment | CustomerProfile


class ExportError(Exception):
    """A file that cannot be read as an export of its kind at all (e.g. a wrong header)."""


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What an export of one kind looks like."""

    name: str
    columns: tuple[str, ...]  # every field of the record, in contract order
    required: tuple[str, ...]  # fields the contract requires (CSV header must name them)
    decode: Callable[[bytes], Record]
    key: Callable[[Any], str]


SPECS: Final[dict[str, KindSpec]] = {
    "staff": KindSpec(
        "staff",
        (
            "staff_id",
            "branch_id",
            "role",
            "status",
            "effective_at",
            "shift_start",
            "shift_end",
            "timezone",
        ),
        ("staff_id", "branch_id", "role", "status", "effective_at"),
        decode_staff_record,
        lambda r: r.staff_id,
    ),
    "assignments": KindSpec(
        "assignments",
        ("staff_id", "customer_id", "relation", "valid_from", "valid_to", "op"),
        ("staff_id", "customer_id", "relation", "valid_from", "valid_to"),
        decode_assignment,
        lambda r: f"{r.staff_id}:{r.customer_id}",
    ),
    "profiles": KindSpec(
        "profiles",
        (
            "customer_id",
            "home_branch_id",
            "segment",
            "sensitivity",
            "related_staff_ids",
            "updated_at",
        ),
        (
            "customer_id",
            "home_branch_id",
            "segment",
            "sensitivity",
            "related_staff_ids",
            "updated_at",
        ),
        decode_customer_profile,
        lambda r: r.customer_id,
    ),
}


@dataclass(frozen=True, slots=True)
class Accepted:
    """A row that the decoder accepts: publish ``value`` under ``key``."""

    source: str
    line: int
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row the pipeline would refuse; never published."""

    source: str
    line: int
    code: str
    message: str
    field: str | None
    original: str

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "line": self.line,
            "code": self.code,
            "field": self.field,
            "message": self.message,
            "original": self.original,
        }


Result = Accepted | Rejected


@dataclass(slots=True)
class Parsed:
    """One export file: header findings (read eagerly) and the rows (lazily)."""

    results: Iterator[Result]
    unknown_columns: tuple[str, ...] = ()


def format_of(path: str) -> str | None:
    """The format implied by a file name's extension, or None when it says nothing."""
    dot = path.rfind(".")
    return _EXTENSIONS.get(path[dot:].lower()) if dot >= 0 else None


def spec(kind: str) -> KindSpec:
    try:
        return SPECS[kind]
    except KeyError:
        raise ExportError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}") from None


def check(
    kind: KindSpec, value: bytes, source: str, line: int, original: str | None = None
) -> Result:
    """Run the pipeline's decoder over one encoded value.

    ``original`` is the row as it stood in the file, for the reject (default: ``value``).
    """
    try:
        record = kind.decode(value)
    except DecodeError as err:
        if original is None:
            original = value.decode("utf-8", "replace")
        return Rejected(source, line, err.code, err.message, err.field, original)
    return Accepted(source, line, kind.key(record).encode("utf-8"), value)


# --- JSONL -----------------------------------------------------------------------


def parse_jsonl(lines: Iterable[bytes], kind: str, source: str) -> Parsed:
    """One JSON object per line (bytes, as read from a file opened in binary mode)."""
    return Parsed(_jsonl_results(lines, spec(kind), source))


def _jsonl_results(lines: Iterable[bytes], kind: KindSpec, source: str) -> Iterator[Result]:
    for number, raw in enumerate(lines, 1):
        value = raw.removeprefix(_BOM) if number == 1 else raw
        value = value.strip()
        if value:
            yield check(kind, value, source, number)


# --- CSV -------------------------------------------------------------------------


def parse_csv(lines: Iterable[str], kind: str, source: str) -> Parsed:
    """A CSV export with a header row. Reads the header now; raises :class:`ExportError`.

    ``lines`` is text; open files with ``newline=""`` (so quoted cells may hold line
    breaks) and ``errors="surrogateescape"`` (so non-UTF-8 rows are rejected one by
    one instead of failing the file).
    """
    k = spec(kind)
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                header = row
                break
    except csv.Error as exc:
        raise ExportError(
            f"{source}: line {reader.line_num}: unreadable CSV header: {exc}"
        ) from None
    if header is None:
        raise ExportError(f"{source}: no header row (the file is empty)")
    names = [h.strip() for h in header]
    if names:
        names[0] = names[0].removeprefix("\ufeff").strip()
    dupes = sorted(n for n, c in Counter(names).items() if c > 1 and n)
    if dupes:
        raise ExportError(f"{source}: header names a column twice: {', '.join(dupes)}")
    missing = [c for c in k.required if c not in names]
    if missing:
        raise ExportError(
            f"{source}: header lacks required {k.name} column(s) {', '.join(missing)}; "
            f"the columns of a {k.name} export are: {', '.join(k.columns)}"
        )
    known = set(k.columns)
    unknown = tuple(n or "(unnamed)" for n in names if n not in known)
    return Parsed(_csv_results(reader, names, k, source), unknown)


def _csv_results(reader: Any, names: list[str], kind: KindSpec, source: str) -> Iterator[Result]:
    # ``reader`` is a csv reader (typed Any: typeshed's _reader is private).
    wanted = [(i, n) for i, n in enumerate(names) if n in kind.columns]
    while True:
        start = reader.line_num + 1
        try:
            row: list[str] = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Rejected(source, start, MALFORMED_ROW, f"unreadable CSV: {exc}", None, "")
            continue
        if not any(cell.strip() for cell in row):
            continue
        original = _csv_line(row)
        if len(row) != len(names):
            yield Rejected(
                source,
                start,
                MALFORMED_ROW,
                f"row has {len(row)} cells but the header has {len(names)}",
                None,
                original,
            )
            continue
        bad = next((n for i, n in wanted if not _is_utf8(row[i])), None)
        if bad is not None:
            yield Rejected(
                source, start, "not_utf8", f"cell {bad!r} is not valid UTF-8", bad, original
            )
            continue
        obj = row_to_json({n: row[i] for i, n in wanted}, kind.name)
        yield check(kind, orjson.dumps(obj), source, start, original)


def row_to_json(cells: dict[str, str], kind: str) -> dict[str, object]:
    """The contract object of one CSV row of ``kind`` (cells by column name)."""
    obj: dict[str, object] = {}
    for name, raw in cells.items():
        cell = raw.strip()
        if name == "related_staff_ids":
            obj[name] = [s for s in (p.strip() for p in cell.split(";")) if s]
        elif name == "valid_to" and kind == "assignments":
            obj[name] = cell or None
        elif cell:
            obj[name] = cell
    return obj


def _is_utf8(cell: str) -> bool:
    try:
        cell.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _csv_line(row: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue().encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# --- tally -----------------------------------------------------------------------


@dataclass(slots=True)
class Tally:
    """Counts of one run, and the first few rejects to show."""

    keep: int = 10
    read: int = 0
    valid: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    first_rejects: list[Rejected] = field(default_factory=list)

    def add(self, result: Result) -> None:
        self.read += 1
        if isinstance(result, Accepted):
            self.valid += 1
            return
        self.rejected[result.code] += 1
        if len(self.first_rejects) < self.keep:
            self.first_rejects.append(result)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())
