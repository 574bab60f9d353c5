"""The topics the pipeline creates: names from the prefix, policies from the contract."""

from __future__ import annotations

from pipeline.broker.topics import REFERENCE_HISTORY_DAYS, contract_topics
from pipeline.settings import Settings


def test_every_contract_topic_with_its_cleanup_policy() -> None:
    s = Settings(topic_prefix="x.")
    topics = contract_topics(s)
    assert set(topics) == {
        "x.access-events",
        "x.staff-directory",
        "x.staff-assignments",
        "x.customer-profiles",
        "x.alert-feedback",
        "x.alerts",
        "x.access-events.dlq",
    }
    compacted = {t for t, cfg in topics.items() if cfg["cleanup.policy"] == "compact"}
    assert compacted == {"x.staff-directory", "x.staff-assignments", "x.customer-profiles"}


def test_reference_topics_keep_superseded_records_for_the_history_horizon() -> None:
    for topic in Settings().reference_topics:
        lag_ms = int(contract_topics(Settings())[topic]["min.compaction.lag.ms"])
        assert lag_ms == REFERENCE_HISTORY_DAYS * 86_400_000
        assert lag_ms >= 7 * 86_400_000
