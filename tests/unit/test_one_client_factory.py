"""Every Kafka client is built by ``pipeline.broker.clients`` (TLS/SASL in one place)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILDS = re.compile(r"\b(AIOKafkaProducer|AIOKafkaConsumer|AIOKafkaAdminClient)\(")
FACTORY = ROOT / "pipeline" / "broker" / "clients.py"


def test_no_kafka_client_is_built_outside_the_factory() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for pkg in ("pipeline", "simbank")
        for path in sorted((ROOT / pkg).rglob("*.py"))
        if path != FACTORY
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if BUILDS.search(line)
    ]
    assert offenders == []


def test_the_factory_does_build_them() -> None:
    assert len(BUILDS.findall(FACTORY.read_text(encoding="utf-8"))) == 3
