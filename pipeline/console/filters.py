"""The queue's filters and its keyset cursor, parsed from a query string. Pure, no I/O.

Every value is checked here, so the store builds SQL only from known column
names and passes the values as parameters. Dates are calendar days in the
bank's timezone (``PIPELINE_BANK_TIMEZONE``): ``since=2026-03-02`` means from
that day's midnight there, ``until`` includes the whole day.

>>> f = QueueFilter.parse({"severity": ["high", "critical"], "branch": ["BR-1"]}, "UTC")
>>> f.severities, f.branch, f.state
(('high', 'critical'), 'BR-1', 'active')
>>> QueueFilter.parse(f.query_items(), "UTC") == f
True
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import orjson

from pipeline.console.workflow import ROLES, SEVERITIES

STATE_CHOICES: Final = ("active", "open", "acknowledged", "closed", "all")
PAGE_SIZES: Final = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE: Final = 50
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


class FilterError(ValueError):
    """A query parameter the queue cannot use (HTTP 400, shown on the page)."""


@dataclass(frozen=True, slots=True, order=True)
class QueueKey:
    """A row's position in the queue's order (descending on every field)."""

    severity_rank: int
    risk_score: float
    last_event_at: datetime
    alert_id: str

    def encode(self) -> str:
        us = int(self.last_event_at.timestamp() * 1_000_000)
        raw = orjson.dumps([self.severity_rank, self.risk_score, us, self.alert_id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> QueueKey:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            rank, risk, us, alert_id = orjson.loads(raw)
        except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
            raise FilterError("invalid page cursor") from None
        if (
            not isinstance(rank, int)
            or not isinstance(risk, int | float)
            or not isinstance(us, int)
            or not isinstance(alert_id, str)
            or not 0 < len(alert_id) <= 256
        ):
            raise FilterError("invalid page cursor")
        at = datetime.fromtimestamp(us / 1_000_000, tz=UTC)
        return cls(rank, float(risk), at, alert_id)


def _one(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name) or ()
    value = values[-1].strip() if values else ""
    return value or None


def _day(text: str | None, name: str, zone: ZoneInfo, end: bool) -> datetime | None:
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise FilterError(f"{name}: expected a date YYYY-MM-DD, got {text[:32]!r}") from None
    if end:
        day += timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=zone)


@dataclass(frozen=True, slots=True)
class QueueFilter:
    state: str = "active"
    severities: tuple[str, ...] = ()
    branch: str | None = None
    role: str | None = None
    reason: str | None = None
    staff: str | None = None
    assignee: str | None = None  # a name, "me" or "none"
    since: str | None = None  # YYYY-MM-DD as given
    until: str | None = None
    limit: int = DEFAULT_PAGE_SIZE
    zone: str = field(default="UTC", compare=False)

    @classmethod
    def parse(cls, params: Mapping[str, Sequence[str]], zone: str) -> QueueFilter:
        state = _one(params, "state") or "active"
        if state not in STATE_CHOICES:
            raise FilterError(f"state: one of {', '.join(STATE_CHOICES)}")
        sevs = tuple(s for s in SEVERITIES if s in set(params.get("severity") or ()))
        unknown = set(params.get("severity") or ()) - set(SEVERITIES) - {""}
        if unknown:
            raise FilterError(f"severity: one of {', '.join(SEVERITIES)}")
        role = _one(params, "role")
        if role is not None and role not in ROLES:
            raise FilterError(f"role: one of {', '.join(ROLES)}")
        reason = _one(params, "reason")
        if reason is not None and not _CODE.match(reason):
            raise FilterError("reason: a reason code such as bulk_access")
        out: dict[str, str | None] = {}
        for name in ("branch", "staff", "assignee"):
            value = _one(params, name)
            if value is not None and not _TOKEN.match(value):
                raise FilterError(f"{name}: letters, digits and . _ : @ - only")
            out[name] = value
        limit_text = _one(params, "limit")
        try:
            limit = int(limit_text) if limit_text else DEFAULT_PAGE_SIZE
        except ValueError:
            raise FilterError(f"limit: one of {PAGE_SIZES}") from None
        if limit not in PAGE_SIZES:
            raise FilterError(f"limit: one of {PAGE_SIZES}")
        f = cls(
            state=state,
            severities=sevs,
            branch=out["branch"],
            role=role,
            reason=reason,
            staff=out["staff"],
            assignee=out["assignee"],
            since=_one(params, "since"),
            until=_one(params, "until"),
            limit=limit,
            zone=zone,
        )
        lo, hi = f.time_range()
        if lo is not None and hi is not None and lo >= hi:
            raise FilterError("since must be before until")
        return f

    def time_range(self) -> tuple[datetime | None, datetime | None]:
        """[since, until) in absolute time; until is the end of its day."""
        zone = ZoneInfo(self.zone)
        return (
            _day(self.since, "since", zone, end=False),
            _day(self.until, "until", zone, end=True),
        )

    def states(self) -> tuple[str, ...]:
        if self.state == "active":
            return ("open", "acknowledged")
        if self.state == "all":
            return ()
        return (self.state,)

    def query_items(self) -> dict[str, list[str]]:
        """The filter as query parameters (defaults left out)."""
        items: dict[str, list[str]] = {}
        if self.state != "active":
            items["state"] = [self.state]
        if self.severities:
            items["severity"] = list(self.severities)
        for name in ("branch", "role", "reason", "staff", "assignee", "since", "until"):
            value = getattr(self, name)
            if value is not None:
                items[name] = [value]
        if self.limit != DEFAULT_PAGE_SIZE:
            items["limit"] = [str(self.limit)]
        return items

    def query(self, **extra: str) -> str:
        """URL query string (without ``?``) of this filter plus ``extra``."""
        pairs = [(k, v) for k, vs in self.query_items().items() for v in vs]
        pairs.extend(extra.items())
        return urlencode(pairs)

    def with_state(self, state: str) -> QueueFilter:
        return replace(self, state=state)

    @property
    def is_default(self) -> bool:
        return not self.query_items()
