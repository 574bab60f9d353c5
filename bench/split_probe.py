"""(f) of ``throughput.py``: what scoring in a second process would leave the Faust one.

A probe of a design, not the worker: the no-op agent of (b') (the worker's
``create_app`` and fetch loop, ``noack_take`` batches) hands each batch's raw
records (partition, offset, key, value, timestamp) over a pipe, msgpack
framed, to a child process that runs the pure :class:`~pipeline.core.engine.
Core` over them (decode included, every detector, the bank's reference data
loaded before the first batch) and replies with the outbox: the done offsets,
the alerts encoded as JSON and, every ``FLUSH_EVERY_S`` as the worker does,
the encoded dirty states. The Faust process publishes the alerts to the alert
topic and the states to a topic of the probe's own, awaits the broker's acks,
then acks the batch's events. Up to ``DEPTH`` batches are in flight, so the
two processes work at once.

What it leaves out of the worker: Postgres, the OCSF copy, the in-order ack
split, health and metrics, the reference and feedback agents, rebalances and
a crash of either process. It measures the cost of the Faust process with
the core moved out (against (b'), in the same run) and whether the child
keeps up on the other core; it is the upper bound of that design on this
machine, not its result.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, Final

import msgspec

DEPTH: Final = 2  # batches in flight between the two processes (default of --probe-depth)
HEADER: Final = struct.Struct("!i")  # multiprocessing.Connection's frame header
STOP: Final = b"stop"
READY: Final = b"ready"


def child(conn: Connection, seed: int, staff: int, days: int, settings: Any) -> None:
    """The scoring process: reference from the simulated bank, then batches until STOP."""
    from pipeline.core.engine import Inbound
    from pipeline.core.offline import load_reference, new_core
    from pipeline.worker.access import FLUSH_EVERY_S
    from simbank.evaluate.offline import reference_records
    from simbank.simulate import SimConfig, generate

    sim = generate(SimConfig(seed=seed, staff=staff, days=days, customers=staff * 100))
    reference, _ = load_reference(reference_records(sim))
    core = new_core(reference, settings)
    encode, decode = msgspec.msgpack.Encoder().encode, msgspec.msgpack.Decoder().decode
    alert_json = msgspec.json.Encoder().encode
    conn.send_bytes(READY)
    cpu0, events, flushed = time.process_time(), 0, time.monotonic()
    while (frame := conn.recv_bytes()) != STOP:
        batch = decode(frame)
        core.offer([Inbound(p, off, key, value, ts) for p, off, key, value, ts in batch])
        out = core.drain()
        events += len(batch)
        writes: list[tuple[str, bytes]] = []
        if time.monotonic() - flushed >= FLUSH_EVERY_S:
            writes, flushed = core.store.pending_writes(), time.monotonic()
        alerts = [alert_json(a.emitted.alert) for a in out.alerts]
        conn.send_bytes(encode([len(out.done), alerts, writes]))
    conn.send_bytes(encode({"cpu_seconds": time.process_time() - cpu0, "events": events}))


class Probe:
    """The Faust side: ships batches, publishes replies, acks; ``stop()`` ends the child.

    ``--probe-io threads``: frames go through the pipe in two one-thread executors
    (``Connection.send_bytes``/``recv_bytes``); ``loop``: through asyncio streams over
    the same socket, on the event loop (same framing)."""

    def __init__(self, args: argparse.Namespace, settings: Any) -> None:
        ctx = mp.get_context("spawn")
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(
            target=child,
            args=(theirs, args.seed, args.staff, args.days, settings),
            daemon=True,
        )
        self.proc.start()
        if self.conn.recv_bytes() != READY:
            raise RuntimeError("the scoring process did not start")
        self._send_pool, self._recv_pool = ThreadPoolExecutor(1), ThreadPoolExecutor(1)
        self.io: str = args.probe_io
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._depth: int = args.probe_depth
        self._slots = asyncio.Semaphore(self._depth)
        self._inflight: asyncio.Queue[list[Any]] = asyncio.Queue()
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder().decode
        self.handled = 0
        self.batches = 0
        self.slot_wait_s = 0.0  # time the agent waited for a batch slot

    async def ship(self, events: list[Any]) -> None:
        batch = []
        for ev in events:
            m = ev.message
            ts = m.timestamp
            batch.append((m.partition, m.offset, m.key, m.value, int(ts * 1000) if ts else -1))
        waited = time.perf_counter()
        await self._slots.acquire()
        self.slot_wait_s += time.perf_counter() - waited
        self.batches += 1
        frame = self._encode(batch)
        await self._inflight.put(events)
        await self._send(frame)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._streams is None:
            sock = socket.socket(fileno=os.dup(self.conn.fileno()))
            self._streams = await asyncio.open_connection(sock=sock, limit=2**26)
        return self._streams

    async def _send(self, frame: bytes) -> None:
        if self.io == "threads":
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._send_pool, self.conn.send_bytes, frame)
            return
        _, writer = await self._open()
        writer.write(HEADER.pack(len(frame)))
        writer.write(frame)
        await writer.drain()

    async def _recv(self) -> bytes:
        if self.io == "threads":
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._recv_pool, self.conn.recv_bytes)
        reader, _ = await self._open()
        (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
        return await reader.readexactly(size)

    async def replies(
        self,
        alerts: Any,
        states: Any,
        ack: Callable[[Any], Any],
        done: Callable[[int], bool],
        finish: Callable[[], Awaitable[None]],
    ) -> None:
        """The oldest batch's reply published and acknowledged, then its events; until
        ``done`` says every event was, then ``finish``."""
        await alerts.maybe_declare()
        await states.maybe_declare()
        while True:
            events = await self._inflight.get()
            frame = await self._recv()
            handled, values, writes = self._decode(frame)
            self.handled += handled  # the day barrier may hold some back to a later batch
            sent = [await alerts.send(value=v) for v in values]
            sent += [await states.send(key=k.encode(), value=v) for k, v in writes]
            for fut in sent:
                await fut
            for ev in events:
                await ack(ev)
            self._slots.release()
            if done(len(events)):
                await finish()
                return

    async def stop(self) -> dict[str, Any]:
        """End the child (call once every batch was answered); its CPU figures."""
        await self._send(STOP)
        figures: dict[str, Any] = self._decode(await self._recv())
        figures["handled"] = self.handled
        figures["batches"] = self.batches
        figures["agent_waited_for_a_slot_s"] = round(self.slot_wait_s, 2)
        figures["io"] = self.io
        figures["depth"] = self._depth
        self.proc.join(10)
        return figures
