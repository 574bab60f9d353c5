"""Logging of the ``pipeline`` processes: text lines, or JSON lines for log shippers.

:func:`configure_logging` installs one handler on the root logger, in the
format of ``PIPELINE_LOG_FORMAT`` (``text``, the default, or ``json``). The
CLI calls it once, before any subcommand runs; the Faust worker is told not
to replace it (see :func:`pipeline.worker.main.worker_options`).

Context fields. A record carries ``alert_id`` and ``staff_id`` (and the
operational fields in :data:`CONTEXT_FIELDS`) when the call passes them with
``extra=`` or when it runs inside :func:`log_context`::

    with log_context(staff_id=event.staff_id):
        log.info("incident opened")            # carries staff_id
    log.warning("verdict ignored", extra={"alert_id": alert_id})

Only the fields of :data:`CONTEXT_FIELDS` are ever written: an ``extra`` key
such as ``customer_id`` is dropped, so a log line never names a customer by
a field of its own (keep customer ids out of messages too: alerts carry
pseudonyms for that reason).
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO, Any, Final, Literal

import orjson

#: The fields a log record may carry besides time, level, logger and message.
CONTEXT_FIELDS: Final = ("alert_id", "staff_id", "agent", "topic", "partition", "offset", "code")

#: The worker's lines as Faust (mode) wrote them, plus the logger's name.
TEXT_FORMAT: Final = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"

LogFormat = Literal["text", "json"]

_NO_CONTEXT: Final[Mapping[str, object]] = MappingProxyType({})
_CONTEXT: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar(
    "pipeline_log_context", default=_NO_CONTEXT
)


@contextmanager
def log_context(
    *,
    alert_id: str | None = None,
    staff_id: str | None = None,
    agent: str | None = None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    code: str | None = None,
) -> Iterator[None]:
    """Records logged inside carry these fields (nested contexts add to outer ones).

    A context variable: each asyncio task sees the context of the code that
    created it, so one agent's context does not leak into another's.
    """
    given = {
        "alert_id": alert_id,
        "staff_id": staff_id,
        "agent": agent,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "code": code,
    }
    merged = {**_CONTEXT.get(), **{k: v for k, v in given.items() if v is not None}}
    token = _CONTEXT.set(MappingProxyType(merged))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def record_context(record: logging.LogRecord) -> dict[str, object]:
    """The context fields of ``record``: its ``extra=`` values over the active context."""
    out: dict[str, object] = {}
    active = _CONTEXT.get()
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None)
        if value is None:
            value = active.get(name)
        if value is not None:
            out[name] = value
    return out


class TextFormatter(logging.Formatter):
    """``[time] [pid] [LEVEL] logger: message [alert_id=... staff_id=...]``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = record_context(record)
        if not context:
            return line
        fields = " ".join(f"{k}={v}" for k, v in context.items())
        head, sep, rest = line.partition("\n")  # keep a traceback below the context
        return f"{head} [{fields}]{sep}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, context, ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update(record_context(record))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(doc, default=str).decode("utf-8")


def level_number(level: str) -> int:
    """``debug``/``info``/``warning``/``warn``/``error`` (any case) as a logging level."""
    name = level.strip().upper()
    if name == "WARN":
        name = "WARNING"
    number = logging.getLevelName(name)
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}")
    return number


def configure_logging(
    level: str = "info", log_format: LogFormat = "text", stream: IO[str] | None = None
) -> logging.Handler:
    """One handler on the root logger, replacing any handlers already there.

    Returns the handler (tests read what it wrote). Raises ValueError for an
    unknown level or format.
    """
    if log_format == "json":
        formatter: logging.Formatter = JsonFormatter()
    elif log_format == "text":
        formatter = TextFormatter()
    else:
        raise ValueError(f"log format must be 'text' or 'json', got {log_format!r}")
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_number(level))
    return handler


__all__ = [
    "CONTEXT_FIELDS",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "level_number",
    "log_context",
    "record_context",
]
