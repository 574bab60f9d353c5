"""Readiness probe for the dev broker: exit 0 once a metadata request succeeds.

Used by infra/kafka.sh when the project venv (with aiokafka) exists:
    .venv/bin/python infra/kafka_probe.py 127.0.0.1:9092
An open port is not enough: the broker accepts connections before it has
registered itself, and clients fail until its metadata lists a broker.
"""

from __future__ import annotations

import asyncio
import sys

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

PROBE_TIMEOUT_S = 10.0


async def broker_count(bootstrap: str) -> int:
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await client.bootstrap()
        return len(client.cluster.brokers())
    finally:
        await client.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: kafka_probe.py HOST:PORT", file=sys.stderr)
        return 2
    try:
        count = asyncio.run(asyncio.wait_for(broker_count(argv[1]), PROBE_TIMEOUT_S))
    except (KafkaError, OSError, TimeoutError) as exc:
        print(f"kafka not ready: {exc!r}", file=sys.stderr)
        return 1
    if count == 0:
        print("kafka not ready: metadata lists no broker yet", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
