"""Peer statistics as a keyed entity in event time: one record per (bank day, access partition).

A peer group is a role (``r:teller``) or a role at a branch
(``rb:teller|BR03``). What peers usually do is aggregated per **bank day**
(local date in ``PIPELINE_BANK_TIMEZONE``): when an access partition's
stream moves past a day, its owner publishes a :class:`PeerDay` with the
partition's staff-days, per-code sums (and sums of squares) per group, and a
deterministic sample of staff-hours for the group models. Every worker reads
every PeerDay (internal topic ``{app_id}-peer-days``) into a
:class:`pipeline.peers.book.PeerBook`; a day is *complete* once every
partition has published it, and an access on day D is scored against the
peers of the complete days up to D-1 only. So the peer view an access sees
depends on the input alone, not on the partition count, the number of
workers, or their timing (docs/detection.md, "Peer statistics").

Records are msgpack-encoded, tagged unions (``t``), versioned by tag.
"""

from __future__ import annotations

from typing import Final

import msgspec
from msgspec import Struct

SAMPLES_PER_GROUP: Final = 250  # staff-hours per role and day kept for the group model
FORMAT: Final = 1


class GroupDay(Struct, array_like=True, gc=False):
    """One group's staff-days and per-code totals on one day of one partition."""

    staff_days: int
    sums: dict[str, float]
    squares: dict[str, float]


class Sample(Struct, array_like=True, gc=False):
    """One staff-hour's features; ``h`` (a hash of staff, day and hour) orders samples so
    that the K smallest of every partition together are the K smallest of the bank."""

    h: int
    x: list[float]


class PeerDay(Struct, tag="day", tag_field="t", gc=False):
    partition: int
    day: int  # bank day number (pipeline.core.calendar)
    groups: dict[str, GroupDay]
    samples: dict[str, list[Sample]]  # role -> at most SAMPLES_PER_GROUP, by h
    format: int = FORMAT


class Watermark(Struct, tag="wm", tag_field="t", gc=False):
    """A partition's event-time watermark: the newest accepted access's time."""

    partition: int
    at: float
    closed_through: int  # the last bank day this partition has published


PeerRecord = PeerDay | Watermark

_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder(PeerRecord)


def encode(rec: PeerRecord) -> bytes:
    return _ENC.encode(rec)


def decode(raw: bytes) -> PeerRecord:
    """Raises msgspec.DecodeError / ValidationError on anything else."""
    return _DEC.decode(raw)


def key(rec: PeerRecord) -> bytes:
    """Compaction key: one PeerDay per (day, partition), one Watermark per partition."""
    if isinstance(rec, PeerDay):
        return f"day/{rec.day}/{rec.partition}".encode()
    return f"wm/{rec.partition}".encode()


def group_keys(role: str | None, branch: str | None) -> tuple[str, ...]:
    """The groups an employee belongs to: role, and role at branch."""
    if role is None:
        return ()
    if branch is None:
        return (f"r:{role}",)
    return (f"r:{role}", f"rb:{role}|{branch}")
