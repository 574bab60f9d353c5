"""Small inline SVG charts rendered on the server. Pure, no I/O, no script.

Colours come from classes in ``static/console.css`` (``sev-*``, ``bar-*``), so
the pages keep a strict Content-Security-Policy. Every text is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

from pipeline.console.workflow import SEVERITY_RANK


def _num(v: float) -> str:
    """
    >>> _num(3.0), _num(2.456), _num(1234.5)
    ('3', '2.46', '1234')
    """
    if abs(v - round(v)) < 1e-9 or abs(v) >= 100:
        return f"{round(v):d}"
    return f"{v:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True, slots=True)
class FeatureBars:
    feature: str
    value: float
    baseline: float | None  # the employee's usual value, when the alert carries it
    peer_baseline: float | None  # the peer group's usual value
    contribution: float | None


def feature_bars(top_features: Sequence[Mapping[str, object]]) -> list[FeatureBars]:
    """The model's top features as the contract gives them: ``baseline`` is the peer
    group's usual value, the optional ``own_baseline`` the employee's."""
    out = []
    for f in top_features:
        value = _float(f.get("value"))
        if value is None:
            continue
        out.append(
            FeatureBars(
                feature=str(f.get("feature", "?")),
                value=value,
                baseline=_float(f.get("own_baseline")),
                peer_baseline=_float(f.get("baseline")),
                contribution=_float(f.get("contribution")),
            )
        )
    return out


def _float(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def feature_chart(bars: Sequence[FeatureBars], width: int = 560) -> Markup:
    """One group of horizontal bars per feature: the hour's value, the peers' usual
    value and (when the alert carries it) the employee's; each group on its own scale."""
    if not bars:
        return Markup("")
    label_w, row_h, gap = 170, 14, 14
    plot_w = width - label_w - 60
    series = [("value", "this hour", "bar-value")]
    if any(b.baseline is not None for b in bars):
        series.append(("baseline", "employee's usual", "bar-staff"))
    if any(b.peer_baseline is not None for b in bars):
        series.append(("peer_baseline", "peers' usual", "bar-peer"))
    group_h = row_h * len(series) + gap
    height = 24 + group_h * len(bars)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg">',
        "<title>Top model features against the usual values</title>",
    ]
    x = label_w
    for _key, label, cls in series:
        parts.append(f'<rect class="{cls}" x="{x}" y="4" width="10" height="10"/>')
        parts.append(f'<text class="legend" x="{x + 14}" y="13">{escape(label)}</text>')
        x += 14 + 7 * len(label) + 18
    for i, b in enumerate(bars):
        y0 = 24 + i * group_h
        values = {"value": b.value, "baseline": b.baseline, "peer_baseline": b.peer_baseline}
        top = max([v for v in values.values() if v is not None] + [1e-9])
        share = "" if b.contribution is None else f" ({b.contribution:.0%})"
        parts.append(
            f'<text class="label" x="0" y="{y0 + row_h}">{escape(b.feature)}{escape(share)}</text>'
        )
        for j, (key, label, cls) in enumerate(series):
            v = values[key]
            y = y0 + j * row_h
            if v is None:
                parts.append(f'<text class="muted" x="{label_w}" y="{y + 11}">n/a</text>')
                continue
            w = max(1.0, plot_w * max(v, 0.0) / top)
            parts.append(
                f'<rect class="{cls}" x="{label_w}" y="{y + 2}" width="{w:.1f}" '
                f'height="{row_h - 4}"><title>{escape(label)}: {_num(v)}</title></rect>'
            )
            parts.append(
                f'<text class="value" x="{label_w + w + 4:.1f}" y="{y + 11}">{_num(v)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    at: datetime
    severity: str
    risk: float
    label: str


def timeline_chart(
    points: Sequence[TimelinePoint], start: datetime, end: datetime, width: int = 720
) -> Markup:
    """Incidents over time: one dot per alert at its last event, height = risk,
    colour = severity."""
    if not points:
        return Markup("")
    height, pad_l, pad_b, pad_t = 140, 34, 22, 8
    span = max((end - start).total_seconds(), 1.0)
    plot_w, plot_h = width - pad_l - 8, height - pad_b - pad_t
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg">',
        "<title>Alerts over time (height: risk score)</title>",
    ]
    for risk in (0, 50, 100):
        y = pad_t + plot_h * (1 - risk / 100)
        parts.append(
            f'<line class="grid" x1="{pad_l}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(f'<text class="axis" x="2" y="{y + 4:.1f}">{risk}</text>')
    parts.append(f'<text class="axis" x="{pad_l}" y="{height - 6}">{start:%Y-%m-%d}</text>')
    parts.append(
        f'<text class="axis" x="{width - 8}" y="{height - 6}" '
        f'text-anchor="end">{end:%Y-%m-%d}</text>'
    )
    for p in sorted(points, key=lambda p: SEVERITY_RANK.get(p.severity, 0)):
        x = pad_l + plot_w * (p.at - start).total_seconds() / span
        y = pad_t + plot_h * (1 - min(max(p.risk, 0.0), 100.0) / 100)
        r = 3 + SEVERITY_RANK.get(p.severity, 1)
        parts.append(
            f'<circle class="sev-{escape(p.severity)}" cx="{x:.1f}" cy="{y:.1f}" r="{r}">'
            f"<title>{escape(p.label)}</title></circle>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def histogram_chart(
    counts: Sequence[float], labels: Sequence[str], title: str, width: int = 480
) -> Markup:
    """Vertical bars (e.g. accesses per hour of day); labels every few bars."""
    if not counts or not any(counts):
        return Markup("")
    height, pad_b = 110, 18
    n = len(counts)
    bar_w = width / n
    top = max(counts)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
    ]
    step = max(1, n // 8)
    for i, c in enumerate(counts):
        h = (height - pad_b - 4) * c / top
        x = i * bar_w
        parts.append(
            f'<rect class="bar-value" x="{x + 1:.1f}" y="{height - pad_b - h:.1f}" '
            f'width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}">'
            f"<title>{escape(labels[i])}: {_num(c)}</title></rect>"
        )
        if i % step == 0:
            parts.append(
                f'<text class="axis" x="{x + 1:.1f}" y="{height - 4}">{escape(labels[i])}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
