"""What a detector says about one access: a reason code, its weight, a summary."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Signal:
    code: str
    weight: float
    summary: str
