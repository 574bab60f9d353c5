"""Writing a simulation out: JSONL files (and back); Kafka topics via :mod:`simbank.broker`.

Files in the output directory:

- ``reference.jsonl``: one ``{"topic", "key", "value"}`` per line, in publication order;
- ``events.jsonl``: one AccessEvent per line, sorted by ``occurred_at``;
- ``incidents.json``: the labelled incidents (a JSON list);
- ``summary.json``: counts, and the config's size and seed;
- ``profile.json``: the bank profile (with ``summary.json``, :func:`read_jsonl` rebuilds
  the config, so a run is reproducible).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import orjson

from simbank.simulate.config import SimConfig
from simbank.simulate.model import Incident, RefRecord, Simulation
from simbank.simulate.profile import DEFAULT_PROFILE, BankProfile

REFERENCE_FILE: Final = "reference.jsonl"
EVENTS_FILE: Final = "events.jsonl"
INCIDENTS_FILE: Final = "incidents.json"
SUMMARY_FILE: Final = "summary.json"
PROFILE_FILE: Final = "profile.json"


def _lines(items: Iterable[dict[str, Any]], path: Path) -> None:
    with path.open("wb") as f:
        for item in items:
            f.write(orjson.dumps(item))
            f.write(b"\n")


def write_jsonl(sim: Simulation, directory: str | Path) -> Path:
    """Write the four files into ``directory`` (created if needed); returns its path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    _lines((r.to_json() for r in sim.reference), out / REFERENCE_FILE)
    _lines(sim.events, out / EVENTS_FILE)
    incidents = [i.to_json() for i in sim.incidents]
    (out / INCIDENTS_FILE).write_bytes(orjson.dumps(incidents, option=orjson.OPT_INDENT_2) + b"\n")
    summary = sim.summary()
    summary["active_staff_days"] = sim.active_staff_days()
    (out / SUMMARY_FILE).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    profile = sim.config.profile.to_json()
    (out / PROFILE_FILE).write_bytes(orjson.dumps(profile, option=orjson.OPT_INDENT_2) + b"\n")
    return out


def _read_lines(path: Path) -> list[Any]:
    with path.open("rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def read_jsonl(directory: str | Path) -> Simulation:
    """Read back what :func:`write_jsonl` wrote."""
    src = Path(directory)
    summary = orjson.loads((src / SUMMARY_FILE).read_bytes())
    profile_path = src / PROFILE_FILE
    profile = (
        BankProfile.from_json(orjson.loads(profile_path.read_bytes()))
        if profile_path.exists()
        else DEFAULT_PROFILE
    )
    return Simulation(
        config=SimConfig.from_json(summary["config"], profile),
        reference=[RefRecord.from_json(r) for r in _read_lines(src / REFERENCE_FILE)],
        events=_read_lines(src / EVENTS_FILE),
        incidents=[
            Incident.from_json(i) for i in orjson.loads((src / INCIDENTS_FILE).read_bytes())
        ],
    )
