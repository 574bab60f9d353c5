"""What a detector says about one access: a reason code, its weight, a summary."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Signal:
    """``weight``: risk now (the fast accumulator); ``slow``: how much it raised the
    employee's weekly evidence (pipeline.detect.behaviour, the slow accumulator)."""

    code: str
    weight: float
    summary: str
    slow: float = 0.0
