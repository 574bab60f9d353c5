"""Size and seed of a simulated bank. Pure, no I/O."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any


class ConfigError(ValueError):
    """A simulation size the generator cannot honour."""


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. The same config always gives byte-identical output."""

    seed: int = 7
    branches: int = 8
    staff: int = 200
    customers: int = 20_000
    days: int = 21
    start: str = "2026-03-02"  # a Monday, local date in the default timezone

    def __post_init__(self) -> None:
        if not 1 <= self.branches <= 99:
            raise ConfigError(f"branches must be 1..99, got {self.branches}")
        if self.staff < self.min_staff:
            raise ConfigError(
                f"staff must be at least {self.min_staff} for {self.branches} branches, "
                f"got {self.staff}"
            )
        if self.customers < 20 * self.staff:
            raise ConfigError(
                f"customers must be at least 20 per staff member ({20 * self.staff}), "
                f"got {self.customers}"
            )
        if not 5 <= self.days <= 366:
            raise ConfigError(f"days must be 5..366, got {self.days}")
        try:
            date.fromisoformat(self.start)
        except ValueError:
            raise ConfigError(f"start must be a YYYY-MM-DD date, got {self.start!r}") from None

    @property
    def min_staff(self) -> int:
        """Each branch needs a manager, operations, two customer managers, two tellers and a
        loan officer; head office needs auditors and IT support."""
        return 8 * self.branches + 8

    @property
    def start_date(self) -> date:
        return date.fromisoformat(self.start)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimConfig:
        return cls(
            seed=int(data["seed"]),
            branches=int(data["branches"]),
            staff=int(data["staff"]),
            customers=int(data["customers"]),
            days=int(data["days"]),
            start=str(data["start"]),
        )


def add_size_arguments(parser: argparse.ArgumentParser, defaults: SimConfig | None = None) -> None:
    """The flags that size a simulated bank (the CLI commands that simulate share them)."""
    d = defaults or SimConfig()
    parser.add_argument(
        "--seed", type=int, default=d.seed, help="random seed (default %(default)s)"
    )
    parser.add_argument("--branches", type=int, default=d.branches, help="default %(default)s")
    parser.add_argument(
        "--staff", type=int, default=d.staff, help="initial headcount (default %(default)s)"
    )
    parser.add_argument("--customers", type=int, default=d.customers, help="default %(default)s")
    parser.add_argument(
        "--days", type=int, default=d.days, help="simulated days (default %(default)s)"
    )
    parser.add_argument(
        "--start", default=d.start, help="first local date, YYYY-MM-DD (default %(default)s)"
    )


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The SimConfig the flags of :func:`add_size_arguments` describe (raises ConfigError)."""
    return replace(
        SimConfig(),
        seed=args.seed,
        branches=args.branches,
        staff=args.staff,
        customers=args.customers,
        days=args.days,
        start=args.start,
    )
