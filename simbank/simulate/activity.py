"""Raw simulated events and the helpers that emit them. Pure, no I/O.

A :class:`RawEvent` is an AccessEvent before it gets its id and session (those are given
once all events exist, see :mod:`simbank.simulate.assemble`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simbank.simulate.bank import Desk
from simbank.simulate.labels import NORMAL

NORMAL_DENIED_P = 0.002  # share of ordinary accesses the core banking system refuses


@dataclass(slots=True)
class RawEvent:
    ms: int
    seq: int
    staff_id: str
    customer_id: str | None
    action: str
    channel: str
    branch_id: str
    terminal_id: str | None
    source_ip: str | None
    session_id: str | None  # preset for batch jobs; assigned from gaps otherwise
    authorization_ref: str | None
    record_count: int
    outcome: str
    tz: str | None  # zone of the local offset in occurred_at; None = UTC ("Z")
    label: int


@dataclass(frozen=True, slots=True)
class Seat:
    """Who acts, from where: the context shared by a run of events."""

    staff_id: str
    branch_id: str
    tz: str
    desk: Desk
    channel: str
    utc: bool = False  # systems (batch, API) log in UTC
    session_id: str | None = None


class Recorder:
    def __init__(self) -> None:
        self.events: list[RawEvent] = []

    def add(
        self,
        seat: Seat,
        ms: int,
        customer_id: str | None,
        action: str,
        *,
        count: int = 1,
        auth: str | None = None,
        outcome: str = "success",
        label: int = NORMAL,
    ) -> None:
        self.events.append(
            RawEvent(
                ms,
                len(self.events),
                seat.staff_id,
                customer_id,
                action,
                seat.channel,
                seat.branch_id,
                seat.desk.terminal_id,
                seat.desk.source_ip,
                seat.session_id,
                auth,
                count,
                outcome,
                None if seat.utc else seat.tz,
                label,
            )
        )


def record_count(action: str, rng: random.Random) -> int:
    """Rows returned, printed or exported by one ordinary action."""
    if action == "view_transactions":
        return rng.randint(10, 120)
    if action == "print_statement":
        return rng.randint(2, 40)
    if action == "export_statement":
        return rng.randint(20, 400)
    if action == "search_customers":
        return rng.randint(1, 30)
    return 1


def auth_ref(rng: random.Random, ms: int) -> str:
    """A customer's signed credit-report authorization reference."""
    return f"CRA-{ms // 86_400_000:05d}-{rng.randrange(16**6):06x}"


def visit(
    rec: Recorder,
    seat: Seat,
    rng: random.Random,
    ms: int,
    customer_id: str | None,
    actions: Sequence[str],
    *,
    label: int = NORMAL,
    authorized: bool = True,
    denied_p: float = NORMAL_DENIED_P,
    gap: tuple[float, float] = (15.0, 90.0),
    auth_share: float = 1.0,
    on_missing_auth: Callable[[], int] | None = None,
) -> int:
    """One interaction with one customer: ``actions`` a few seconds apart. Returns the time
    after the last action. Credit queries carry an authorization unless ``authorized`` is
    False; with ``auth_share`` < 1, an authorized query lacks its reference with
    probability ``1 - auth_share`` and gets the label ``on_missing_auth()`` returns."""
    t = ms
    for action in actions:
        count = record_count(action, rng)
        outcome = "success"
        if denied_p and rng.random() < denied_p:
            outcome, count = "denied", 0
        auth: str | None = None
        event_label = label
        if action == "credit_report_query" and authorized:
            if auth_share < 1.0 and rng.random() >= auth_share:
                if on_missing_auth is not None:
                    event_label = on_missing_auth()
            else:
                auth = auth_ref(rng, t)
        rec.add(
            seat, t, customer_id, action, count=count, auth=auth, outcome=outcome, label=event_label
        )
        t += int(rng.uniform(*gap) * 1000)
    return t


def pick_actions(
    rng: random.Random,
    first: Sequence[tuple[str, float]],
    more: Sequence[tuple[str, float]],
    k: tuple[int, int],
) -> list[str]:
    """Actions of one interaction: each of ``first`` with its probability, then between
    ``k[0]`` and ``k[1]`` distinct actions drawn from the weighted ``more``."""
    out = [a for a, p in first if rng.random() < p]
    names = [a for a, _ in more]
    weights = [w for _, w in more]
    for _ in range(rng.randint(*k)):
        a = rng.choices(names, weights=weights)[0]
        if a not in out:
            out.append(a)
    return out or [names[0]]
