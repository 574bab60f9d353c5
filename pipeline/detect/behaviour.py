"""Per-employee behaviour in event time: daily counts against usual counts, windows, novelty.

Pure and synchronous. :class:`Behaviour` is part of the per-employee state
(``pipeline.core.state``, msgpack, never pickle); every collection in it has
a bound, named below.

* **Soft signals judged by improbability.** For every soft reason code
  (catalogue family ``soft``) the employee's count *today* (bank day: distinct
  customers, so that the actions of one visit count once) is
  compared with the count they and their peers usually have per day: the
  employee's own exponentially weighted daily mean and variance (memory
  ~``1/BASELINE_ALPHA`` active days), shrunk towards their peer group's
  (``PRIOR_DAYS`` pseudo-days; the role-at-branch group when it has
  ``MIN_PEER_STAFF_DAYS`` staff-days in the peer window, else the role, else
  the catalogue's prior). With ``S(n) = -log10 P(N ≥ n)``
  (:mod:`pipeline.detect.surprise`) and ``F = SURPRISE_FLOOR``, the n-th
  occurrence adds ``weight x (max(0, S(n) - F) - max(0, S(n-1) - F))`` risk:
  what someone does every day adds nothing, an ordinary bad day (one in
  three) adds nothing either, a day far beyond the usual adds a lot.
* **Busy days.** The usual counts (and the week's) are scaled by how much more
  routine work (accesses no rule fired on, ``WORK``) the employee has done today than
  usual, never by less than 1 (:func:`_busy`): a day of twice the walk-ins has twice
  the look-ups too.
* **The day.** The fast accumulator forgets within hours, so a count that becomes
  improbable only by the evening (a look-up every hour or two) would never add up
  there. :meth:`Behaviour.day_level` is today's most improbable soft code, undecayed,
  as a share of ``DAY_SURPRISE``: one code's day as improbable as one in ~1,000
  opens an incident however it was spread over the day (the engine passes it to the
  slow accumulator). One code, not their sum: several codes each a little unusual
  on the same day are an ordinary busy day.
* **The week.** The same test over the last ``WEEK_DAYS`` calendar days:
  the window's count against its active days times the usual daily count
  (a slower baseline, ``SLOW_ALPHA``, shrunk towards the peers'), weighted
  the same way. It is the slow evidence of the incident tracker
  (``Signal.slow``, :meth:`Behaviour.slow_level`): a few more a day than
  usual, for days on end, is as improbable as a burst. The usual count is an
  estimate, and over a week its error counts as much as the days' own variation
  (:func:`_week_level`).
* **Volume.** Distinct unassigned customers within a sliding hour
  (``WINDOW_S``, at most ``WINDOW_CAP``) against the usual hourly peak
  (``bulk_access``, from ``BULK_MIN`` customers on); exported or printed
  records within the hour against the usual daily exports (``export_volume``).
* **Novelty.** A branch, terminal, /24 network, channel or action not used
  within ``FIRST_SEEN_HORIZON_S`` (at most ``FIRST_SEEN_CAP`` remembered) is a
  ``first_seen`` occurrence, counted like any soft code, once the employee
  has ``MIN_HISTORY`` accesses.
* **Learning.** Baselines learn from completed days; occurrences that joined
  an open incident are not learned (nothing is learned from what was flagged),
  and a day's count is learned at most ``CLIP_SD`` deviations above its
  expectation (the daily baseline: at least 1; the slow one: no such floor, but
  up to the peers' ``CLIP_SD`` deviations, and never more than the daily one
  learns), so misuse spread thinly over many days does not become usual while
  a lasting change of duties is learned within weeks.
* **Model.** The group model (:mod:`pipeline.detect.model`) corroborates:
  its evidence is at most ``MODEL_DAY_CAP`` risk points per bank day
  (:func:`model_evidence`), less than an incident needs.
* **Peers.** Each completed day leaves a :class:`DaySummary` (at most
  ``HISTORY_DAYS``), from which the partition's owner publishes the day's peer
  statistics (``pipeline.peers``); hourly feature samples feed the group model.
* **Feedback.** A benign verdict halves the weight of the alert's soft,
  volume and model codes for that employee, at most once per alert
  (``FEEDBACK_IDS`` remembered), never below ``FEEDBACK_FLOOR``; policy codes
  are never muted. A true-positive verdict restores them.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from typing import Final

from msgspec import Struct, field

from pipeline.contract.records import EXPORT_ACTIONS
from pipeline.detect.catalogue import CATALOGUE, POLICY_CODES, SOFT_CODES, spec
from pipeline.detect.shift import local_minute, outside_shift
from pipeline.detect.signals import Signal
from pipeline.detect.surprise import Baseline, blend, surprise
from pipeline.peers.book import PeerView
from pipeline.peers.days import group_keys
from pipeline.reference.state import Enriched

WINDOW_S: Final = 3600.0
WINDOW_CAP: Final = 2000
FIRST_SEEN_HORIZON_S: Final = 30 * 86400.0
FIRST_SEEN_CAP: Final = 300
MIN_HISTORY: Final = 200
BASELINE_ALPHA: Final = 0.1
PRIOR_DAYS: Final = 3.0
MIN_PEER_STAFF_DAYS: Final = 20
RECENT_CAP: Final = 1000
EXPORTS_CAP: Final = 500
SAMPLES_CAP: Final = 24
DISTINCT_CAP: Final = 300  # customers remembered per soft code and day
SURPRISE_FLOOR: Final = 0.5  # surprise (decades) of an ordinary day: only what is beyond weighs
DAY_SURPRISE: Final = 3.0  # one soft code's day this improbable (1 in ~1,000) opens an incident
HISTORY_DAYS: Final = 7  # completed days kept: the weekly window, and the peer days
WEEK_DAYS: Final = 7
SLOW_ALPHA: Final = 0.05  # the weekly statistic's reference: ~20 active days of memory
SLOW_MEMORY: Final = (2.0 - SLOW_ALPHA) / SLOW_ALPHA  # the slow mean's effective days
CLIP_SD: Final = 3.0  # a day's count is learned at most this many deviations above usual
SOFT_SET: Final = frozenset(SOFT_CODES)
OFF_SHIFT_CODE: Final = "off_shift_access"
OTHER_BRANCH_CODE: Final = "other_branch_customer_access"
# Actions done for a customer who is present (details changed at their request, a
# statement handed over): another branch's customer served at the counter, not looked up.
# Such a customer leaves today's other-branch count (what was already weighed stays
# weighed), so the count and its baselines are of customers only looked at. Both actions
# leave a trace (a change to the customer's record; a printout, itself counted by
# statement_export_unassigned). Not view_id_document: a read that any look-up could add
# to pass as a visit.
SERVED_ACTIONS: Final = frozenset({"update_contact_info", "print_statement"})
SERVED: Final = "_served"  # key in Behaviour.distinct of today's served other-branch customers
NIGHT_MARGIN_MIN: Final = 240  # off-shift this far from the shift counts customers, else hours
MODEL_DAY_CAP: Final = 25.0  # risk points of model evidence per bank day
BULK_MIN: Final = 10
EXPORT_FLOOR: Final = 500.0
EXPORT_FACTOR: Final = 5.0
FEEDBACK_FACTOR: Final = 0.5
FEEDBACK_FLOOR: Final = 0.25
FEEDBACK_IDS: Final = 200
MODEL_EVERY_S: Final = 600.0
CONTEXT_REFRESH_S: Final = 3600.0  # first-seen times of an unchanged context refresh hourly
ROLES_EXEMPT_FROM_VOLUME: Final = frozenset({"operations"})
PEAK: Final = "_peak"  # baseline key of the daily peak of unassigned customers per hour
EXPORTS: Final = "_exports"  # baseline key of the daily exported records
PEAK_PRIOR: Final = 4.0
EXPORTS_PRIOR: Final = 100.0
WORK: Final = "_work"  # count key of the day's routine accesses (no rule fired)
WORK_MIN_DAYS: Final = 3  # active days of routine work before a busy day explains more

# Flags of a recent access (bits).
UNASSIGNED, OTHER_BRANCH, SENSITIVE, OFF_SHIFT, DENIED = 1, 2, 4, 8, 16
FEATURES: Final = (
    "events",
    "distinct_customers",
    "unassigned_customers",
    "other_branch_customers",
    "sensitive_customers",
    "exported_records",
    "off_shift_events",
    "denied_events",
)


class Recent(Struct, array_like=True, gc=False):
    at: float
    customer: str
    flags: int
    records: float


class ExportMark(Struct, array_like=True, gc=False):
    at: float
    records: float


class HourSample(Struct, array_like=True, gc=False):
    hour: int  # UTC hour number of the window's end
    x: list[float]


class Expect(Struct, array_like=True, gc=False):
    """Today's usual count of one code: blended mean and variance, own and peer means."""

    mean: float
    var: float
    own: float
    peer: float
    peer_var: float = 0.0


class DaySummary(Struct, gc=False):
    """One completed (or current) bank day of one employee, for the peer statistics."""

    day: int
    groups: list[str]
    counts: dict[str, float]  # soft codes (unflagged), PEAK, EXPORTS
    samples: list[HourSample]


class Behaviour(Struct, gc=False):
    day: int = -1
    groups: list[str] = field(default_factory=list)
    counts: dict[str, float] = field(default_factory=dict)  # today, unflagged (learned)
    seen: dict[str, int] = field(default_factory=dict)  # today, all (judged)
    distinct: dict[str, list[str]] = field(default_factory=dict)  # today's customers per code
    spent: dict[str, float] = field(default_factory=dict)  # today's surprise already in risk
    model_spent: float = 0.0  # today's model evidence already in risk
    expect: dict[str, Expect] = field(default_factory=dict)  # today's usual counts
    baselines: dict[str, Baseline] = field(default_factory=dict)
    slow_baselines: dict[str, Baseline] = field(default_factory=dict)
    week_before: dict[str, float] = field(default_factory=dict)  # counts of the window's past days
    week_days: int = 0  # active days of the window before today
    week: dict[str, float] = field(default_factory=dict)  # weekly evidence per code (weighted)
    days: int = 0
    window: dict[str, float] = field(default_factory=dict)
    bulk_spent: float = 0.0
    exports: list[ExportMark] = field(default_factory=list)
    export_level: float = 0.0
    first_seen: dict[str, float] = field(default_factory=dict)
    events: int = 0
    recent: list[Recent] = field(default_factory=list)
    sample_hour: int = -1
    samples: list[HourSample] = field(default_factory=list)
    features: Baseline | None = None  # hours observed (n) for the own feature means
    feature_means: list[float] = field(default_factory=list)
    last_model_at: float = 0.0
    last_context: tuple[str, str, str, str | None, str | None] | None = None
    context_at: float = 0.0
    feedback: dict[str, float] = field(default_factory=dict)
    feedback_ids: list[str] = field(default_factory=list)
    history: list[DaySummary] = field(default_factory=list)

    # -- days -----------------------------------------------------------------
    def summary(self) -> DaySummary:
        counts = dict(self.counts)
        return DaySummary(self.day, list(self.groups), counts, list(self.samples))

    def roll(self, day: int, groups: list[str], view: PeerView | None) -> bool:
        """Start bank ``day`` (a later one); False for an access of an earlier day."""
        if day <= self.day:
            return day == self.day
        if self.day >= 0:
            if self.history:
                # Hour samples are read only when the partition publishes their day, which
                # it does before any of its staff starts a later one (engine._ready): an
                # older day keeps its counts (the week) and sheds most of the state's size.
                self.history[-1].samples = []
            self.history.append(self.summary())
            del self.history[:-HISTORY_DAYS]
            for code in (*SOFT_CODES, PEAK, EXPORTS, WORK):
                x, slow_x = _clipped(self, code)
                b = self.baselines.get(code)
                if b is None:
                    b = self.baselines[code] = Baseline()
                b.update(x, BASELINE_ALPHA)
                if code in SOFT_SET:
                    sb = self.slow_baselines.get(code)
                    if sb is None:
                        sb = self.slow_baselines[code] = Baseline()
                    sb.update(slow_x, SLOW_ALPHA)
            self.days += 1
        self.day = day
        self.groups = groups
        self.counts = {}
        self.seen = {}
        self.distinct = {}
        self.spent = {}
        self.model_spent = 0.0
        self.samples = []
        self.expect = _expectations(self, groups, view)
        window = [h for h in self.history if h.day > day - WEEK_DAYS]
        self.week_days = len(window)
        before: dict[str, float] = {}
        for h in window:
            for code in (*SOFT_CODES, WORK):
                c = h.counts.get(code)
                if c:
                    before[code] = before.get(code, 0.0) + c
        self.week_before = before
        self.week = {}
        for code in before:
            if code in SOFT_SET:
                self.week[code] = _week_level(self, code, 0)
        return True

    def slow_level(self) -> float:
        """The weekly evidence: how improbable each soft code's count over the last seven
        active days is, beyond ordinary variation, weighted."""
        return sum(self.week.values())

    def day_level(self) -> float:
        """Today's strongest soft evidence, as a share of what opens an incident: the most
        improbable soft code's count today, beyond ordinary variation, against
        ``DAY_SURPRISE`` (1.0: as improbable as that, however it was spread over the day)."""
        best = 0.0
        for code, s in self.spent.items():
            if s > SURPRISE_FLOOR:
                x = (s - SURPRISE_FLOOR) * self.feedback.get(code, 1.0)
                if x > best:
                    best = x
        return best / (DAY_SURPRISE - SURPRISE_FLOOR)

    def day_summary(self, day: int) -> DaySummary | None:
        if day == self.day:
            return self.summary()
        for s in self.history:
            if s.day == day:
                return s
        return None

    # -- feedback ---------------------------------------------------------------
    def apply_feedback(self, alert_id: str, verdict: str, codes: list[str]) -> bool:
        """Apply a verdict once per alert; False when already applied or nothing to apply."""
        if alert_id in self.feedback_ids:
            return False
        self.feedback_ids.append(alert_id)
        del self.feedback_ids[:-FEEDBACK_IDS]
        changed = False
        for code in codes:
            if code in POLICY_CODES or code not in CATALOGUE:
                continue
            scale = self.feedback.get(code, 1.0)
            new = (
                min(1.0, scale / FEEDBACK_FACTOR)
                if verdict == "true_positive"
                else max(FEEDBACK_FLOOR, scale * FEEDBACK_FACTOR)
            )
            if new != scale:
                changed = True
                if new == 1.0:
                    self.feedback.pop(code, None)
                else:
                    self.feedback[code] = new
        return changed


def _expectations(b: Behaviour, groups: list[str], view: PeerView | None) -> dict[str, Expect]:
    out: dict[str, Expect] = {}
    for code in (*SOFT_CODES, PEAK, EXPORTS):
        prior = (
            PEAK_PRIOR if code == PEAK else EXPORTS_PRIOR if code == EXPORTS else spec(code).prior
        )
        peer_mean, peer_var = prior, prior
        if view is not None:
            for g in reversed(groups):  # role at branch first, then role
                if view.staff_days(g) >= MIN_PEER_STAFF_DAYS:
                    peer_mean, peer_var = view.mean(g, code), view.var(g, code)
                    break
        own = b.baselines.get(code)
        mean, var = blend(own, peer_mean, peer_var, PRIOR_DAYS)
        out[code] = Expect(
            mean, var, own.mean if own is not None and own.n else -1.0, peer_mean, peer_var
        )
    return out


def _clipped(b: Behaviour, code: str) -> tuple[float, float]:
    """The day's count of ``code`` as the daily and the slow baseline learn it: at most
    ``CLIP_SD`` standard deviations above the day's expectation (for the daily baseline at
    least 1). An unusual day moves the baseline a little, so a sustained change of duties
    is learned within weeks, while misuse spread thinly over many days does not teach the
    baseline that it is normal. The slow baseline (the week's reference) has no floor of
    1: where the employee and their peers hardly ever do it, a day's occurrence is learned
    only up to what is ordinary for either (never more than the daily baseline learns),
    and the slow baseline follows the daily one as that learns a new duty."""
    x = b.counts.get(code, 0.0)
    ex = b.expect.get(code)
    if ex is None:
        return x, x
    cap = ex.mean + CLIP_SD * math.sqrt(ex.var)
    peer_cap = ex.peer + CLIP_SD * math.sqrt(ex.peer_var)
    slow_cap = cap if cap > peer_cap else peer_cap
    if cap < 1.0:
        cap = 1.0
    if slow_cap > cap:
        slow_cap = cap
    return (x if x < cap else cap), (x if x < slow_cap else slow_cap)


def _week_level(b: Behaviour, code: str, today: int) -> float:
    """Weighted weekly surprise of ``code``: the window's counts (its earlier active days
    and ``today``) against its days times the usual daily count (the slow baseline, shrunk
    towards the peers'). The usual count is itself an estimate, from the slow baseline's
    days (at most its memory, ``SLOW_MEMORY``) and the peers' ``PRIOR_DAYS``: over ``k``
    days its error adds ``k² var / days`` to the sum's variance, as much as the days' own
    ``k var`` once ``k`` nears the days it was learned from. Without it a week a little
    above a mean learned from ten days looked as improbable as a burst."""
    ex = b.expect.get(code)
    if ex is None:
        return 0.0
    k = b.week_days + 1
    slow = b.slow_baselines.get(code)
    mean, var = blend(slow, ex.peer, ex.peer_var, PRIOR_DAYS)
    n = b.week_before.get(code, 0.0) + today
    busy = _busy(b, b.week_before.get(WORK, 0.0) + b.counts.get(WORK, 0.0), k)
    # k days' variance, plus the usual mean's own: it is an estimate from ``days`` days.
    days = (min(slow.n, SLOW_MEMORY) if slow is not None else 0) + PRIOR_DAYS
    s = surprise(n, k * mean * busy, (k + k * k / days) * var * busy)
    return spec(code).weight * max(0.0, s - SURPRISE_FLOOR)


def _busy(b: Behaviour, work: float, days: int) -> float:
    """How much more routine work (accesses no rule fired on) ``days`` active days held
    than the employee usually does in as many: at least 1. A day of twice the usual
    walk-ins or portfolio work has about twice the usual unassigned look-ups and
    statements too, so the usual counts are scaled by it. Never below 1: a quiet
    morning does not make the day's first look-up improbable. What is judged never adds
    to it (a harvest, a look-up, a printout fire rules), so misuse cannot explain itself."""
    wb = b.baselines.get(WORK)
    if wb is None or wb.n < WORK_MIN_DAYS or wb.mean <= 0.0:
        return 1.0
    k = work / (days * wb.mean)
    return k if k > 1.0 else 1.0


def _net(ip: str | None) -> str | None:
    if not ip:
        return None
    if ":" in ip:  # IPv6: first four groups
        return ":".join(ip.split(":")[:4])
    return ip.rsplit(".", 1)[0]


@lru_cache(maxsize=4096)
def _novelty_keys(context: tuple[str, str, str, str | None, str | None]) -> tuple[str, ...]:
    """The first-seen keys of an access context (branch, channel, action, terminal,
    source IP): ``branch:…``, ``channel:…``, ``action:…``, and ``terminal:…`` and
    ``network:…`` when known. Cached: a bank has a few thousand contexts, the context of
    most accesses differs from the employee's previous one, and the cached keys come with
    their hashes computed for the first-seen lookups."""
    branch, channel, action, terminal, ip = context
    keys = [f"branch:{branch}", f"channel:{channel}", f"action:{action}"]
    if terminal:
        keys.append(f"terminal:{terminal}")
    net = _net(ip)
    if net:
        keys.append(f"network:{net}")
    return tuple(keys)


def window_features(b: Behaviour) -> list[float]:
    """The employee's last hour as the model's features, in FEATURES order."""
    recent = b.recent
    customers = {r.customer for r in recent}
    customers.discard("")
    unassigned: set[str] = set()
    other: set[str] = set()
    sensitive: set[str] = set()
    exported = off_shift = denied = 0.0
    # Most of an hour's accesses are routine (no flag, nothing exported): only the rest
    # adds to the other features (adding their zeros would change no sum).
    for r in [r for r in recent if r.flags or r.records]:
        c = r.customer
        flags = r.flags
        if c:
            if flags & UNASSIGNED:
                unassigned.add(c)
            if flags & OTHER_BRANCH:
                other.add(c)
            if flags & SENSITIVE:
                sensitive.add(c)
        exported += r.records
        if flags & OFF_SHIFT:
            off_shift += 1.0
        if flags & DENIED:
            denied += 1.0
    return [
        float(len(recent)),
        float(len(customers)),
        float(len(unassigned)),
        float(len(other)),
        float(len(sensitive)),
        exported,
        off_shift,
        denied,
    ]


def sample_hash(staff_id: str, day: int, hour: int) -> int:
    """A deterministic 63-bit hash ordering staff-hours for the peer samples."""
    digest = hashlib.blake2b(f"{staff_id}|{day}|{hour}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _sample_hour(b: Behaviour, at: float) -> None:
    """At the first access of a new clock hour, keep the trailing hour as a sample."""
    hour = int(at // 3600.0)
    if hour == b.sample_hour:
        return
    b.sample_hour = hour
    if not b.recent:
        return
    x = window_features(b)
    if len(b.samples) < SAMPLES_CAP:
        b.samples.append(HourSample(hour, x))
    fb = b.features
    if fb is None:
        fb = b.features = Baseline()
        b.feature_means = [0.0] * len(FEATURES)
    fb.n += 1
    a = max(BASELINE_ALPHA / 10.0, 1.0 / fb.n)
    b.feature_means = [m + a * (v - m) for m, v in zip(b.feature_means, x, strict=True)]


def _record_recent(b: Behaviour, e: Enriched, off_shift: bool) -> None:
    ev = e.event
    at = e.at
    flags = 0
    if ev.customer_id is not None and not e.assigned:
        flags |= UNASSIGNED
        if e.home_branch_id is not None and e.home_branch_id != e.staff_branch_id:
            flags |= OTHER_BRANCH
    if e.sensitivity is not None and e.sensitivity != "normal":
        flags |= SENSITIVE
    if off_shift:
        flags |= OFF_SHIFT
    if ev.outcome == "denied":
        flags |= DENIED
    records = float(ev.record_count) if ev.action in EXPORT_ACTIONS else 0.0
    recent = b.recent
    horizon = at - WINDOW_S
    if recent and recent[0].at < horizon:
        i = 0
        n = len(recent)
        while i < n and recent[i].at < horizon:
            i += 1
        del recent[:i]
    if len(recent) < RECENT_CAP:
        recent.append(Recent(at, ev.customer_id or "", flags, records))


def model_evidence(b: Behaviour, weight: float) -> float:
    """The part of an anomalous hour's ``weight`` that still counts today: the model
    corroborates, it does not accuse, so its evidence of one bank day is at most
    ``MODEL_DAY_CAP`` risk points (less than an incident needs)."""
    room = MODEL_DAY_CAP - b.model_spent
    w = weight if weight < room else room
    if w <= 0.0:
        return 0.0
    b.model_spent += w
    return w


def model_due(b: Behaviour, e: Enriched) -> bool:
    """Whether to score this access with the group model: a non-routine access
    (unassigned, or an export) at most every MODEL_EVERY_S of event time."""
    ev = e.event
    if e.at - b.last_model_at < MODEL_EVERY_S:
        return False
    if (ev.customer_id is not None and not e.assigned) or ev.action in EXPORT_ACTIONS:
        b.last_model_at = e.at
        return True
    return False


def _soft(b: Behaviour, code: str, summary: str, flagged: bool, key: str | None) -> Signal | None:
    """One occurrence of a soft code: count it and return its weight of surprise.

    Counts are of distinct customers per day (``key``): the actions of one visit to one
    customer are one occurrence, not four."""
    if key is not None:
        known = b.distinct.get(code)
        if known is None:
            known = b.distinct[code] = []
        if key in known:
            return None
        if len(known) < DISTINCT_CAP:
            known.append(key)
    n = b.seen.get(code, 0) + 1
    b.seen[code] = n
    if not flagged:
        b.counts[code] = b.counts.get(code, 0.0) + 1.0
    ex = b.expect.get(code)
    if ex is None:
        return None
    scale = b.feedback.get(code, 1.0)
    # The week: how improbable the count over the last seven active days is.
    level = _week_level(b, code, n) * scale
    slow = level - b.week.get(code, 0.0)
    if slow > 0.0:
        b.week[code] = level
    else:
        slow = 0.0
    busy = _busy(b, b.counts.get(WORK, 0.0), 1)
    s = surprise(n, ex.mean * busy, ex.var * busy)
    spent = b.spent.get(code, 0.0)
    if s > spent:
        b.spent[code] = s
    # Only what is beyond ordinary variation weighs: a one-in-ten day is any day.
    gained = max(0.0, s - SURPRISE_FLOOR) - max(0.0, spent - SURPRISE_FLOOR)
    if gained <= 0.0 and slow <= 0.0:
        return None
    weight = spec(code).weight * max(0.0, gained) * scale
    own = f"{ex.own:.1f}" if ex.own >= 0 else "n/a"
    week = b.week_before.get(code, 0.0) + n
    volume = f", x{busy:.1f} for today's volume of routine work" if busy > 1.05 else ""
    return Signal(
        code,
        weight,
        f"{summary}; {n} today (usual {ex.mean:.1f}/day: own {own}, peers {ex.peer:.1f}"
        f"{volume}; p={10**-s:.2g}), {week:.0f} in {b.week_days + 1} active days",
        slow,
    )


def _served(b: Behaviour, customer: str | None, flagged: bool) -> None:
    """Another branch's customer served in person today: out of today's count (once)."""
    if customer is None:
        return
    served = b.distinct.get(SERVED)
    if served is None:
        served = b.distinct[SERVED] = []
    if customer in served or len(served) >= DISTINCT_CAP:
        return
    served.append(customer)
    known = b.distinct.get(OTHER_BRANCH_CODE)
    if known is None or customer not in known:
        if known is None:
            known = b.distinct[OTHER_BRANCH_CODE] = []
        if len(known) < DISTINCT_CAP:
            known.append(customer)  # served from the first access: never counted
        return
    n = b.seen.get(OTHER_BRANCH_CODE, 0)
    if n > 0:
        b.seen[OTHER_BRANCH_CODE] = n - 1
    c = b.counts.get(OTHER_BRANCH_CODE, 0.0)
    if not flagged and c >= 1.0:
        b.counts[OTHER_BRANCH_CODE] = c - 1.0


def _at_night(e: Enriched) -> bool:
    """Further than ``NIGHT_MARGIN_MIN`` from the employee's shift (local time)."""
    return outside_shift(local_minute(e), e.shift_start, e.shift_end, NIGHT_MARGIN_MIN)


def observe(
    b: Behaviour,
    e: Enriched,
    rule_signals: list[Signal],
    off_shift: bool,
    flagged: bool,
) -> list[Signal]:
    """Update the employee's behaviour with one access (its day already rolled); return the
    weighted signals: policy signals at catalogue weight, soft and volume ones by surprise.

    ``flagged``: the employee has an open incident; then nothing is learned from this access.
    """
    ev = e.event
    at = e.at
    b.events += 1
    if int(at // 3600.0) != b.sample_hour:  # (most accesses: the same hour, nothing to do)
        _sample_hour(b, at)
    _record_recent(b, e, off_shift)
    if not rule_signals and ev.customer_id is not None:  # routine work (see _busy),
        b.counts[WORK] = b.counts.get(WORK, 0.0) + 1.0  # counted flagged or not
    out: list[Signal] = []
    for s in rule_signals:
        if s.code in POLICY_CODES:
            out.append(s)
        else:
            key = ev.customer_id
            if s.code == OTHER_BRANCH_CODE and ev.action in SERVED_ACTIONS:
                _served(b, key, flagged)
                continue
            if s.code == OFF_SHIFT_CODE and not _at_night(e):
                # Work in the hours around the shift (an early start, a Saturday rota) is one
                # decision, whatever the number of customers served: it counts clock hours.
                key = f"h{int(at // 3600.0)}"
            sig = _soft(b, s.code, s.summary, flagged, key)
            if sig is not None:
                out.append(sig)

    # novelty (the same context as the previous access, within the hour, is known)
    context = (ev.branch_id, ev.channel, ev.action, ev.terminal_id, ev.source_ip)
    if context == b.last_context and at - b.context_at < CONTEXT_REFRESH_S:
        return _volume(b, e, out, flagged)
    b.last_context = context
    b.context_at = at
    fresh = []
    first_seen = b.first_seen
    history = b.events > MIN_HISTORY
    for key in _novelty_keys(context):
        last = first_seen.get(key)
        if last is None:
            first_seen[key] = at
            if history:
                fresh.append(key.replace(":", " ", 1))
        elif at > last:  # (a late access leaves a later time as it is)
            first_seen[key] = at
            if at - last > FIRST_SEEN_HORIZON_S and history:
                fresh.append(key.replace(":", " ", 1))
    if len(first_seen) > FIRST_SEEN_CAP:
        for key, _ in sorted(first_seen.items(), key=lambda kv: kv[1])[
            : len(first_seen) - FIRST_SEEN_CAP
        ]:
            del first_seen[key]
    if fresh:
        sig = _soft(b, "first_seen", "first " + ", ".join(fresh), flagged, None)
        if sig is not None:
            out.append(sig)
    return _volume(b, e, out, flagged)


def _volume(b: Behaviour, e: Enriched, out: list[Signal], flagged: bool) -> list[Signal]:
    """Distinct unassigned customers and exported records within the sliding hour."""
    if e.role in ROLES_EXEMPT_FROM_VOLUME:
        return out
    ev = e.event
    at = e.at
    # distinct unassigned customers within the hour
    horizon = at - WINDOW_S
    window = b.window
    # Kept in time order, so the hour's expired customers are at the front. (A state of
    # an earlier release may hold its window in first-seen order; a stale customer there
    # leaves once those before it have left or been seen again, within the hour.)
    while window:
        first = next(iter(window))
        if window[first] >= horizon:
            break
        del window[first]
    if ev.customer_id is not None and not e.assigned and len(window) < WINDOW_CAP:
        c = ev.customer_id
        if not window or at >= next(reversed(window.values())):
            window.pop(c, None)  # seen again: to the end, with its new time
            window[c] = at
        else:  # a late access (rare): back into time order
            window[c] = at
            b.window = window = dict(sorted(window.items(), key=lambda kv: kv[1]))
    n = len(window)
    if not flagged and n > b.counts.get(PEAK, 0.0):
        b.counts[PEAK] = float(n)
    peak = b.expect.get(PEAK)
    if peak is not None:
        if n <= peak.mean:
            b.bulk_spent = 0.0
        elif n >= BULK_MIN:
            sb = surprise(n, peak.mean, peak.var)
            if sb - b.bulk_spent >= 1.0:
                weight = spec("bulk_access").weight * (sb - b.bulk_spent)
                b.bulk_spent = sb
                out.append(
                    Signal(
                        "bulk_access",
                        weight * b.feedback.get("bulk_access", 1.0),
                        f"{n} distinct unassigned customers within an hour "
                        f"(usual peak {peak.mean:.1f}; p={10**-sb:.2g})",
                    )
                )

    # exported records within the hour
    if ev.action in EXPORT_ACTIONS:
        exports = b.exports
        if exports and exports[0].at < horizon:
            b.exports = exports = [x for x in exports if x.at >= horizon]
        if len(exports) < EXPORTS_CAP:
            exports.append(ExportMark(at, float(ev.record_count)))
        else:
            # Full: the newest mark takes this export's records and time, so the total
            # stays exact while they are in the hour and leaves it a little late (never
            # an under-count: a harvest of many small exports keeps climbing).
            last = exports[-1]
            exports[-1] = ExportMark(at, last.records + float(ev.record_count))
        total = sum(x.records for x in exports)
        if not flagged:
            b.counts[EXPORTS] = b.counts.get(EXPORTS, 0.0) + ev.record_count
        usual = b.expect.get(EXPORTS)
        threshold = max(EXPORT_FLOOR, EXPORT_FACTOR * (usual.mean if usual else 0.0))
        if total < threshold:
            b.export_level = 0.0
        elif total >= threshold * 2.0**b.export_level:
            level = b.export_level
            while total >= threshold * 2.0 ** (level + 1):
                level += 1
            b.export_level = level + 1
            out.append(
                Signal(
                    "export_volume",
                    spec("export_volume").weight
                    * (1.0 + level)
                    * b.feedback.get("export_volume", 1.0),
                    f"{total:.0f} records exported or printed within an hour "
                    f"(usual {usual.mean if usual else 0.0:.0f}/day)",
                )
            )
    return out


def groups_of(e: Enriched) -> list[str]:
    return list(group_keys(e.role, e.staff_branch_id))
