"""Loads the reference topics into :class:`ReferenceState` and keeps following them.

Where the state lives and why: every worker reads *all* partitions of the
three reference topics with its own group-less consumer (a global table,
:class:`pipeline.broker.tail.Tail`). Customer profiles and assignments are
not keyed by ``staff_id`` as a whole, so they cannot be co-partitioned with
the access stream without a repartition hop per access; staff records are
small. The lookup an access needs is then a dict access in the worker's memory.

Recovery: the compacted reference topics are the changelog. A starting worker
reads them from the beginning up to the end offsets it saw when it started,
and only then declares itself ready; later records apply as they arrive, each
judged at the access's own event time (records carry their validity times).
With ``Settings.reference_snapshot_records`` (the default) it first loads the
snapshot in its data directory, if there is a usable one, and reads only what
came after it (:mod:`pipeline.reference.snapshot`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext

from pipeline.broker.tail import Positions, Tail
from pipeline.contract.decode import (
    DecodeError,
    dead_letter,
    decode_assignment,
    decode_customer_profile,
    decode_staff_record,
)
from pipeline.contract.records import DeadLetter
from pipeline.reference import snapshot
from pipeline.reference.state import ReferenceState
from pipeline.settings import Settings

log = logging.getLogger(__name__)

DeadLetterFn = Callable[[DeadLetter, bytes | None], Awaitable[None]]
CountFn = Callable[[str], None]


def apply_reference_record(
    state: ReferenceState, kind: str, key: bytes | None, value: bytes | None
) -> None:
    """Apply one raw record of a reference topic. Raises DecodeError when unusable.

    ``kind`` is one of ``staff``, ``assignment``, ``profile``.
    """
    if value is None:
        if key is None:
            raise DecodeError("tombstone", "tombstone without a key names nothing")
        k = key.decode("utf-8", errors="replace")
        if kind == "staff":
            state.delete_staff(k)
        elif kind == "assignment":
            state.delete_assignment_key(k)
        else:
            state.delete_profile(k)
        return
    if kind == "staff":
        state.apply_staff(decode_staff_record(value))
    elif kind == "assignment":
        state.apply_assignment(decode_assignment(value))
    else:
        state.apply_profile(decode_customer_profile(value))


def reference_reader(
    settings: Settings,
    state: ReferenceState,
    dead_letter_fn: DeadLetterFn,
    counted: CountFn,
    on_error: Callable[[], None] | None = None,
    lock: AbstractContextManager[object] | None = None,
) -> Tail:
    """A tail of the three reference topics into ``state``; each record is applied under
    ``lock`` when given (the core reads the state from another thread)."""
    guard = lock if lock is not None else nullcontext()
    kinds = {
        settings.staff_topic: "staff",
        settings.assignments_topic: "assignment",
        settings.profiles_topic: "profile",
    }

    async def apply(
        topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> None:
        kind = kinds[topic]
        try:
            with guard:
                apply_reference_record(state, kind, key, value)
        except DecodeError as err:
            await dead_letter_fn(
                dead_letter(value, key, topic, partition, offset, err, time.time()), key
            )
            return
        counted(kind)

    every = settings.reference_snapshot_records
    if not every:
        return Tail(settings, list(kinds), apply, "reference data", on_error=on_error)
    path = snapshot.path_in(settings.data_dir)

    def resume() -> Positions | None:
        found = snapshot.read(path)
        if found is None:
            return None
        image, positions = found
        try:
            state.restore(image)
        except Exception:  # decodable but inconsistent: never a restart loop over it
            log.exception("reference data: snapshot %s not usable; reading every record", path)
            state.clear()
            return None
        log.info("reference data: snapshot %s loaded: %s", path, state.counts())
        return positions

    def checkpoint(positions: Positions) -> None:
        started = time.monotonic()
        size = snapshot.write(path, state.image(), positions)
        log.info(
            "reference data: snapshot of %s written (%.1f MB in %.1f s)",
            state.counts(),
            size / 1e6,
            time.monotonic() - started,
        )

    return Tail(
        settings,
        list(kinds),
        apply,
        "reference data",
        on_error=on_error,
        resume=resume,
        discard=state.clear,
        checkpoint=checkpoint,
        checkpoint_every=every,
    )
