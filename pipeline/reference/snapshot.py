"""The reference state in the worker's data directory, so that a restart need not read it all.

At 10M profiles a worker reads the three reference topics for ~3 minutes before it
scores anything (``bench/README.md``, ``reference_scale.py``). A snapshot holds the
state (:class:`~pipeline.reference.state.StateImage`) and, per topic partition, the
offset to go on from and a checksum of the record just before it. A starting worker
loads it, reads the record before each offset again and compares the checksum (a topic
deleted and created again, a record compacted away or another cluster under the same
names all differ), and then reads only what came after; when anything does not match
it forgets the snapshot and reads everything, as without one.

Written by the reference reader (:mod:`pipeline.reference.reader`) once it is ready,
again after ``Settings.reference_snapshot_records`` more records, and when it stops:
versioned msgpack (never pickle), to a temporary file renamed over the old one. A file
that cannot be read is logged and ignored; it is never fatal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Final

import msgspec

from pipeline.broker.tail import Positions
from pipeline.reference.state import StateImage

log = logging.getLogger(__name__)

SNAPSHOT_VERSION: Final = 1
FILENAME: Final = "reference-snapshot.msgpack"
STALE_TMP_S: Final = 3600.0  # a temporary file this old is a killed writer's: removed


class Snapshot(msgspec.Struct, array_like=True, gc=False):
    version: int
    positions: list[tuple[str, int, int, int]]  # topic, partition, next offset, checksum
    state: StateImage


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Snapshot)


def path_in(data_dir: Path) -> Path:
    return data_dir / FILENAME


def write(path: Path, image: StateImage, positions: Positions) -> int:
    """Write a snapshot atomically; returns its size in bytes."""
    snap = Snapshot(
        SNAPSHOT_VERSION,
        [(t, p, off, crc) for (t, p), (off, crc) in sorted(positions.items())],
        image,
    )
    data = _ENCODER.encode(snap)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f"{path.name}.*.tmp"):  # of a process killed mid-write
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > STALE_TMP_S:
                stale.unlink()
    # A name of this process's own: two workers sharing a data directory each rename a
    # whole file over the other's, never write into the same one.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(data)


def read(path: Path) -> tuple[StateImage, Positions] | None:
    """The snapshot at ``path``, or None (missing, unreadable or of another version)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("reference snapshot %s not read: %s", path, exc)
        return None
    try:
        snap = _DECODER.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError is one
        log.warning("reference snapshot %s ignored: %s", path, exc)
        return None
    if snap.version != SNAPSHOT_VERSION:
        log.warning(
            "reference snapshot %s ignored: version %d, this release reads %d",
            path,
            snap.version,
            SNAPSHOT_VERSION,
        )
        return None
    return snap.state, {(t, p): (off, crc) for t, p, off, crc in snap.positions}
