"""Size and seed of a simulated bank. Pure, no I/O."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date
from typing import Any

from simbank.simulate.profile import DEFAULT_PROFILE, BankProfile, ProfileError, profile_named


class ConfigError(ValueError):
    """A simulation size the generator cannot honour."""


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. The same config always gives byte-identical output.

    ``profile`` holds what differs between banks (rates, shifts, turnover, ...); the size
    fields here say how big this run is. ``to_json`` holds the size and seed only (the
    profile has its own JSON, written beside it as ``profile.json``).
    """

    seed: int = 7
    branches: int = 8
    staff: int = 200
    customers: int = 20_000
    days: int = 21
    start: str = "2026-03-02"  # a Monday, local date in the default timezone
    profile: BankProfile = DEFAULT_PROFILE

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
        return {
            "seed": self.seed,
            "branches": self.branches,
            "staff": self.staff,
            "customers": self.customers,
            "days": self.days,
            "start": self.start,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], profile: BankProfile = DEFAULT_PROFILE) -> SimConfig:
        return cls(
            seed=int(data["seed"]),
            branches=int(data["branches"]),
            staff=int(data["staff"]),
            customers=int(data["customers"]),
            days=int(data["days"]),
            start=str(data["start"]),
            profile=profile,
        )


def add_size_arguments(
    parser: argparse.ArgumentParser, defaults: SimConfig | None = None, *, profiles: bool = True
) -> None:
    """The flags that size a simulated bank (the CLI commands that simulate share them).

    ``--branches`` and ``--customers`` left out take the profile's branch count and
    customers per staff member (the default profile: 8 and 100). With ``profiles``, also
    ``--profile default|random`` and ``--profile-seed``.
    """
    d = defaults or SimConfig()
    parser.add_argument(
        "--seed", type=int, default=d.seed, help="random seed (default %(default)s)"
    )
    parser.add_argument(
        "--branches",
        type=int,
        default=None if defaults is None else d.branches,
        help=f"default: the profile's ({d.branches} for the default profile)",
    )
    parser.add_argument(
        "--staff", type=int, default=d.staff, help="initial headcount (default %(default)s)"
    )
    parser.add_argument(
        "--customers",
        type=int,
        default=None if defaults is None else d.customers,
        help="default: staff x the profile's customers per staff member (100 by default)",
    )
    parser.add_argument(
        "--days", type=int, default=d.days, help="simulated days (default %(default)s)"
    )
    parser.add_argument(
        "--start", default=d.start, help="first local date, YYYY-MM-DD (default %(default)s)"
    )
    if profiles:
        parser.add_argument(
            "--profile",
            choices=("default", "random"),
            default="default",
            help="bank profile: the simulator's own numbers, or one drawn with --profile-seed",
        )
        parser.add_argument(
            "--profile-seed", type=int, default=None, help="seed of --profile random"
        )


def sized_config(
    profile: BankProfile,
    *,
    seed: int,
    staff: int,
    days: int,
    start: str,
    branches: int | None = None,
    customers: int | None = None,
) -> SimConfig:
    """A config for ``profile``: branch count and customers default to the profile's
    (the branch count capped so that every branch can be staffed)."""
    if branches is None:
        branches = max(1, min(profile.branches, (staff - 8) // 8))
    if customers is None:
        customers = staff * profile.customers_per_staff
    return SimConfig(
        seed=seed,
        branches=branches,
        staff=staff,
        customers=customers,
        days=days,
        start=start,
        profile=profile,
    )


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The SimConfig the flags of :func:`add_size_arguments` describe (raises ConfigError)."""
    try:
        profile = profile_named(
            getattr(args, "profile", "default"), getattr(args, "profile_seed", None)
        )
    except ProfileError as exc:
        raise ConfigError(str(exc)) from None
    return sized_config(
        profile,
        seed=args.seed,
        staff=args.staff,
        days=args.days,
        start=args.start,
        branches=args.branches,
        customers=args.customers,
    )
