"""Worker settings, typed and read once from the environment.

The variables and defaults are part of the contract ("Running a worker").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class SettingsError(ValueError):
    """An environment variable has a value the pipeline cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    kafka_bootstrap: str = "localhost:9092"
    database_url: str = "postgresql://pipeline:pipeline@localhost:5432/pipeline"
    topic_prefix: str = "bank."
    app_id: str = "access-watch"
    web_port: int = 6066
    data_dir: Path = Path("./.pipeline-data")
    partitions: int = 8
    # Key of the keyed hash that pseudonymizes customer ids in alerts.
    pseudonym_key: str = "change-me-in-production"
    # When true, alerts carry raw customer ids instead of pseudonyms.
    raw_customer_ids: bool = False
    log_level: str = "info"

    # -- topic names ---------------------------------------------------
    @property
    def access_topic(self) -> str:
        return f"{self.topic_prefix}access-events"

    @property
    def staff_topic(self) -> str:
        return f"{self.topic_prefix}staff-directory"

    @property
    def assignments_topic(self) -> str:
        return f"{self.topic_prefix}staff-assignments"

    @property
    def profiles_topic(self) -> str:
        return f"{self.topic_prefix}customer-profiles"

    @property
    def feedback_topic(self) -> str:
        return f"{self.topic_prefix}alert-feedback"

    @property
    def alerts_topic(self) -> str:
        return f"{self.topic_prefix}alerts"

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic_prefix}access-events.dlq"

    @property
    def staff_feedback_topic(self) -> str:
        """Internal: verdicts re-keyed by staff_id (co-partitioned with access events)."""
        return f"{self.app_id}-staff-feedback"

    @property
    def reference_topics(self) -> tuple[str, str, str]:
        return (self.staff_topic, self.assignments_topic, self.profiles_topic)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        d = cls()
        return cls(
            kafka_bootstrap=e.get("PIPELINE_KAFKA_BOOTSTRAP", d.kafka_bootstrap),
            database_url=e.get("PIPELINE_DATABASE_URL", d.database_url),
            topic_prefix=e.get("PIPELINE_TOPIC_PREFIX", d.topic_prefix),
            app_id=e.get("PIPELINE_APP_ID", d.app_id),
            web_port=_int(e, "PIPELINE_WEB_PORT", d.web_port, 1, 65535),
            data_dir=Path(e.get("PIPELINE_DATA_DIR", str(d.data_dir))),
            partitions=_int(e, "PIPELINE_PARTITIONS", d.partitions, 1, 10_000),
            pseudonym_key=e.get("PIPELINE_PSEUDONYM_KEY", d.pseudonym_key),
            raw_customer_ids=_bool(e, "PIPELINE_RAW_CUSTOMER_IDS", d.raw_customer_ids),
            log_level=e.get("PIPELINE_LOG_LEVEL", d.log_level),
        )


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    low = raw.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")
