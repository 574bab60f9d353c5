"""README.md and docs/operations.md: the generated settings table; every metric documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pipeline import settings_doc
from pipeline.observability.metrics import WorkerMetrics
from pipeline.settings import SECRET_FIELDS, Settings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"


@pytest.mark.parametrize("doc", [DOC, ROOT / "README.md"], ids=["operations", "readme"])
def test_the_table_in_the_doc_is_the_generated_one(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert settings_doc.with_table(text) == text, (
        f"{doc.name} is stale: run " + settings_doc.REGENERATE
    )
    assert settings_doc.main(["--check", str(doc)]) == 0


def test_the_table_has_every_setting_once_with_its_default() -> None:
    rows = settings_doc.settings_rows()
    names = [v.strip("`") for v, _, _ in rows]
    assert names == [f"PIPELINE_{n.upper()}" for n in Settings.model_fields]
    by_name = {v.strip("`"): (d, m) for v, d, m in rows}
    assert by_name["PIPELINE_WEB_PORT"][0] == "`6066`"
    assert by_name["PIPELINE_DATA_DIR"][0] == "`./.pipeline-data`"
    assert by_name["PIPELINE_MIN_INSYNC_REPLICAS"][0] == "*(unset)*"
    assert by_name["PIPELINE_RAW_CUSTOMER_IDS"][0] == "`false`"
    assert by_name["PIPELINE_MAX_EVENT_SKEW_S"][0] == "`604800`"
    for name in SECRET_FIELDS:
        assert f"`PIPELINE_{name.upper()}_FILE`" in by_name[f"PIPELINE_{name.upper()}"][1]
    for _, _, meaning in rows:
        assert meaning and "\n" not in meaning and "|" not in meaning.replace("\\|", "")


def test_a_stale_or_unmarked_doc_is_reported(tmp_path: Path) -> None:
    stale = tmp_path / "ops.md"
    stale.write_text(
        f"intro\n{settings_doc.BEGIN}\n| old | table |\n{settings_doc.END}\nafter\n",
        encoding="utf-8",
    )
    assert settings_doc.main(["--check", str(stale)]) == 1
    assert settings_doc.main(["--write", str(stale)]) == 0
    assert settings_doc.main(["--check", str(stale)]) == 0
    text = stale.read_text(encoding="utf-8")
    assert text.startswith("intro\n") and text.endswith(f"{settings_doc.END}\nafter\n")
    assert "| old | table |" not in text
    with pytest.raises(settings_doc.SettingsDocError, match="markers"):
        settings_doc.with_table("no markers here")


def test_every_metric_and_alert_rule_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(pipeline_[a-z_]+)` \|", text, re.M))
    exported = {
        name
        for name in WorkerMetrics().series()
        if not name.endswith(("_bucket", "_sum", "_count"))
    } | {n.removesuffix("_bucket") for n in WorkerMetrics().series() if n.endswith("_bucket")}
    assert documented == exported
    rules = yaml.safe_load((ROOT / "infra/prometheus/alerts.yml").read_text(encoding="utf-8"))
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    in_doc = set(re.findall(r"^\| `(AccessWatch[A-Za-z]+)` \|", text, re.M))
    assert in_doc == alerts
