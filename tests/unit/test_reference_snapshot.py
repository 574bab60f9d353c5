"""The reference snapshot: a state written and read back judges every access as before."""

from __future__ import annotations

import random
from pathlib import Path
from typing import get_args

import msgspec
import pytest

from pipeline.broker.tail import record_checksum
from pipeline.contract.records import Relation, Role, StaffStatus
from pipeline.reference import snapshot
from pipeline.reference.state import ReferenceState
from tests.unit.test_reference_state import (
    DAY,
    SEGMENTS,
    SENSITIVITIES,
    T0,
    access,
    assign,
    profile,
    staff,
)

STAFF = [f"S{i}" for i in range(12)]
CUSTOMERS = [f"C{i}" for i in range(40)]


def busy_state(seed: int) -> ReferenceState:
    """Every kind of update, in a random order: versions, revokes, corrections, tombstones."""
    rng = random.Random(seed)
    state = ReferenceState()
    for _ in range(600):
        at = T0 + rng.randrange(0, 30) * DAY / 2
        sid, cid = rng.choice(STAFF), rng.choice(CUSTOMERS)
        kind = rng.randrange(9)
        if kind < 2:
            state.apply_staff(
                staff(
                    at,
                    sid,
                    f"BR{rng.randrange(3)}",
                    rng.choice(get_args(Role)),
                    rng.choice(get_args(StaffStatus)),
                )
            )
        elif kind < 4:
            until = at + rng.randrange(1, 20) * DAY if rng.random() < 0.5 else None
            state.apply_assignment(
                assign(at, until, sid, cid, relation=rng.choice(get_args(Relation)))
            )
        elif kind == 4:
            state.apply_assignment(assign(at, None, sid, cid, op="revoke"))
        elif kind < 7:
            related = tuple(rng.sample(STAFF, rng.randrange(0, 3)))
            state.apply_profile(
                profile(
                    cid,
                    f"BR{rng.randrange(3)}",
                    rng.choice(SEGMENTS),
                    rng.choice(SENSITIVITIES),
                    related,
                    updated_at=at,
                )
            )
        elif kind == 7:
            state.delete_assignment(sid, cid)
        elif rng.random() < 0.5:
            state.delete_profile(cid)
        else:
            state.delete_staff(sid)
    return state


def judged(state: ReferenceState) -> list[tuple[object, ...]]:
    """What every pair of staff and customer looks like, at many times."""
    out = []
    for at in (T0 - DAY, T0, T0 + 3.3 * DAY, T0 + 7.5 * DAY, T0 + 14 * DAY, T0 + 40 * DAY):
        for sid in STAFF:
            for cid in [*CUSTOMERS, None]:
                e = state.enrich(access(at, sid, cid), at)
                out.append(tuple(getattr(e, f) for f in e.__struct_fields__ if f != "event"))
            out.append((sid, tuple(state.assigned_customers(sid, at))))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_a_state_written_and_read_back_judges_every_access_as_before(
    seed: int, tmp_path: Path
) -> None:
    state = busy_state(seed)
    positions = {("bank.customer-profiles", 3): (1234, 99), ("bank.staff-directory", 0): (7, 1)}
    path = snapshot.path_in(tmp_path)
    snapshot.write(path, state.image(), positions)
    found = snapshot.read(path)
    assert found is not None
    image, read_positions = found
    assert read_positions == positions
    back = ReferenceState()
    back.apply_staff(staff(T0, "S-elsewhere"))  # restore replaces what was there
    back.restore(image)
    assert back.counts() == state.counts()
    assert judged(back) == judged(state)
    assert back.image() == state.image()
    assert back.staff_at("S-elsewhere", T0 + DAY) is None


def test_a_restored_state_goes_on_like_the_original() -> None:
    state = busy_state(11)
    back = ReferenceState()
    back.restore(
        msgspec.msgpack.decode(msgspec.msgpack.encode(state.image()), type=type(state.image()))
    )
    for s in (state, back):  # the same updates after the restore, on both
        s.apply_profile(profile("C1", "BR9", "private", "vip", ("S2",), updated_at=T0 + 2 * DAY))
        s.apply_assignment(assign(T0 + DAY, None, "S3", "C1", op="revoke"))
        s.apply_staff(staff(T0 + 5 * DAY, "S4", "BR2", "teller", "terminated"))
        s.delete_profile("C2")
    assert back.counts() == state.counts()
    assert judged(back) == judged(state)


def test_a_missing_unreadable_or_other_version_snapshot_is_none(tmp_path: Path) -> None:
    path = snapshot.path_in(tmp_path)
    assert snapshot.read(path) is None
    snapshot.write(path, busy_state(1).image(), {("t", 0): (5, 6)})
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    assert snapshot.read(path) is None
    path.write_bytes(b"\xff" * 100)
    assert snapshot.read(path) is None
    other = msgspec.msgpack.decode(good)
    other[0] = snapshot.SNAPSHOT_VERSION + 1
    path.write_bytes(msgspec.msgpack.encode(other))
    assert snapshot.read(path) is None
    path.write_bytes(good)
    assert snapshot.read(path) is not None
    assert not list(tmp_path.glob("*.tmp")), "the temporary file was renamed"


def test_the_record_checksum_tells_a_missing_key_or_value_from_an_empty_one() -> None:
    sums = {
        record_checksum(k, v)
        for k, v in [(None, None), (b"", None), (None, b""), (b"", b""), (b"a", b"b"), (b"ab", b"")]
    }
    assert len(sums) == 6


async def _no_dead_letters(dl: object, key: bytes | None) -> None:
    raise AssertionError(dl)


def test_a_snapshot_that_decodes_but_cannot_be_restored_is_not_used(tmp_path: Path) -> None:
    """A restart must not fail on its own snapshot (and fail again at every restart)."""
    from pipeline.reference.reader import reference_reader
    from pipeline.settings import Settings

    s = Settings(data_dir=tmp_path)
    image = busy_state(2).image()
    image.classes = image.classes[:-1]  # a profile list without its class
    snapshot.write(snapshot.path_in(tmp_path), image, {("bank.staff-directory", 0): (3, 4)})
    state = ReferenceState()
    state.apply_staff(staff(T0, "S-before"))
    tail = reference_reader(s, state, _no_dead_letters, lambda kind: None)
    assert tail.resume is not None
    assert tail.resume() is None
    assert state.counts() == ReferenceState().counts(), "nothing half-restored is left"
    good = busy_state(2)
    snapshot.write(snapshot.path_in(tmp_path), good.image(), {("bank.staff-directory", 0): (3, 4)})
    assert tail.resume() == {("bank.staff-directory", 0): (3, 4)}
    assert state.counts() == good.counts()
