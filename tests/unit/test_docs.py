"""The documentation lists what the code does."""

from __future__ import annotations

from pathlib import Path

from pipeline.detect.catalogue import CATALOGUE

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_detection_doc_lists_every_reason_code_with_its_weight() -> None:
    text = (DOCS / "detection.md").read_text(encoding="utf-8")
    # the table under "## Reason codes", up to the next heading
    section = text.split("## Reason codes", 1)[1].split("\n## ", 1)[0]
    rows = {
        line.split("|")[1].strip().strip("`"): line.split("|")[3].strip()
        for line in section.splitlines()
        if line.startswith("| `")
    }
    assert set(rows) == set(CATALOGUE)
    for code, spec in CATALOGUE.items():
        assert float(rows[code]) == spec.weight, code
