"""What a detector says about one access: a reason code, its weight, a summary."""

from __future__ import annotations

from msgspec import Struct


class Signal(Struct, frozen=True, gc=False):
    """``weight``: risk now (the fast accumulator); ``slow``: how much it raised the
    employee's weekly evidence (pipeline.detect.behaviour, the slow accumulator).

    A frozen msgspec Struct: built for every rule that fires and every weighed
    occurrence, and its compiled constructor costs a fraction of a frozen dataclass's."""

    code: str
    weight: float
    summary: str
    slow: float = 0.0
