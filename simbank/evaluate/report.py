"""Evaluation report: ``report.json``, ``summary.md`` and ``chart.png``.

The table compares scorecards side by side (one column per detector); the
metric definitions are in :mod:`simbank.evaluate.score`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from simbank.evaluate.score import TTD_TARGET_SECONDS, Scorecard
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
    ]
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
