"""The topics the pipeline creates: names from the prefix, policies from the contract."""

from __future__ import annotations

import pytest
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)

from pipeline.broker import clients
from pipeline.broker.topics import (
    REFERENCE_HISTORY_DAYS,
    _check_created,
    contract_topics,
    internal_topics,
)
from pipeline.settings import Settings

DAY_MS = 86_400_000


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
        "x.alerts.ocsf",
        "x.access-events.dlq",
    }
    compacted = {t for t, cfg in topics.items() if cfg["cleanup.policy"] == "compact"}
    assert compacted == {"x.staff-directory", "x.staff-assignments", "x.customer-profiles"}
    deleted = {t for t, cfg in topics.items() if cfg["cleanup.policy"] == "delete"}
    assert deleted == set(topics) - compacted


def test_contract_topic_names_follow_the_prefix_only() -> None:
    assert set(contract_topics(Settings(topic_prefix=""))) == {
        "access-events",
        "staff-directory",
        "staff-assignments",
        "customer-profiles",
        "alert-feedback",
        "alerts",
        "alerts.ocsf",
        "access-events.dlq",
    }
    default = contract_topics(Settings())
    assert all(name.startswith("bank.") for name in default)


def test_reference_topics_keep_superseded_records_for_the_history_horizon() -> None:
    topics = contract_topics(Settings())
    for topic in Settings().reference_topics:
        lag_ms = int(topics[topic]["min.compaction.lag.ms"])
        assert lag_ms == REFERENCE_HISTORY_DAYS * DAY_MS
        assert lag_ms >= 7 * DAY_MS


def test_internal_topics_are_named_by_the_app_and_sized() -> None:
    s = Settings(topic_prefix="x.", app_id="watch-7")
    topics = internal_topics(s)
    assert set(topics) == {"watch-7-staff-feedback", "watch-7-evidence", "watch-7-peer-days"}
    # Co-partitioned with the access topic (PIPELINE_PARTITIONS) except the peer days,
    # which every worker reads whole.
    assert topics["watch-7-staff-feedback"] == (None, {"cleanup.policy": "delete"})
    assert topics["watch-7-evidence"] == (None, {"cleanup.policy": "delete"})
    count, cfg = topics["watch-7-peer-days"]
    assert count == 1
    assert cfg["cleanup.policy"] == "compact,delete"
    # Kept longer than the 28-day peer window, and large records allowed.
    assert int(cfg["retention.ms"]) > 28 * DAY_MS
    assert int(cfg["max.message.bytes"]) >= 1024 * 1024
    # Internal and contract topics never collide.
    assert not set(topics) & set(contract_topics(s))


def test_settings_name_the_same_topics() -> None:
    s = Settings(topic_prefix="p-", app_id="a")
    assert s.ocsf_topic in contract_topics(s)
    assert {s.staff_feedback_topic, s.evidence_topic, s.peer_days_topic} == set(internal_topics(s))


# --- create_topics' answer per topic -------------------------------------------------------


@pytest.mark.parametrize("code", [0, TopicAlreadyExistsError.errno])
def test_created_or_already_there_is_fine(code: int) -> None:
    _check_created(Settings(), ("bank.alerts", code, None))
    _check_created(Settings(), ("bank.alerts", code))


def test_too_many_replicas_says_which_setting() -> None:
    s = Settings(replication_factor=3)
    with pytest.raises(clients.KafkaSecurityError, match="PIPELINE_REPLICATION_FACTOR=3"):
        _check_created(s, ("bank.alerts", InvalidReplicationFactorError.errno, ""))


@pytest.mark.parametrize("error", [TopicAuthorizationFailedError, ClusterAuthorizationFailedError])
def test_refused_creation_names_the_user_and_the_remedy(error: type[Exception]) -> None:
    s = Settings(kafka_sasl_username="svc-watch")
    with pytest.raises(clients.KafkaAuthError, match="svc-watch") as info:
        _check_created(s, ("bank.alerts", error.errno, "denied"))  # type: ignore[attr-defined]
    assert "create-topics" in str(info.value) and "bank.alerts" in str(info.value)


def test_other_refusals_raise_the_kafka_error() -> None:
    with pytest.raises(InvalidPartitionsError, match=r"bank\.alerts"):
        _check_created(Settings(), ("bank.alerts", InvalidPartitionsError.errno, "zero"))
