"""Settings.from_env: the contract's defaults, validation, topic names."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.settings import Settings, SettingsError

# The table in shared/contract.md, "Running a worker" (plus PIPELINE_PARTITIONS, default 8).
CONTRACT_DEFAULTS = {
    "kafka_bootstrap": "localhost:9092",
    "database_url": "postgresql://pipeline:pipeline@localhost:5432/pipeline",
    "topic_prefix": "bank.",
    "app_id": "access-watch",
    "web_port": 6066,
    "data_dir": Path("./.pipeline-data"),
    "partitions": 8,
}


def test_defaults_equal_the_contract_table() -> None:
    for settings in (Settings.from_env({}), Settings()):
        for name, value in CONTRACT_DEFAULTS.items():
            assert getattr(settings, name) == value, name
        assert settings.raw_customer_ids is False


def test_empty_values_mean_default() -> None:
    env = {"PIPELINE_WEB_PORT": "", "PIPELINE_PARTITIONS": "", "PIPELINE_RAW_CUSTOMER_IDS": ""}
    s = Settings.from_env(env)
    assert (s.web_port, s.partitions, s.raw_customer_ids) == (6066, 8, False)


def test_every_variable_is_read() -> None:
    env = {
        "PIPELINE_KAFKA_BOOTSTRAP": "k1:19092,k2:19092",
        "PIPELINE_DATABASE_URL": "postgresql://u:p@db:15432/x",
        "PIPELINE_TOPIC_PREFIX": "t42.",
        "PIPELINE_APP_ID": "aw-test",
        "PIPELINE_WEB_PORT": "16066",
        "PIPELINE_DATA_DIR": "/tmp/somewhere",
        "PIPELINE_PARTITIONS": "3",
        "PIPELINE_PSEUDONYM_KEY": "sekrit",
        "PIPELINE_RAW_CUSTOMER_IDS": "yes",
        "PIPELINE_LOG_LEVEL": "debug",
    }
    s = Settings.from_env(env)
    assert s == Settings(
        kafka_bootstrap="k1:19092,k2:19092",
        database_url="postgresql://u:p@db:15432/x",
        topic_prefix="t42.",
        app_id="aw-test",
        web_port=16066,
        data_dir=Path("/tmp/somewhere"),
        partitions=3,
        pseudonym_key="sekrit",
        raw_customer_ids=True,
        log_level="debug",
    )


def test_reads_os_environ_when_no_mapping_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_APP_ID", "from-os-env")
    monkeypatch.setenv("PIPELINE_PARTITIONS", "5")
    s = Settings.from_env()
    assert s.app_id == "from-os-env" and s.partitions == 5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PIPELINE_WEB_PORT", "http"),
        ("PIPELINE_WEB_PORT", "60.5"),
        ("PIPELINE_WEB_PORT", "0"),
        ("PIPELINE_WEB_PORT", "65536"),
        ("PIPELINE_PARTITIONS", "eight"),
        ("PIPELINE_PARTITIONS", "0"),
        ("PIPELINE_PARTITIONS", "-4"),
        ("PIPELINE_RAW_CUSTOMER_IDS", "maybe"),
        ("PIPELINE_RAW_CUSTOMER_IDS", "2"),
    ],
)
def test_invalid_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name) as info:
        Settings.from_env({name: value})
    assert repr(value) in str(info.value) or value in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        (" on ", True),
        ("yes", True),
        ("0", False),
        ("false", False),
        ("Off", False),
        ("no", False),
    ],
)
def test_bool_spellings(value: str, expected: bool) -> None:
    assert Settings.from_env({"PIPELINE_RAW_CUSTOMER_IDS": value}).raw_customer_ids is expected


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("65535", 65535), ("8080", 8080)])
def test_port_bounds_inclusive(value: str, expected: int) -> None:
    assert Settings.from_env({"PIPELINE_WEB_PORT": value}).web_port == expected


@pytest.mark.parametrize("prefix", ["bank.", "run-17.", ""])
def test_topic_names_use_the_prefix(prefix: str) -> None:
    s = Settings.from_env({"PIPELINE_TOPIC_PREFIX": prefix})
    expected = {
        "access_topic": "access-events",
        "staff_topic": "staff-directory",
        "assignments_topic": "staff-assignments",
        "profiles_topic": "customer-profiles",
        "feedback_topic": "alert-feedback",
        "alerts_topic": "alerts",
        "dlq_topic": "access-events.dlq",
    }
    for attr, suffix in expected.items():
        assert getattr(s, attr) == prefix + suffix, attr
    assert s.reference_topics == (
        prefix + "staff-directory",
        prefix + "staff-assignments",
        prefix + "customer-profiles",
    )


def test_settings_are_immutable() -> None:
    s = Settings()
    with pytest.raises(ValidationError, match="frozen"):
        s.topic_prefix = "other."  # type: ignore[misc]
