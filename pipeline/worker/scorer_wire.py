"""The messages between a worker and its scoring process, and their framing.

With ``PIPELINE_SCORING_PROCESS=true`` the worker (the Faust process) takes the
access records and a child process, :mod:`pipeline.worker.scorer`, scores them
(:mod:`pipeline.worker.scorer_link` is the worker's side). They talk over the
child's stdin and stdout: each message is a 4-byte big-endian length and a
msgpack body, a tagged :class:`msgspec.Struct`.

Every request of the worker gets exactly one reply, in the order sent. While
it handles a request the child may ask for a state it was not sent
(:class:`Get`); the worker answers at once (:class:`Value`), ahead of any
reply it is waiting for.
"""

from __future__ import annotations

import struct
from typing import Final

import msgspec

from pipeline.core.engine import Inbound
from pipeline.worker.publish import Encoded

HEADER: Final = struct.Struct("!I")
MAX_FRAME: Final = 1 << 30  # a frame announcing more is a broken stream, not a message

Shipped = tuple[str, int, bytes | None]  # state key, partition, table value (None: no state)
Verdict = tuple[str, int, str, str, list[str]]  # staff_id, partition, alert_id, verdict, codes


# -- worker -> scoring process ----------------------------------------------------
class Start(msgspec.Struct, tag="start", array_like=True):
    """The first message: the worker's settings (JSON), so both use the same."""

    settings: bytes


class Batch(msgspec.Struct, tag="batch", array_like=True):
    """Offer ``records`` (none: a tick), drain, and return the effects; with ``flush``,
    the encoded dirty states too. ``caught_up``: partitions with nothing more to fetch."""

    records: list[Inbound]
    states: list[Shipped]
    caught_up: list[int]
    flush: bool


class Assign(msgspec.Struct, tag="assign", array_like=True):
    partitions: list[int]


class Revoke(msgspec.Struct, tag="revoke", array_like=True):
    """Return the pending writes, then forget these partitions."""

    partitions: list[int]


class Learn(msgspec.Struct, tag="learn", array_like=True):
    verdicts: list[Verdict]
    states: list[Shipped]


class Status(msgspec.Struct, tag="status", array_like=True):
    metrics: bool  # include the child's metric families


class Value(msgspec.Struct, tag="value", array_like=True):
    """The answer to a :class:`Get`."""

    key: str
    value: bytes | None


class Stop(msgspec.Struct, tag="stop", array_like=True):
    """End the scoring process (it replies with :class:`Stopped` first)."""


Request = Start | Batch | Assign | Revoke | Learn | Status | Value | Stop


# -- scoring process -> worker ---------------------------------------------------------
class Counts(msgspec.Struct, array_like=True):
    """The core's counters, in plain ints (exported by the worker)."""

    duplicates: int
    peer_days: int
    newest_event_at: float
    resets: list[tuple[str, str, int]]
    waiting: int


class Cycle(msgspec.Struct, tag="cycle", array_like=True):
    outbox: Encoded
    done: list[tuple[int, int]]
    writes: list[tuple[str, bytes]] | None  # None: no flush was asked
    queues: dict[int, int]
    counts: Counts


class Done(msgspec.Struct, tag="done", array_like=True):
    """The reply to :class:`Assign`."""


class Revoked(msgspec.Struct, tag="revoked", array_like=True):
    writes: list[tuple[str, bytes]]


class Learned(msgspec.Struct, tag="learned", array_like=True):
    applied: list[bool]


Sample = tuple[str, dict[str, str], float]
Family = tuple[str, str, list[Sample]]  # name, type, samples


class State(msgspec.Struct, tag="state", array_like=True):
    reference_ready: bool
    peers_ready: bool
    reference_polled_at: float  # time.monotonic(), the same clock in both processes
    peers_polled_at: float
    reference: dict[str, int]  # ReferenceState.counts()
    waiting: int
    metrics: list[Family] | None


class Get(msgspec.Struct, tag="get", array_like=True):
    key: str


class Stopped(msgspec.Struct, tag="stopped", array_like=True):
    cpu_seconds: float


Reply = Cycle | Done | Revoked | Learned | State | Get | Stopped

_encoder = msgspec.msgpack.Encoder()
request_decoder: Final = msgspec.msgpack.Decoder(Request)
reply_decoder: Final = msgspec.msgpack.Decoder(Reply)


def frame(msg: msgspec.Struct) -> bytes:
    body = _encoder.encode(msg)
    return HEADER.pack(len(body)) + body


def frame_size(header: bytes) -> int:
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes announced: the stream is broken")
    return int(size)
