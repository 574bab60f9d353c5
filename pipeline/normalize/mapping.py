"""Core-banking CDC records -> contract AccessEvents, by a mapping file. Pure, no I/O.

A core-banking audit table arrives on Kafka as Debezium change events
(``{before, after, source, op, ts_ms}``, often wrapped by Kafka Connect's
JsonConverter as ``{schema, payload}``), as plain Kafka Connect records, or as
flat rows (Debezium's ``ExtractNewRecordState`` output). A :class:`Mapping`
says where the row is, which column gives each AccessEvent field and how to
convert it; :func:`normalize` turns one Kafka record into an :class:`Emit`
(key ``staff_id``, a value the pipeline's own decoder accepts), a
:class:`Skip`, or a :class:`Reject` carrying a snake_case error code for the
dead-letter topic. The mapping file format is documented in
``docs/ingestion.md``; :func:`parse_mapping` checks a file completely before
the agent reads a single record.

Error codes of a :class:`Reject` (the decoder's codes, plus those of CDC):

- ``value_too_large``, ``not_utf8``, ``malformed_json``, ``not_an_object``:
  the Kafka value itself;
- ``not_an_envelope``: the value is not of the configured envelope (no
  ``op``/``after`` for Debezium, no ``{schema, payload}`` for Connect, an
  unknown ``op``, a create without ``after``);
- ``cdc_delete`` / ``cdc_truncate``: a delete (``op: d``, or a flat row with
  ``__deleted: true``) or a truncate, when ``on_delete: dead_letter``;
  ``tombstone``: a null value, when ``on_tombstone: dead_letter``;
- ``missing_field``: a source column a required field needs is absent or
  null, and the mapping has no default;
- ``wrong_type``: a column holds a JSON type that cannot become the field;
- ``unmapped_<field>`` (``unmapped_action``, ``unmapped_channel``, ...): a
  code that the field's code map does not list (and the map has no ``"*"``);
- ``bad_timestamp``: a time that its format cannot read, or a naive time
  without ``naive_timezone``;
- any code of :func:`pipeline.contract.decode.decode_access_event`: the
  normalized record is not a valid AccessEvent (an unknown action with no
  map, an empty id, a null customer for a view, ...).
"""

from __future__ import annotations

import math
import re
import zoneinfo
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

from pipeline.contract.decode import DecodeError, decode_access_event
from pipeline.contract.records import ACTIONS, CHANNELS, OUTCOMES
from pipeline.errors import PoisonError

ENVELOPES: Final = ("debezium", "connect", "flat", "auto")
TIME_FORMATS: Final = ("epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "iso")
POLICIES: Final = ("dead_letter", "skip")
UPDATE_POLICIES: Final = ("emit", "skip")
# AccessEvent fields, in the contract's order.
REQUIRED_FIELDS: Final = (
    "event_id",
    "occurred_at",
    "staff_id",
    "customer_id",
    "action",
    "channel",
    "branch_id",
)
OPTIONAL_FIELDS: Final = (
    "terminal_id",
    "source_ip",
    "session_id",
    "authorization_ref",
    "record_count",
    "outcome",
)
FIELDS: Final = REQUIRED_FIELDS + OPTIONAL_FIELDS
ENUMS: Final = {"action": ACTIONS, "channel": CHANNELS, "outcome": OUTCOMES}
# A source value becomes this field as a string (numbers are written out).
_TEXT_FIELDS: Final = frozenset(FIELDS) - {"occurred_at", "record_count"}
_SPEC_KEYS: Final = frozenset(
    {"from", "template", "const", "default", "time", "naive_timezone", "map"}
)
_TOP_KEYS: Final = frozenset(
    {
        "version",
        "source",
        "envelope",
        "on_delete",
        "on_tombstone",
        "on_update",
        "strip_strings",
        "max_value_bytes",
        "fields",
        "maps",
    }
)
_PLACEHOLDER: Final = re.compile(r"\{([^{}]+)\}")
_UNIX_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROS_PER: Final = {"epoch_s": 1_000_000, "epoch_ms": 1_000, "epoch_us": 1}
_OPS: Final = {"c": "create", "r": "snapshot read", "u": "update", "d": "delete", "t": "truncate"}
DEFAULT_MAX_VALUE_BYTES: Final = 1024 * 1024
_MISSING: Final = object()


class MappingError(ValueError):
    """The mapping file is not a usable mapping; the message names the place."""


class NormalizeError(PoisonError):
    """One record that cannot become an AccessEvent (never worth retrying)."""


# --- the mapping ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourcePath:
    """Where a value is: ``scope`` row (a column), envelope (``@``) or key (``#``)."""

    scope: str
    parts: tuple[str, ...]
    text: str

    @classmethod
    def parse(cls, text: str, where: str) -> SourcePath:
        if not isinstance(text, str) or not text.strip():
            raise MappingError(f"{where}: a source path must be a non-empty string")
        scope = {"@": "envelope", "#": "key"}.get(text[0], "row")
        body = text[1:] if scope != "row" else text
        parts = tuple(body.split(".")) if body else ()
        if any(not p for p in parts) or (scope == "row" and not parts):
            raise MappingError(f"{where}: malformed source path {text!r}")
        return cls(scope, parts, text)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How one AccessEvent field is made (see docs/ingestion.md)."""

    target: str
    source: SourcePath | None = None
    template: tuple[str | SourcePath, ...] | None = None
    const: Any = _MISSING
    default: Any = _MISSING
    time: str | None = None
    naive_timezone: zoneinfo.ZoneInfo | None = None
    code_map: MappingABC[str, Any] | None = None
    map_name: str | None = None
    origin: str = ""  # " (from 'column')", for messages


@dataclass(frozen=True, slots=True)
class Mapping:
    """A parsed mapping file."""

    fields: tuple[FieldSpec, ...]
    envelope: str = "auto"
    on_delete: str = "dead_letter"
    on_tombstone: str = "skip"
    on_update: str = "emit"
    strip_strings: bool = True
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    source: str = ""
    uses_key: bool = field(default=False)


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file (``.yaml``/``.yml`` or ``.json``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"{p}: cannot read the mapping file: {exc.strerror}") from None
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise MappingError(f"{p}: not valid YAML: {exc}") from None
    elif p.suffix.lower() == ".json":
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise MappingError(f"{p}: not valid JSON: {exc}") from None
    else:
        raise MappingError(f"{p}: a mapping file ends in .yaml, .yml or .json")
    try:
        return parse_mapping(doc)
    except MappingError as exc:
        raise MappingError(f"{p}: {exc}") from None


def parse_mapping(doc: Any) -> Mapping:
    """Check a mapping document (the parsed YAML/JSON) and build a :class:`Mapping`."""
    if not isinstance(doc, dict):
        raise MappingError("the mapping must be an object (a YAML mapping)")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise MappingError(f"unknown key(s) {unknown}; allowed: {sorted(_TOP_KEYS)}")
    if doc.get("version", 1) != 1:
        raise MappingError(f"version must be 1, got {doc.get('version')!r}")
    envelope = _choice(doc, "envelope", ENVELOPES, "auto")
    on_delete = _choice(doc, "on_delete", POLICIES, "dead_letter")
    on_tombstone = _choice(doc, "on_tombstone", POLICIES, "skip")
    on_update = _choice(doc, "on_update", UPDATE_POLICIES, "emit")
    strip = doc.get("strip_strings", True)
    if not isinstance(strip, bool):
        raise MappingError("strip_strings must be true or false")
    max_bytes = doc.get("max_value_bytes", DEFAULT_MAX_VALUE_BYTES)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise MappingError("max_value_bytes must be a positive integer")
    source = doc.get("source", "")
    if not isinstance(source, str):
        raise MappingError("source must be a string (a description of the source)")
    maps = _maps(doc.get("maps", {}))
    raw_fields = doc.get("fields")
    if not isinstance(raw_fields, dict) or not raw_fields:
        raise MappingError("fields must map AccessEvent fields to their sources")
    unknown = sorted(set(raw_fields) - set(FIELDS))
    if unknown:
        raise MappingError(f"fields: {unknown} are not AccessEvent fields; known: {list(FIELDS)}")
    missing = [f for f in REQUIRED_FIELDS if f not in raw_fields]
    if missing:
        raise MappingError(f"fields: required AccessEvent field(s) {missing} are not mapped")
    specs = tuple(_spec(name, raw_fields[name], maps) for name in FIELDS if name in raw_fields)
    uses_key = any(
        (s.source is not None and s.source.scope == "key")
        or any(isinstance(p, SourcePath) and p.scope == "key" for p in s.template or ())
        for s in specs
    )
    return Mapping(
        fields=specs,
        envelope=envelope,
        on_delete=on_delete,
        on_tombstone=on_tombstone,
        on_update=on_update,
        strip_strings=strip,
        max_value_bytes=max_bytes,
        source=source,
        uses_key=uses_key,
    )


def _choice(doc: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = doc.get(name, default)
    if value not in allowed:
        raise MappingError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return str(value)


def _maps(raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise MappingError("maps must be an object of named code maps")
    out: dict[str, dict[str, Any]] = {}
    for name, table in raw.items():
        if not isinstance(table, dict) or not table:
            raise MappingError(f"maps.{name} must be a non-empty object of code: value")
        for code in table:
            if not isinstance(code, str):
                raise MappingError(
                    f"maps.{name}: code {code!r} is a {type(code).__name__}; quote codes "
                    "(YAML reads 0012 or 1001 as numbers)"
                )
        out[str(name)] = dict(table)
    return out


def _spec(target: str, raw: Any, maps: dict[str, dict[str, Any]]) -> FieldSpec:
    where = f"fields.{target}"
    if isinstance(raw, str):
        raw = {"from": raw}
    if not isinstance(raw, dict):
        raise MappingError(f"{where}: must be a column name or an object")
    unknown = sorted(set(raw) - _SPEC_KEYS)
    if unknown:
        raise MappingError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_SPEC_KEYS)}")
    given = [k for k in ("from", "template", "const") if k in raw]
    if len(given) != 1:
        raise MappingError(f"{where}: give exactly one of from, template, const (got {given})")
    source = SourcePath.parse(raw["from"], where) if "from" in raw else None
    template = _template(raw["template"], where) if "template" in raw else None
    time = raw.get("time")
    if target == "occurred_at" and "const" not in raw and time is None:
        raise MappingError(f"{where}: say how to read the time: time: one of {list(TIME_FORMATS)}")
    if time is not None and (target != "occurred_at" or time not in TIME_FORMATS):
        raise MappingError(f"{where}: time is for occurred_at only, one of {list(TIME_FORMATS)}")
    zone = None
    if "naive_timezone" in raw:
        try:
            zone = zoneinfo.ZoneInfo(str(raw["naive_timezone"]))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise MappingError(
                f"{where}: naive_timezone {raw['naive_timezone']!r} is not an IANA time zone"
            ) from None
    code_map = None
    map_name = raw.get("map")
    if map_name is not None:
        if map_name not in maps:
            raise MappingError(f"{where}: map {map_name!r} is not defined under maps")
        code_map = maps[map_name]
        allowed = ENUMS.get(target)
        if allowed is not None:
            bad = sorted({str(v) for v in code_map.values()} - allowed)
            if bad:
                raise MappingError(
                    f"maps.{map_name} (used by {target}): {bad} are not contract values; "
                    f"allowed: {sorted(allowed)}"
                )
    for key in ("const", "default"):
        if key in raw:
            _check_literal(target, raw[key], f"{where}.{key}")
    return FieldSpec(
        target=target,
        source=source,
        template=template,
        const=raw.get("const", _MISSING),
        default=raw.get("default", _MISSING),
        time=time,
        naive_timezone=zone,
        code_map=code_map,
        map_name=map_name,
        origin=(
            f" (from {source.text!r})"
            if source is not None
            else (" (from its template)" if template is not None else "")
        ),
    )


def _template(raw: Any, where: str) -> tuple[str | SourcePath, ...]:
    if not isinstance(raw, str) or not _PLACEHOLDER.search(raw):
        raise MappingError(f"{where}: a template is a string with {{column}} placeholders")
    parts: list[str | SourcePath] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(raw):
        if m.start() > pos:
            parts.append(raw[pos : m.start()])
        parts.append(SourcePath.parse(m.group(1), where))
        pos = m.end()
    if pos < len(raw):
        parts.append(raw[pos:])
    return tuple(parts)


def _check_literal(target: str, value: Any, where: str) -> None:
    if value is None:
        if target in ("customer_id", *OPTIONAL_FIELDS):
            return
        raise MappingError(f"{where}: {target} cannot be null")
    if target in ENUMS and value not in ENUMS[target]:
        raise MappingError(f"{where}: {value!r} is not one of {sorted(ENUMS[target])}")
    if target == "record_count" and (isinstance(value, bool) or not isinstance(value, int)):
        raise MappingError(f"{where}: record_count must be an integer")
    if target in _TEXT_FIELDS and not isinstance(value, str):
        raise MappingError(f"{where}: {target} must be a string")
    if target == "occurred_at":
        raise MappingError(f"{where}: occurred_at cannot be a constant or default")


# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Emit:
    """A contract AccessEvent, ready for ``{prefix}access-events`` (key ``staff_id``)."""

    key: bytes
    value: bytes
    timestamp_ms: int  # occurred_at, for the Kafka record timestamp


@dataclass(frozen=True, slots=True)
class Skip:
    """Nothing to emit, by the mapping's choice (a tombstone, a delete, an update)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Reject:
    """A record for the dead-letter topic; ``error.code`` says why."""

    error: PoisonError


Result = Emit | Skip | Reject


def _reject(code: str, message: str) -> Reject:
    return Reject(NormalizeError(code, message))


# --- normalizing ----------------------------------------------------------------------------


def normalize(mapping: Mapping, value: bytes | None, key: bytes | None = None) -> Result:
    """One Kafka record of the source topic -> what to do with it."""
    if value is None:
        if mapping.on_tombstone == "skip":
            return Skip("tombstone")
        return _reject("tombstone", "value is null (a tombstone)")
    located = _locate(mapping, value)
    if not isinstance(located, tuple):
        return located
    row, envelope = located
    key_doc: Any = _parse_key(key) if mapping.uses_key else None
    out: dict[str, Any] = {}
    for spec in mapping.fields:
        try:
            produced = _field(mapping, spec, row, envelope, key_doc)
        except NormalizeError as exc:
            return Reject(exc)
        if produced is not _MISSING:
            out[spec.target] = produced
    encoded = orjson.dumps(out)
    try:
        event = decode_access_event(encoded)
    except DecodeError as exc:
        return Reject(DecodeError(exc.code, f"normalized record: {exc.message}", exc.field))
    return Emit(event.staff_id.encode(), encoded, math.floor(event.occurred_at.timestamp() * 1000))


def _locate(mapping: Mapping, value: bytes) -> tuple[dict[str, Any], dict[str, Any]] | Result:
    """The row (and its envelope) inside a value, or what to do instead."""
    if len(value) > mapping.max_value_bytes:
        return _reject(
            "value_too_large", f"value is {len(value)} bytes, more than {mapping.max_value_bytes}"
        )
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        try:
            bytes(value).decode("utf-8")
        except UnicodeDecodeError as uexc:
            return _reject("not_utf8", f"value is not UTF-8 (bad byte at offset {uexc.start})")
        return _reject("malformed_json", f"value is not valid JSON: {exc}")
    if not isinstance(obj, dict):
        return _reject("not_an_object", f"value is a JSON {_json_type(obj)}, not an object")
    wrapped = _unwrap_connect(obj)
    if mapping.envelope == "connect":
        if wrapped is None:
            return _reject("not_an_envelope", "expected a Kafka Connect {schema, payload} value")
        obj = wrapped
    elif wrapped is not None:
        obj = wrapped
    if not isinstance(obj, dict):
        return _reject("not_an_envelope", f"payload is a JSON {_json_type(obj)}, not an object")
    envelope = mapping.envelope
    if envelope == "auto":
        envelope = "debezium" if {"op", "after", "source"} <= set(obj) else "flat"
    if envelope == "debezium":
        return _debezium(mapping, obj)
    deleted = obj.get("__deleted") in (True, "true") or obj.get("__op") == "d"
    if deleted:
        return _deleted(mapping, "d", "flat row marked __deleted")
    return obj, obj


def _unwrap_connect(obj: dict[str, Any]) -> Any:
    """The payload of a JsonConverter ``{schema, payload}`` value, else None."""
    if set(obj) == {"schema", "payload"} and isinstance(obj["schema"], dict):
        return obj["payload"]
    return None


def _debezium(
    mapping: Mapping, env: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]] | Result:
    if "op" not in env or ("after" not in env and "before" not in env):
        return _reject(
            "not_an_envelope",
            f"not a Debezium change event (keys {sorted(env)[:8]}; expected op, before, after)",
        )
    op = env["op"]
    if op not in _OPS:
        return _reject("not_an_envelope", f"op {op!r} is not one of {sorted(_OPS)}")
    if op in ("d", "t"):
        return _deleted(mapping, op, f"Debezium {_OPS[op]} event")
    if op == "u" and mapping.on_update == "skip":
        return Skip("update")
    row = env.get("after")
    if not isinstance(row, dict):
        return _reject("not_an_envelope", f"{_OPS[op]} event without an 'after' row")
    return row, env


def _deleted(mapping: Mapping, op: str, what: str) -> Result:
    if mapping.on_delete == "skip":
        return Skip("truncate" if op == "t" else "delete")
    code = "cdc_truncate" if op == "t" else "cdc_delete"
    return _reject(code, f"{what}: an audit log should not lose rows (on_delete: dead_letter)")


def _parse_key(key: bytes | None) -> Any:
    """A record key as data: JSON (a Connect ``{schema, payload}`` unwrapped) or text."""
    if key is None:
        return None
    try:
        doc = orjson.loads(key)
    except orjson.JSONDecodeError:
        return key.decode("utf-8", errors="replace")
    if isinstance(doc, dict):
        unwrapped = _unwrap_connect(doc)
        return unwrapped if unwrapped is not None else doc
    return doc


def _lookup(path: SourcePath, row: dict[str, Any], envelope: dict[str, Any], key: Any) -> Any:
    node: Any = {"row": row, "envelope": envelope, "key": key}[path.scope]
    for part in path.parts:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _field(
    mapping: Mapping, spec: FieldSpec, row: dict[str, Any], envelope: dict[str, Any], key: Any
) -> Any:
    name = spec.target
    if spec.const is not _MISSING:
        return spec.const
    if spec.template is not None:
        pieces = []
        for part in spec.template:
            if isinstance(part, str):
                pieces.append(part)
                continue
            found = _lookup(part, row, envelope, key)
            if found is _MISSING or found is None:
                raise NormalizeError(
                    "missing_field", f"field {name!r}: template column {part.text!r} is missing"
                )
            pieces.append(_text(name, found, f" (template column {part.text!r})"))
        value: Any = "".join(pieces)
    else:
        assert spec.source is not None
        value = _lookup(spec.source, row, envelope, key)
    if isinstance(value, str) and mapping.strip_strings:
        value = value.strip() or None  # a blank CHAR column is no value
    if value is _MISSING or value is None:
        if spec.default is not _MISSING:
            return spec.default
        if name in REQUIRED_FIELDS and name != "customer_id":
            raise NormalizeError(
                "missing_field", f"field {name!r}{spec.origin} is missing or null in the record"
            )
        return None if name == "customer_id" else _MISSING
    if spec.code_map is not None:
        value = _mapped(spec, value)
    if spec.time is not None:
        return _rfc3339(spec, value)
    if name == "record_count":
        return _count(spec, value)
    if name in _TEXT_FIELDS:
        return value if type(value) is str else _text(name, value, spec.origin)
    return value


def _mapped(spec: FieldSpec, value: Any) -> Any:
    assert spec.code_map is not None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise NormalizeError(
            "wrong_type",
            f"field {spec.target!r}{spec.origin}: a code must be a string or an integer, "
            f"got {_json_type(value)}",
        )
    code = str(value)
    if code in spec.code_map:
        return spec.code_map[code]
    if "*" in spec.code_map:
        return spec.code_map["*"]
    raise NormalizeError(
        f"unmapped_{spec.target}",
        f"field {spec.target!r}{spec.origin}: code {code[:64]!r} is not in maps.{spec.map_name}",
    )


def _text(name: str, value: Any, origin: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise NormalizeError(
        "wrong_type", f"field {name!r}{origin}: must be text or an integer, got {_json_type(value)}"
    )


def _count(spec: FieldSpec, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise NormalizeError(
        "wrong_type", f"field 'record_count'{spec.origin}: must be an integer, got {value!r:.64}"
    )


def _rfc3339(spec: FieldSpec, value: Any) -> str:
    """A source time -> RFC 3339 in UTC (microseconds kept, exactly)."""
    fmt = spec.time
    where = f"field 'occurred_at'{spec.origin}"
    try:
        if fmt == "iso":
            if not isinstance(value, str):
                raise NormalizeError(
                    "bad_timestamp", f"{where}: expected an ISO 8601 string, got {value!r:.64}"
                )
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                if spec.naive_timezone is None:
                    raise NormalizeError(
                        "bad_timestamp",
                        f"{where}: {value!r:.64} has no UTC offset (set naive_timezone)",
                    )
                moment = moment.replace(tzinfo=spec.naive_timezone)
        else:
            moment = _UNIX_EPOCH + timedelta(microseconds=_epoch_micros(fmt, value, where))
            if spec.naive_timezone is not None:
                # Debezium's Timestamp/MicroTimestamp of a column without time zone: the
                # wall-clock reading written as if it were UTC.
                moment = moment.replace(tzinfo=spec.naive_timezone)
        utc = moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise NormalizeError(
            "bad_timestamp", f"{where}: cannot read {value!r:.64}: {exc}"
        ) from None
    frac = (
        f".{utc.microsecond:06d}" if utc.microsecond % 1000 else f".{utc.microsecond // 1000:03d}"
    )
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}{frac}Z"
    )


def _epoch_micros(fmt: str | None, value: Any, where: str) -> int:
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value.strip()):
        value = float(value) if "." in value else int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NormalizeError(
            "bad_timestamp", f"{where}: expected an epoch number, got {value!r:.64}"
        )
    if fmt == "epoch_ns":
        return int(value) // 1000 if isinstance(value, int) else round(value / 1000)
    per = _MICROS_PER[str(fmt)]
    return value * per if isinstance(value, int) else round(value * per)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
