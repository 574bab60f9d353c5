"""Log lines: text or JSON, context fields, never a customer id field; the CLI's set-up."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline import cli
from pipeline.observability.logging import (
    configure_logging,
    level_number,
    log_context,
)
from pipeline.settings import Settings
from pipeline.worker.main import worker_options

TEXT_LINE = re.compile(
    r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] \[(\d+)\] \[(DEBUG|INFO|WARNING|ERROR)\] "
    r"([\w.]+): (.*)$"
)


@pytest.fixture(autouse=True)
def restore_loggers() -> Iterator[None]:
    """Root handlers and every logger's level as they were (the CLI sets some)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {
        name: logger.level
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, logger in logging.root.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_text_lines_keep_the_workers_format_and_append_context() -> None:
    out = io.StringIO()
    configure_logging("info", "text", out)
    log = logging.getLogger("pipeline.test")
    log.info("plain %d", 1)
    log.debug("not shown")
    log.warning("with context", extra={"alert_id": "A-1", "staff_id": "S7"})
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (TEXT_LINE.match(line) for line in lines)
    assert first is not None and second is not None
    assert first.groups() == (str(os.getpid()), "INFO", "pipeline.test", "plain 1")
    assert second.group(4) == "with context [alert_id=A-1 staff_id=S7]"


def test_json_lines_carry_context_fields() -> None:
    out = io.StringIO()
    configure_logging("debug", "json", out)
    log = logging.getLogger("pipeline.worker.agents")
    with log_context(staff_id="S1", agent="score-access"):
        log.info("incident opened")
        with log_context(alert_id="A-9"):
            log.info("revision %d", 2)
        log.warning("override", extra={"staff_id": "S2"})
    log.error("outside")
    docs = json_lines(out)
    assert [d["message"] for d in docs] == ["incident opened", "revision 2", "override", "outside"]
    assert docs[0]["staff_id"] == "S1" and docs[0]["agent"] == "score-access"
    assert "alert_id" not in docs[0]
    assert (docs[1]["alert_id"], docs[1]["staff_id"]) == ("A-9", "S1")
    assert docs[2]["staff_id"] == "S2"  # extra= wins over the context
    assert "staff_id" not in docs[3] and "agent" not in docs[3]
    assert docs[0]["level"] == "info" and docs[3]["level"] == "error"
    assert docs[0]["logger"] == "pipeline.worker.agents"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", docs[0]["ts"])


def test_customer_ids_never_become_fields() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    logging.getLogger("x").info(
        "looked up",
        extra={"customer_id": "C-SECRET-1", "customer_ref": "C-SECRET-2", "staff_id": "S1"},
    )
    configure_logging("info", "text", out)
    logging.getLogger("x").info("again", extra={"customer_id": "C-SECRET-3"})
    text = out.getvalue()
    assert "C-SECRET" not in text and "customer" not in text
    assert json.loads(text.splitlines()[0])["staff_id"] == "S1"


def test_exceptions_are_one_json_line_with_the_traceback() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    try:
        raise ValueError("bad thing")
    except ValueError:
        logging.getLogger("x").exception("failed", extra={"partition": 3, "offset": 17})
    (doc,) = json_lines(out)
    assert doc["message"] == "failed"
    assert "Traceback" in doc["exc"] and "ValueError: bad thing" in doc["exc"]
    assert (doc["partition"], doc["offset"]) == (3, 17)


def test_text_context_stays_on_the_message_line_above_a_traceback() -> None:
    out = io.StringIO()
    configure_logging("info", "text", out)
    try:
        raise KeyError("k")
    except KeyError:
        logging.getLogger("x").exception("failed", extra={"alert_id": "A-2"})
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("failed [alert_id=A-2]")
    assert lines[1].startswith("Traceback")


async def test_context_does_not_leak_between_tasks() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    log = logging.getLogger("x")
    gate = asyncio.Event()

    async def one(staff: str) -> None:
        with log_context(staff_id=staff):
            await gate.wait()
            log.info("from %s", staff)

    tasks = [asyncio.create_task(one(s)) for s in ("S1", "S2")]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    log.info("main")
    docs = {d["message"]: d.get("staff_id") for d in json_lines(out)}
    assert docs == {"from S1": "S1", "from S2": "S2", "main": None}


def test_configure_replaces_handlers_and_checks_its_arguments() -> None:
    root = logging.getLogger()
    first = configure_logging("warn", "text", io.StringIO())
    second = configure_logging("error", "json", io.StringIO())
    assert root.handlers == [second] and first not in root.handlers
    assert root.level == logging.ERROR
    assert level_number("WARN") == level_number("warning") == logging.WARNING
    with pytest.raises(ValueError, match="unknown log level"):
        level_number("loud")
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml", io.StringIO())  # type: ignore[arg-type]


def test_cli_logs_in_the_configured_format(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fake_run(name: str, args: Any, settings: Settings) -> int:
        logging.getLogger("pipeline.cli").info("ran %s", name, extra={"alert_id": "A-3"})
        return 0

    monkeypatch.setattr(cli, "_run_builtin", fake_run)
    monkeypatch.setenv("PIPELINE_LOG_FORMAT", "json")
    assert cli.main(["migrate"]) == 0
    doc = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert doc["message"] == "ran migrate" and doc["alert_id"] == "A-3"
    monkeypatch.setenv("PIPELINE_LOG_FORMAT", "text")
    assert cli.main(["migrate"]) == 0
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.endswith("[INFO] pipeline.cli: ran migrate [alert_id=A-3]")


def test_the_faust_worker_keeps_our_handlers() -> None:
    text = worker_options(Settings())
    assert text["override_logging"] is False and text["quiet"] is False
    assert worker_options(Settings(log_format="json"))["quiet"] is True
    assert worker_options(Settings(log_level="debug"))["loglevel"] == "debug"
