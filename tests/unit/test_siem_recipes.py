"""The SIEM recipes in docs/siem.md parse, name the pipeline's topic and use the key as id."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.alerts.ocsf import detection_finding
from pipeline.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"
RECIPES = DOCS / "siem"
SIEM_MD = (DOCS / "siem.md").read_text(encoding="utf-8")
EXAMPLE = (
    Path(__file__).resolve().parents[2] / "schemas/examples/alert/valid/every-optional-field.json"
)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECIPES / name).read_text(encoding="utf-8"))
    return data


def json_blocks(text: str) -> list[Any]:
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)]


def test_the_default_topic_is_what_the_recipes_read() -> None:
    assert Settings().ocsf_topic == "bank.alerts.ocsf"
    for name in ("splunk-sink.json", "elasticsearch-sink.json"):
        assert load(name)["config"]["topics"] == Settings().ocsf_topic


@pytest.mark.parametrize("name", ["splunk-sink.json", "elasticsearch-sink.json"])
def test_the_doc_shows_each_recipe_as_shipped(name: str) -> None:
    assert load(name) in json_blocks(SIEM_MD)
    assert f"siem/{name}" in SIEM_MD


def test_splunk_recipe() -> None:
    config = load("splunk-sink.json")["config"]
    assert config["connector.class"] == "com.splunk.kafka.connect.SplunkSinkConnector"
    assert config["splunk.sourcetypes"] == "ocsf:detection_finding"
    assert config["splunk.hec.raw"] == "false"  # the /event endpoint
    assert config["splunk.hec.ack.enabled"] == "true"
    # secrets come from a file through Kafka's FileConfigProvider, never inline
    assert re.fullmatch(r"\$\{file:/[^:}]+:token\}", config["splunk.hec.token"])
    assert (
        "config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider"
        in SIEM_MD
    )
    assert "dedup finding_info.uid sortby -metadata.sequence" in SIEM_MD


def test_splunk_timestamp_regex_finds_the_findings_own_time() -> None:
    config = load("splunk-sink.json")["config"]
    assert config["timestamp.format"] == "epoch"
    pattern = re.compile(config["timestamp.regex"].replace("(?<time>", "(?P<time>"))
    finding = detection_finding(json.loads(EXAMPLE.read_text(encoding="utf-8")))
    for text in (orjson.dumps(finding).decode(), json.dumps(finding, indent=2)):
        match = pattern.search(text)
        assert match is not None and int(match["time"]) == finding["time"]
        assert finding["time"] != finding["finding_info"]["first_seen_time"]


def test_elasticsearch_recipe_uses_the_key_as_document_id() -> None:
    config = load("elasticsearch-sink.json")["config"]
    assert config["connector.class"] == (
        "io.confluent.connect.elasticsearch.ElasticsearchSinkConnector"
    )
    assert config["key.ignore"] == "false"  # _id = record key = alert_id = finding_info.uid
    assert config["key.converter"] == "org.apache.kafka.connect.storage.StringConverter"
    assert config["write.method"] == "insert"  # a later revision replaces the document
    assert config["behavior.on.null.values"] in {"delete", "ignore"}
    assert config["schema.ignore"] == "true"
    assert config["value.converter.schemas.enable"] == "false"
    assert re.fullmatch(r"\$\{file:/[^:}]+:password\}", config["connection.password"])


def test_elasticsearch_index_is_the_one_the_template_covers() -> None:
    config = load("elasticsearch-sink.json")["config"]
    # RegexRouter: a topic the regex matches in full is renamed to the replacement
    assert re.fullmatch(config["transforms.toIndex.regex"], Settings().ocsf_topic)
    assert re.fullmatch(config["transforms.toIndex.regex"], "test-7.alerts.ocsf")
    assert not re.fullmatch(config["transforms.toIndex.regex"], "bank.alerts")
    routed = config["transforms.toIndex.replacement"]
    assert routed == "access-watch-findings"
    template = load("elasticsearch-index-template.json")
    assert any(re.fullmatch(p.replace("*", ".*"), routed) for p in template["index_patterns"])
    props = template["template"]["mappings"]["properties"]
    assert props["finding_info"]["properties"]["uid"] == {"type": "keyword"}
    assert props["time"] == {"type": "date", "format": "epoch_millis"}
    assert "siem/elasticsearch-index-template.json" in SIEM_MD
