"""What the logs may hold: never a record's key or value (raw customer ids live there).

The pipeline's own log lines name topics, partitions, offsets, event and alert
ids, error codes and counts; never a customer id, a record key or a record
value (a dead-lettered record goes to the dead-letter topic, not to the log).

At ``PIPELINE_LOG_LEVEL=debug`` some third-party loggers would print whole
records: aiokafka's protocol dumps (``Request to ...``/``Response from ...``
with the raw message sets) and its producer's ``Sending (key=... value=...)``,
Faust's ``send: topic=... k=... v=...`` and its message-dropping and skipping
lines. :data:`PAYLOAD_LOGGERS` stay at INFO whatever the level asked for;
everything else follows ``PIPELINE_LOG_LEVEL``.
"""

from __future__ import annotations

import logging
from typing import Final

PAYLOAD_LOGGERS: Final = (
    "aiokafka.conn",
    "aiokafka.producer.producer",
    "aiokafka.consumer.fetcher",
    "faust.topics",
    "faust.transport.drivers.aiokafka",
    "faust.transport.consumer",
    "faust.streams",
    "faust.agents.agent",
)


def quiet_payload_loggers(floor: int = logging.INFO) -> None:
    """Keep :data:`PAYLOAD_LOGGERS` at ``floor`` or above (they log records below it)."""
    for name in PAYLOAD_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < floor:  # NOTSET (follows the root) counts as below
            logger.setLevel(floor)
