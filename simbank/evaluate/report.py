"""Evaluation report: ``report.json``, ``summary.md`` and ``chart.png``.

The table compares scorecards side by side (one column per detector); the
metric definitions are in :mod:`simbank.evaluate.score`.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from simbank.evaluate.score import SEVERITIES, TTD_TARGET_SECONDS, Scorecard
from simbank.simulate.labels import BENIGN_KINDS, MALICIOUS_KINDS

Row = tuple[str, list[str]]


def format_duration(seconds: float | None) -> str:
    """Human duration: ``"42 s"``, ``"3.5 min"``, ``"2.0 h"``, ``"3.1 d"``; ``"-"`` for None.

    >>> format_duration(42.4), format_duration(210), format_duration(None)
    ('42 s', '3.5 min', '-')
    """
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _ordered(keys: set[str], canonical: Sequence[str]) -> list[str]:
    return [k for k in canonical if k in keys] + sorted(keys - set(canonical))


def _row(label: str, cards: Sequence[Scorecard], cell: Callable[[Scorecard], str]) -> Row:
    return label, [cell(sc) for sc in cards]


def _kind_cell(sc: Scorecard, kind: str) -> str:
    res = sc.per_kind.get(kind)
    return f"{res.detected}/{res.injected}" if res is not None else "-"


def _benign_cell(sc: Scorecard, kind: str) -> str:
    return str(sc.false_alerts_on_benign.get(kind, 0))


def _reason_cell(sc: Scorecard, code: str) -> str:
    return str(sc.alerts_by_reason.get(code, 0))


def _band_cell(sc: Scorecard, band: str) -> str:
    b = sc.by_severity.get(band)
    if b is None or not b.alerts:
        return "-"
    return f"{b.precision:.2f} ({b.alerts})"


def _week_cell(sc: Scorecard, week: int) -> str:
    if week >= len(sc.weekly):
        return "-"
    w = sc.weekly[week]
    rate = w.false_per_100_staff_days
    mark = " (learning)" if w.learning_days == 7 else ""
    return ("-" if rate is None else f"{rate:.2f}") + mark


def _learning_alerts_cell(sc: Scorecard) -> str:
    if not sc.learning:
        return "-"
    return f"{sc.learning['alerts']} ({sc.learning['false_alerts']})"


def _learning_policy_cell(sc: Scorecard) -> str:
    if not sc.learning:
        return "-"
    return f"{sc.learning['policy_detected']}/{sc.learning['policy_incidents']}"


def metric_rows(cards: Sequence[Scorecard]) -> list[Row]:
    """The summary table's rows: label and one cell per scorecard."""
    target = format_duration(TTD_TARGET_SECONDS)
    rows: list[Row] = [
        _row(
            "incident recall",
            cards,
            lambda sc: (
                f"{sc.incident_recall:.2f} ({sc.detected_incidents}/{sc.malicious_incidents})"
            ),
        ),
        _row("alerts", cards, lambda sc: str(sc.alerts)),
        _row("true alerts", cards, lambda sc: str(sc.true_alerts)),
        _row(
            "alert precision",
            cards,
            lambda sc: f"{sc.alert_precision:.2f}" if sc.alerts else "n/a (no alerts)",
        ),
        _row("false alerts", cards, lambda sc: str(sc.false_alerts)),
        _row(
            "false alerts / 100 staff-days",
            cards,
            lambda sc: f"{sc.false_alerts_per_100_staff_days:.2f}",
        ),
        _row(
            "median time to detect, within-session",
            cards,
            lambda sc: format_duration(sc.median_ttd_within_session_seconds),
        ),
        _row(
            f"within-session detected in <= {target}",
            cards,
            lambda sc: f"{sc.within_session_on_target}/{sc.within_session_incidents}",
        ),
        _row(
            "median time to detect, low_and_slow",
            cards,
            lambda sc: format_duration(sc.median_ttd_low_and_slow_seconds),
        ),
        _row("false alerts above medium", cards, lambda sc: str(sc.false_alerts_above_medium)),
    ]
    for band in SEVERITIES:
        if any(sc.by_severity.get(band) for sc in cards):
            rows.append(_row(f"precision, {band} (alerts)", cards, partial(_band_cell, band=band)))
    weeks = max((len(sc.weekly) for sc in cards), default=0)
    rows += [
        _row(f"false / 100 staff-days, week {w + 1}", cards, partial(_week_cell, week=w))
        for w in range(weeks)
    ]
    if any(sc.learning for sc in cards):
        rows.append(_row("during learning: alerts (false)", cards, _learning_alerts_cell))
        rows.append(_row("during learning: policy incidents found", cards, _learning_policy_cell))
    kinds = _ordered({k for sc in cards for k in sc.per_kind}, MALICIOUS_KINDS)
    rows += [_row(f"detected: {k}", cards, partial(_kind_cell, kind=k)) for k in kinds]
    benign = _ordered({k for sc in cards for k in sc.false_alerts_on_benign}, BENIGN_KINDS)
    rows += [
        _row(
            f"false alerts on benign: {k}",
            cards,
            partial(_benign_cell, kind=k),
        )
        for k in benign
    ]
    return rows


def reason_rows(cards: Sequence[Scorecard]) -> list[Row]:
    codes = sorted(
        {c for sc in cards for c in sc.alerts_by_reason},
        key=lambda c: (-sum(sc.alerts_by_reason.get(c, 0) for sc in cards), c),
    )
    return [_row(code, cards, partial(_reason_cell, code=code)) for code in codes]


def _markdown_table(first: str, cards: Sequence[Scorecard], rows: list[Row]) -> list[str]:
    lines = [
        "| " + " | ".join([first, *(sc.name for sc in cards)]) + " |",
        "|" + "---|" + "---:|" * len(cards),
    ]
    lines += ["| " + " | ".join([label, *cells]) + " |" for label, cells in rows]
    return lines


def _meta_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def summary_markdown(cards: Sequence[Scorecard], meta: dict[str, Any]) -> str:
    lines = ["# Evaluation summary", ""]
    lines += _markdown_table("metric", cards, metric_rows(cards))
    lines += ["", "## Alerts by reason (highest revision of each alert)", ""]
    reasons = reason_rows(cards)
    lines += _markdown_table("reason", cards, reasons) if reasons else ["(no alerts)"]
    if meta:
        lines += ["", "## Run", ""]
        lines += [f"- {key}: {_meta_value(value)}" for key, value in meta.items()]
    lines += [
        "",
        "Definitions: see `simbank/evaluate/score.py`. Detected = at least one alert revision "
        "names an event of the incident; time to detect is measured in event time.",
        "",
    ]
    return "\n".join(lines)


def format_console(scorecards: Sequence[Scorecard], meta: dict[str, Any]) -> str:
    """A plain-text version of the summary table, for printing."""
    rows = [("metric", [sc.name for sc in scorecards]), *metric_rows(scorecards)]
    label_w = max(len(label) for label, _ in rows)
    widths = [max(len(cells[i]) for _, cells in rows) for i in range(len(scorecards))]
    out = []
    for n, (label, cells) in enumerate(rows):
        out.append(
            label.ljust(label_w)
            + "  "
            + "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
        )
        if n == 0:
            out.append("-" * len(out[0]))
    if meta:
        out.append("")
        out.append("  ".join(f"{k}={_meta_value(v)}" for k, v in meta.items()))
    return "\n".join(out)


def write_chart(cards: Sequence[Scorecard], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = _ordered({k for sc in cards for k in sc.per_kind}, MALICIOUS_KINDS)
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(15, 5.5), gridspec_kw={"width_ratios": [3, 1.2]}, layout="constrained"
    )
    width = 0.8 / max(1, len(cards))
    for i, sc in enumerate(cards):
        recalls = []
        for k in kinds:
            res = sc.per_kind.get(k)
            recalls.append((res.recall or 0.0) if res is not None else 0.0)
        xs = [j + (i - (len(cards) - 1) / 2) * width for j in range(len(kinds))]
        ax1.bar(xs, recalls, width, label=sc.name)
    ax1.set_xticks(range(len(kinds)), kinds, rotation=30, ha="right")
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("recall (detected / injected)")
    ax1.set_title("Recall per incident kind")
    ax1.legend()

    names = [sc.name for sc in cards]
    xs = list(range(len(cards)))
    volumes = [sc.alerts for sc in cards]
    bars = ax2.bar([x - 0.2 for x in xs], volumes, 0.4, label="alerts", color="C7")
    ax2.bar_label(bars, fontsize=8)
    ax2.set_ylim(0, max(1.0, *volumes) * 1.15)
    ax2.set_ylabel("alerts")
    ax2.set_xticks(xs, names, rotation=15)
    ax2b = ax2.twinx()
    rates = [sc.false_alerts_per_100_staff_days for sc in cards]
    bars_b = ax2b.bar(
        [x + 0.2 for x in xs], rates, 0.4, label="false alerts / 100 staff-days", color="C3"
    )
    ax2b.bar_label(bars_b, fmt="%.2f", fontsize=8)
    ax2b.set_ylim(0, max(1.0, *rates) * 1.15)
    ax2b.set_ylabel("false alerts per 100 staff-days")
    handles = ax2.get_legend_handles_labels()
    handles_b = ax2b.get_legend_handles_labels()
    ax2.legend(handles[0] + handles_b[0], handles[1] + handles_b[1], loc="upper left", fontsize=8)
    ax2.set_title("Alert volume and false alerts")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    scorecards: list[Scorecard], meta: dict[str, Any], out_dir: Path
) -> dict[str, Path]:
    """Write report.json, summary.md and chart.png into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "report.json",
        "markdown": out_dir / "summary.md",
        "chart": out_dir / "chart.png",
    }
    doc = {"meta": meta, "scorecards": [sc.to_json() for sc in scorecards]}
    paths["json"].write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    paths["markdown"].write_text(summary_markdown(scorecards, meta), encoding="utf-8")
    write_chart(scorecards, paths["chart"])
    return paths


# -- several banks: the spread, the targets, the weekly rates --------------------------


@dataclass
class BankResult:
    """One bank of an evaluation: what it was (seeds, size, profile, counts) and its
    scorecards (pipeline variants first, then the baselines)."""

    info: dict[str, Any]
    cards: list[Scorecard]


Getter = Callable[[Scorecard], float | None]


def _band_precision(band: str) -> Getter:
    def get(sc: Scorecard) -> float | None:
        b = sc.by_severity.get(band)
        return None if b is None else b.precision

    return get


def _policy_recall(sc: Scorecard) -> float | None:
    value = sc.learning.get("policy_recall") if sc.learning else None
    return None if value is None else float(value)


# label, value, format of one value
SPREAD_METRICS: list[tuple[str, Getter, str]] = [
    ("incident recall", lambda sc: sc.incident_recall, "{:.2f}"),
    ("kinds found", lambda sc: float(sc.kinds_found), "{:.0f}"),
    ("alerts", lambda sc: float(sc.alerts), "{:.0f}"),
    ("alert precision", lambda sc: sc.alert_precision if sc.alerts else None, "{:.2f}"),
    ("false alerts / 100 staff-days", lambda sc: sc.false_alerts_per_100_staff_days, "{:.2f}"),
    ("false alerts above medium", lambda sc: float(sc.false_alerts_above_medium), "{:.0f}"),
    *((f"precision, {b}", _band_precision(b), "{:.2f}") for b in SEVERITIES),
    (
        "median TTD in-session (min)",
        lambda sc: _minutes(sc.median_ttd_within_session_seconds),
        "{:.1f}",
    ),
    (
        "median TTD low_and_slow (h)",
        lambda sc: _hours(sc.median_ttd_low_and_slow_seconds),
        "{:.1f}",
    ),
    ("policy incidents found during learning", _policy_recall, "{:.2f}"),
]

# The targets, on banks the tuning did not use, after the learning period.
TARGETS: list[tuple[str, Callable[[Scorecard], bool]]] = [
    ("recall >= 0.95", lambda sc: sc.incident_recall >= 0.95),
    ("every kind found", lambda sc: sc.kinds_found == sc.kinds_scored),
    ("precision >= 0.6", lambda sc: sc.alerts > 0 and sc.alert_precision >= 0.6),
    ("<= 0.5 false / 100 staff-days", lambda sc: sc.false_alerts_per_100_staff_days <= 0.5),
    ("no false alert above medium", lambda sc: sc.false_alerts_above_medium == 0),
    (
        # no scored incident of the kind: nothing to miss (recall counts undetected ones)
        "median TTD in-session <= 5 min",
        lambda sc: (
            sc.median_ttd_within_session_seconds is None
            or sc.median_ttd_within_session_seconds <= 300
        ),
    ),
    (
        "median TTD low_and_slow <= 1 day",
        lambda sc: (
            sc.median_ttd_low_and_slow_seconds is None
            or sc.median_ttd_low_and_slow_seconds <= 86400
        ),
    ),
]


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 60


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600


def spread(values: Sequence[float | None]) -> dict[str, float] | None:
    """Median, min and max of the values that exist (None when none does).

    >>> spread([0.5, None, 0.1, 0.9])
    {'median': 0.5, 'min': 0.1, 'max': 0.9, 'banks': 3}
    """
    got = sorted(v for v in values if v is not None)
    if not got:
        return None
    return {"median": statistics.median(got), "min": got[0], "max": got[-1], "banks": len(got)}


def missed_targets(sc: Scorecard) -> list[str]:
    return [name for name, ok in TARGETS if not ok(sc)]


def _names(results: Sequence[BankResult]) -> list[str]:
    names: list[str] = []
    for r in results:
        for sc in r.cards:
            if sc.name not in names:
                names.append(sc.name)
    return names


def _cards_named(results: Sequence[BankResult], name: str) -> list[Scorecard]:
    return [sc for r in results for sc in r.cards if sc.name == name]


def spread_json(results: Sequence[BankResult]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _names(results):
        cards = _cards_named(results, name)
        row: dict[str, Any] = {
            label: spread([get(sc) for sc in cards]) for label, get, _ in SPREAD_METRICS
        }
        kinds = _ordered({k for sc in cards for k in sc.per_kind}, MALICIOUS_KINDS)
        row["recall per kind"] = {
            k: spread([sc.per_kind[k].recall if k in sc.per_kind else None for sc in cards])
            for k in kinds
        }
        weeks = max((len(sc.weekly) for sc in cards), default=0)
        row["false / 100 staff-days by week"] = [
            spread(
                [
                    sc.weekly[w].false_per_100_staff_days if w < len(sc.weekly) else None
                    for sc in cards
                ]
            )
            for w in range(weeks)
        ]
        row["banks meeting every target"] = sum(1 for sc in cards if not missed_targets(sc))
        out[name] = row
    return out


def _spread_cell(sp: dict[str, float] | None, fmt: str) -> str:
    if sp is None:
        return "-"
    if sp["banks"] == 1 or sp["min"] == sp["max"]:
        return fmt.format(sp["median"])
    return f"{fmt.format(sp['median'])} [{fmt.format(sp['min'])}-{fmt.format(sp['max'])}]"


def evaluation_markdown(results: Sequence[BankResult], meta: dict[str, Any]) -> str:
    names = _names(results)
    sp = spread_json(results)
    n = len(results)
    lines = [
        f"# Evaluation: {n} bank{'s' if n != 1 else ''}, {meta.get('mode', '')}",
        "",
        f"Command: `{meta.get('command', '')}`",
        "",
        "## Across banks: median [min-max]",
        "",
        "| metric | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for label, _, fmt in SPREAD_METRICS:
        cells = [_spread_cell(sp[name][label], fmt) for name in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    kinds = _ordered({k for name in names for k in sp[name]["recall per kind"]}, MALICIOUS_KINDS)
    for k in kinds:
        cells = [_spread_cell(sp[name]["recall per kind"].get(k), "{:.2f}") for name in names]
        lines.append(f"| recall: {k} | " + " | ".join(cells) + " |")
    lines.append(
        "| banks meeting every target | "
        + " | ".join(f"{sp[name]['banks meeting every target']}/{n}" for name in names)
        + " |"
    )
    weeks = max((len(sp[name]["false / 100 staff-days by week"]) for name in names), default=0)
    if weeks:
        first = next(sc for r in results for sc in r.cards if sc.weekly)
        lines += [
            "",
            "## False alerts per 100 active staff-days, by week: median [min-max]",
            "",
            "Weeks from the first simulated day; alerts by the bank-local date of their "
            "first event (alerts of the learning period included).",
            "",
            "| week | first day | " + " | ".join(names) + " |",
            "|---|---|" + "---:|" * len(names),
        ]
        for w in range(weeks):
            row = first.weekly[w] if w < len(first.weekly) else None
            label = f"{w + 1}" + (
                f" ({row.learning_days} d learning)" if row and row.learning_days else ""
            )
            cells = []
            for name in names:
                series = sp[name]["false / 100 staff-days by week"]
                cells.append(_spread_cell(series[w] if w < len(series) else None, "{:.2f}"))
            lines.append(
                f"| {label} | {row.first_day if row else '-'} | " + " | ".join(cells) + " |"
            )
    lines += [
        "",
        "## Targets missed, per bank",
        "",
        "| bank | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for r in results:
        by_name = {sc.name: sc for sc in r.cards}
        cells = []
        for name in names:
            sc = by_name.get(name)
            missed = missed_targets(sc) if sc is not None else ["-"]
            cells.append("all met" if not missed else ", ".join(missed))
        lines.append(f"| {r.info['label']} | " + " | ".join(cells) + " |")
    lines += ["", "## Per bank"]
    for r in results:
        info = r.info
        prof = info["profile"]
        lines += [
            "",
            f"### {info['label']}: profile `{prof['name']}`, simulation seed "
            f"{info['simulation_seed']}",
            "",
            f"{info['size']['branches']} branches, {info['size']['staff']} staff, "
            f"{info['size']['customers']:,} customers, {info['size']['days']} days from "
            f"{info['size']['start']}; {info['events']:,} accesses, {info['incidents']} "
            f"incidents, {info['benign_lookalikes']} benign look-alikes, "
            f"{info['active_staff_days']:,} active staff-days.",
            "",
        ]
        lines += _markdown_table("metric", r.cards, metric_rows(r.cards))
    lines += [
        "",
        "Definitions: `docs/evaluation.md` and `simbank/evaluate/score.py`. With a learning "
        "period, figures cover the days after it; detected = some alert revision names an "
        "event of the incident; time to detect in event time.",
        "",
    ]
    return "\n".join(lines)


def write_evaluation_chart(results: Sequence[BankResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = _names(results)
    sp = spread_json(results)
    fig, axes = plt.subplots(2, 2, figsize=(15, 10), layout="constrained")
    ax1, ax2, ax3, ax4 = axes[0][0], axes[0][1], axes[1][0], axes[1][1]
    kinds = _ordered({k for n in names for k in sp[n]["recall per kind"]}, MALICIOUS_KINDS)
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        med = [(sp[name]["recall per kind"].get(k) or {}).get("median", 0.0) for k in kinds]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(kinds))]
        ax1.bar(xs, med, width, label=name)
    ax1.set_xticks(range(len(kinds)), kinds, rotation=30, ha="right")
    ax1.set_ylim(0, 1.05)
    ax1.set_title("Recall per kind (median across banks)")
    ax1.legend(fontsize=7)

    for i, name in enumerate(names):
        vals = [sc.false_alerts_per_100_staff_days for sc in _cards_named(results, name)]
        ax2.scatter([i] * len(vals), vals, alpha=0.7)
    ax2.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="target 0.5")
    ax2.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax2.set_yscale("symlog", linthresh=1.0)  # baselines are ~100x the pipeline
    ax2.set_ylabel("false alerts per 100 staff-days (symlog)")
    ax2.set_title("False-alert rate, one dot per bank")
    ax2.legend(fontsize=7)

    for name in names:
        series = sp[name]["false / 100 staff-days by week"]
        ys = [(w or {}).get("median", float("nan")) for w in series]
        ax3.plot(range(1, len(ys) + 1), ys, marker="o", label=name)
    ax3.set_yscale("symlog", linthresh=1.0)
    ax3.set_xticks(
        range(1, max((len(sp[n]["false / 100 staff-days by week"]) for n in names), default=1) + 1)
    )
    ax3.set_xlabel("week")
    ax3.set_ylabel("false alerts per 100 staff-days (median)")
    ax3.set_title("False-alert rate by week")
    ax3.legend(fontsize=7)

    for i, name in enumerate(names):
        med = [(sp[name][f"precision, {b}"] or {}).get("median", 0.0) for b in SEVERITIES]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(SEVERITIES))]
        ax4.bar(xs, med, width, label=name)
    ax4.set_xticks(range(len(SEVERITIES)), list(SEVERITIES))
    ax4.set_ylim(0, 1.05)
    ax4.set_title("Precision by severity band (median across banks)")
    ax4.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_evaluation(
    results: Sequence[BankResult], meta: dict[str, Any], out_dir: Path
) -> dict[str, Path]:
    """Write report.json, summary.md and chart.png for an evaluation of several banks."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "report.json",
        "markdown": out_dir / "summary.md",
        "chart": out_dir / "chart.png",
    }
    doc = {
        "meta": meta,
        "spread": spread_json(results),
        "banks": [{**r.info, "scorecards": [sc.to_json() for sc in r.cards]} for r in results],
    }
    paths["json"].write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    paths["markdown"].write_text(evaluation_markdown(results, meta), encoding="utf-8")
    write_evaluation_chart(results, paths["chart"])
    return paths
