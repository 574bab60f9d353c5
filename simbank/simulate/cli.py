"""``simbank simulate``: generate the labelled bank and write it to JSONL or Kafka."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter

from pipeline.settings import Settings
from simbank.broker import publish_kafka
from simbank.simulate.config import ConfigError, add_size_arguments, config_from_args
from simbank.simulate.generate import generate
from simbank.simulate.model import Simulation
from simbank.simulate.output import write_jsonl


def configure(parser: argparse.ArgumentParser) -> None:
    add_size_arguments(parser)
    parser.add_argument(
        "--output", choices=("jsonl", "kafka"), default="jsonl", help="default %(default)s"
    )
    parser.add_argument(
        "--out-dir", default="./sim-out", help="JSONL directory (default %(default)s)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="Kafka: events per second of wall time (default: unlimited)",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="Kafka: partitions of topics created here (default: PIPELINE_PARTITIONS or 8)",
    )


def describe(sim: Simulation, seconds: float) -> str:
    """A short human summary of a simulation."""
    staff = {r.key for r in sim.reference if r.topic == "staff-directory"}
    customers = sum(1 for r in sim.reference if r.topic == "customer-profiles")
    lines = [
        f"profile {sim.config.profile.name}, seed {sim.config.seed}: "
        f"{sim.config.branches} branches; generated in {seconds:.1f} s: {len(staff)} staff, "
        f"{customers} customers, "
        f"{len(sim.reference)} reference records, {len(sim.events)} events",
    ]
    for benign, title in ((False, "malicious"), (True, "benign look-alikes")):
        kinds = Counter(i.kind for i in sim.incidents if i.benign == benign)
        body = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"
        lines.append(f"{title}: {body}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    sim = generate(config)
    print(describe(sim, time.perf_counter() - began))
    if args.output == "jsonl":
        out = write_jsonl(sim, args.out_dir)
        print(f"wrote {out}")
        return 0
    settings = Settings.from_env()
    partitions = args.partitions if args.partitions is not None else settings.partitions
    stats = asyncio.run(
        publish_kafka(sim, settings.kafka_bootstrap, settings.topic_prefix, args.rate, partitions)
    )
    print(
        f"published {stats.reference} reference records in {stats.reference_seconds:.1f} s and "
        f"{stats.events} events in {stats.events_seconds:.1f} s "
        f"({stats.events_per_second:,.0f} events/s) to {settings.kafka_bootstrap}, "
        f"prefix {settings.topic_prefix!r}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simbank.simulate", description=__doc__)
    configure(parser)
    return run(parser.parse_args(argv))
