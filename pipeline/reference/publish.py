"""``pipeline publish-reference``: load HR/CRM exports onto the reference topics.

    pipeline publish-reference --kind {staff,assignments,profiles} FILE [FILE...]
        [--format {csv,jsonl}] [--dry-run] [--rejects rejects.jsonl]

Each row is converted to the contract's JSON and checked with the pipeline's
own decoder (:mod:`pipeline.reference.exports`); valid rows are published to
``{prefix}staff-directory`` / ``staff-assignments`` / ``customer-profiles``,
keyed as the contract says, in file order (so the last row of a key wins after
compaction, as it does in the worker). Rejected rows are not published; the
summary counts them by error code and ``--rejects`` writes all of them as JSONL.
Settings (``PIPELINE_KAFKA_BOOTSTRAP``, ``PIPELINE_TOPIC_PREFIX``) come from the
environment; missing contract topics are created first.

Exit status: 0 nothing rejected; 1 some rows rejected (the valid ones are still
published); 2 usage or I/O error (unknown format, unreadable file or header,
Kafka unreachable or refusing records).

The Kafka record timestamp is left to the producer (publish time): reference
records may be dated in the future (a transfer next month), and brokers refuse
timestamps more than ``message.timestamp.after.max.ms`` ahead (one hour by
default since Kafka 4.0). The pipeline reads the times inside the records only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import IO, Any, Final

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.codec import has_lz4
from aiokafka.errors import KafkaError

from pipeline.broker import clients
from pipeline.broker.topics import ensure_topics
from pipeline.errors import PipelineError
from pipeline.reference.exports import (
    FORMATS,
    KINDS,
    Accepted,
    ExportError,
    Parsed,
    Rejected,
    Result,
    Tally,
    format_of,
    parse_csv,
    parse_jsonl,
)
from pipeline.settings import Settings, SettingsError

# Sends awaited together before the next chunk is handed to the producer.
SEND_CHUNK: Final = 10_000
# Under the broker's default message.max.bytes (1 MiB + 12), batch header included.
MAX_BATCH_BYTES: Final = 1_000_000


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", required=True, choices=KINDS, help="what the files hold")
    parser.add_argument("files", nargs="+", metavar="FILE", help="CSV or JSONL exports")
    parser.add_argument(
        "--format", choices=FORMATS, default=None, help="file format (default: from extension)"
    )
    parser.add_argument("--dry-run", action="store_true", help="validate only, publish nothing")
    parser.add_argument("--rejects", metavar="PATH", default=None, help="write rejects as JSONL")


def topic_for(settings: Settings, kind: str) -> str:
    return {
        "staff": settings.staff_topic,
        "assignments": settings.assignments_topic,
        "profiles": settings.profiles_topic,
    }[kind]


def compression() -> str | None:
    """lz4 when this aiokafka can compress with it, else none."""
    return "lz4" if has_lz4() else None


def make_producer(settings: Settings) -> AIOKafkaProducer:
    """A throughput-minded producer: 20 ms linger, ~1 MB batches, idempotent, acks=all."""
    return clients.producer(
        settings,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=MAX_BATCH_BYTES,
        compression_type=compression(),
    )


@dataclass(slots=True)
class Progress:
    """Records acknowledged by the broker so far (still right after a failure)."""

    acked: int = 0


async def send_batched(
    producer: AIOKafkaProducer,
    topic: str,
    records: Iterable[tuple[bytes, bytes]],
    chunk: int = SEND_CHUNK,
    progress: Progress | None = None,
) -> int:
    """Send ``(key, value)`` pairs in order; wait for every ack. Returns how many were sent.

    Send futures are gathered per chunk, one chunk behind: while the broker acks
    one chunk the next is being batched, and at most two chunks are ever in
    flight, so a slow broker pushes back on the reader and memory stays bounded.
    A failed send raises (``KafkaError``).
    """
    done = progress if progress is not None else Progress()
    before = done.acked
    in_flight: list[asyncio.Future[Any]] = []
    filling: list[asyncio.Future[Any]] = []
    for key, value in records:
        filling.append(await producer.send(topic, value=value, key=key))
        if len(filling) >= chunk:
            if in_flight:
                await asyncio.gather(*in_flight)
                done.acked += len(in_flight)
            in_flight, filling = filling, []
    for futures in (in_flight, filling):
        if futures:
            await asyncio.gather(*futures)
            done.acked += len(futures)
    return done.acked - before


@dataclass(frozen=True, slots=True)
class Job:
    path: str
    fmt: str


def _plan(files: list[str], fmt: str | None) -> list[Job]:
    jobs: list[Job] = []
    for path in files:
        chosen = fmt or format_of(path)
        if chosen is None:
            raise ExportError(f"{path}: cannot tell the format from the extension; pass --format")
        if not os.path.exists(path):
            raise ExportError(f"{path}: no such file")
        if not os.path.isfile(path):
            raise ExportError(f"{path}: not a regular file")
        if not os.access(path, os.R_OK):
            raise ExportError(f"{path}: not readable (permission denied)")
        jobs.append(Job(path, chosen))
    return jobs


@contextmanager
def _opened(job: Job, kind: str) -> Iterator[Parsed]:
    """The file of ``job`` parsed as ``kind``; reads the header now (may raise ExportError)."""
    if job.fmt == "csv":
        with open(job.path, encoding="utf-8", errors="surrogateescape", newline="") as text:
            yield parse_csv(text, kind, job.path)
    else:
        with open(job.path, "rb") as data:
            yield parse_jsonl(data, kind, job.path)


def _accepted(
    results: Iterable[Result], tally: Tally, on_reject: Callable[[Rejected], None]
) -> Iterator[tuple[bytes, bytes]]:
    for result in results:
        tally.add(result)
        if isinstance(result, Accepted):
            yield result.key, result.value
        else:
            on_reject(result)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    tally = Tally()
    progress = Progress()
    with ExitStack() as stack:
        try:
            jobs = _plan(args.files, args.format)
            # Read every header before publishing anything: a wrong file fails the run cleanly.
            for job in jobs:
                with _opened(job, args.kind) as parsed:
                    if parsed.unknown_columns:
                        print(
                            f"{job.path}: ignoring unknown column(s) "
                            f"{', '.join(parsed.unknown_columns)}",
                            file=sys.stderr,
                        )
            rejects_out: IO[bytes] | None = (
                stack.enter_context(open(args.rejects, "wb")) if args.rejects else None
            )
        except (ExportError, OSError) as exc:
            print(f"publish-reference: {exc}", file=sys.stderr)
            return 2

        def on_reject(rejected: Rejected) -> None:
            if rejects_out is not None:
                rejects_out.write(orjson.dumps(rejected.to_json()) + b"\n")

        def rows() -> Iterator[tuple[bytes, bytes]]:
            for job in jobs:
                with _opened(job, args.kind) as parsed:
                    yield from _accepted(parsed.results, tally, on_reject)

        started = time.perf_counter()
        try:
            if args.dry_run:
                for _ in rows():
                    pass
            else:
                topic = topic_for(settings, args.kind)
                started = asyncio.run(_publish(settings, topic, rows(), progress))
        except (ExportError, OSError) as exc:
            print(f"publish-reference: {exc}", file=sys.stderr)
            print(summary(tally, progress.acked, args.dry_run, None))
            return 2
        except (KafkaError, PipelineError, SettingsError) as exc:
            print(f"publish-reference: Kafka at {settings.kafka_bootstrap}: {exc}", file=sys.stderr)
            print(summary(tally, progress.acked, args.dry_run, None))
            return 2
        elapsed = time.perf_counter() - started
    print(summary(tally, progress.acked, args.dry_run, elapsed))
    return 1 if tally.rejected_total else 0


async def _publish(
    settings: Settings, topic: str, rows: Iterable[tuple[bytes, bytes]], progress: Progress
) -> float:
    """Publish ``rows``; returns the ``perf_counter`` time at which sending started."""
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        started = time.perf_counter()
        await send_batched(producer, topic, rows, progress=progress)
        return started
    finally:
        await producer.stop()


def summary(tally: Tally, published: int, dry_run: bool, elapsed: float | None) -> str:
    """The human summary printed at the end of a run (``elapsed`` None: the run failed)."""
    if dry_run:
        done = "0 (dry run)"
    elif elapsed is None:
        done = f"{published} acknowledged before the failure; later rows were not published"
    else:
        rate = published / elapsed if elapsed > 0 else 0.0
        done = f"{published} in {elapsed:.1f} s ({rate:,.0f} records/s)"
    lines = [
        f"rows read: {tally.read}",
        f"valid:     {tally.valid}",
        f"published: {done}",
        f"rejected:  {tally.rejected_total}",
    ]
    for code, n in sorted(tally.rejected.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {code}: {n}")
    if tally.first_rejects:
        lines.append(f"first {len(tally.first_rejects)} rejected row(s):")
        lines.extend(f"  {r.source}:{r.line}: {r.code}: {r.message}" for r in tally.first_rejects)
    return "\n".join(lines)
