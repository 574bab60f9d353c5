"""Loggers that print whole Kafka records stay above DEBUG whatever the level asked for."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from pipeline.observability.logs import PAYLOAD_LOGGERS, quiet_payload_loggers


@pytest.fixture
def restore_levels() -> Iterator[None]:
    before = {name: logging.getLogger(name).level for name in PAYLOAD_LOGGERS}
    root = logging.getLogger().level
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)
    logging.getLogger().setLevel(root)


def test_payload_loggers_stay_at_info_under_a_debug_root(restore_levels: None) -> None:
    logging.getLogger("aiokafka.conn").setLevel(logging.NOTSET)
    logging.getLogger("faust.topics").setLevel(logging.WARNING)
    quiet_payload_loggers()
    logging.getLogger().setLevel(logging.DEBUG)  # what PIPELINE_LOG_LEVEL=debug does
    for name in PAYLOAD_LOGGERS:
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    # a stricter level set elsewhere is kept; other loggers follow the root
    assert logging.getLogger("faust.topics").level == logging.WARNING
    assert logging.getLogger("pipeline.worker.agents").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("aiokafka.consumer.group_coordinator").isEnabledFor(logging.DEBUG)
