"""``simbank evaluate``: labelled banks through the pipeline, scored, with their spread.

One bank (the size flags, ``--profile default|random``) or ``--profiles N`` banks drawn
from a split (``--split tune``: profile seeds 1000-1999, ``--split report``: 5000-5999;
see :mod:`simbank.evaluate.banks`). Each bank runs through the real pipeline
(:mod:`simbank.evaluate.realrun`: Kafka, worker processes, Postgres, published day by
day) or, with ``--offline``, through the pure core in-process
(:mod:`simbank.evaluate.offline`). Variants on the same banks:

- ``--learn-days D`` (default 7): the worker's ``PIPELINE_LEARN_UNTIL`` is the local
  midnight (``settings.bank_timezone``) starting day D; scoring covers the days after
  it (:mod:`simbank.evaluate.score`). ``--compare-cold`` adds D = 0 (cold start).
- ``--feedback``: the simulated analyst's daily triage goes through
  ``{prefix}alert-feedback`` (offline: ``run_offline(triage=...)``);
  ``--compare-feedback`` runs with and without.

The two baselines (naive rules, plain HalfSpaceTrees) run on simbank's own enrichment
of the same banks and are scored over the same window. Output: ``report.json``,
``summary.md`` and ``chart.png`` (:mod:`simbank.evaluate.report`).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.settings import PLACEHOLDER_PSEUDONYM_KEYS, Settings
from simbank.evaluate.analyst import SimulatedAnalyst
from simbank.evaluate.banks import SPLITS, Bank, SplitError, drawn_banks
from simbank.evaluate.baselines import halfspacetrees, naive_rules
from simbank.evaluate.enrich import enrich_simulation
from simbank.evaluate.offline import RunResult, run_core
from simbank.evaluate.report import BankResult, write_evaluation
from simbank.evaluate.score import Period, Scorecard, score
from simbank.simulate import Simulation, generate
from simbank.simulate.config import ConfigError, add_size_arguments, config_from_args


@dataclass(frozen=True)
class Variant:
    learn_days: int
    feedback: bool

    @property
    def name(self) -> str:
        base = "cold start" if self.learn_days == 0 else f"learn {self.learn_days}d"
        return f"pipeline {base}" + (" +feedback" if self.feedback else "")


def configure(parser: argparse.ArgumentParser) -> None:
    add_size_arguments(parser)
    banks = parser.add_argument_group("banks")
    banks.add_argument(
        "--profiles",
        type=int,
        default=0,
        metavar="N",
        help="evaluate N drawn bank profiles of --split instead of the one bank of the "
        "size flags (each bank: its profile's branches and customers; --staff, --days and "
        "--start apply)",
    )
    banks.add_argument(
        "--split",
        choices=sorted(SPLITS),
        default="tune",
        help="profile seeds 1000-1999 (tune) or 5000-5999 (report); default %(default)s",
    )
    banks.add_argument(
        "--first-profile-seed", type=int, default=None, help="default: the split's first seed"
    )
    runs = parser.add_argument_group("variants")
    runs.add_argument(
        "--learn-days",
        type=int,
        default=7,
        help="learning period in days (PIPELINE_LEARN_UNTIL); 0 = cold start (default 7)",
    )
    runs.add_argument("--compare-cold", action="store_true", help="also run a cold start")
    runs.add_argument(
        "--feedback",
        action="store_true",
        help="the simulated analyst sends a daily triage through the feedback topic",
    )
    runs.add_argument(
        "--compare-feedback", action="store_true", help="run with and without feedback"
    )
    runs.add_argument(
        "--unreviewed-share", type=float, default=0.0, help="alerts the analyst never reviews"
    )
    runs.add_argument(
        "--analyst-error-rate", type=float, default=0.0, help="share of wrong verdicts"
    )
    runs.add_argument("--no-baselines", action="store_true", help="skip the two baselines")
    how = parser.add_argument_group("how")
    how.add_argument(
        "--offline",
        action="store_true",
        help="run the pure core in-process instead of the real pipeline (tuning only)",
    )
    how.add_argument("--workers", type=int, default=1, help="worker processes")
    how.add_argument("--partitions", type=int, default=4)
    how.add_argument("--out", type=Path, default=None, help="default reports/eval-...")
    how.add_argument("--timeout", type=float, default=900.0, help="max seconds per wait")
    how.add_argument(
        "--settle", type=float, default=3.0, help="seconds without new alerts = drained"
    )


def variants(args: argparse.Namespace) -> list[Variant]:
    learns = [args.learn_days] + ([0] if args.compare_cold and args.learn_days else [])
    feedbacks = [False, True] if args.compare_feedback else [bool(args.feedback)]
    return [Variant(d, f) for d in learns for f in feedbacks]


def banks_from_args(args: argparse.Namespace) -> list[Bank]:
    if args.profiles:
        return drawn_banks(
            args.split,
            args.profiles,
            staff=args.staff,
            days=args.days,
            start=args.start,
            first=args.first_profile_seed,
        )
    return [Bank(None, config_from_args(args))]


def run(args: argparse.Namespace) -> int:
    try:
        banks = banks_from_args(args)
        if not 0 <= args.learn_days < args.days:
            raise ConfigError(f"--learn-days must be 0..{args.days - 1}, got {args.learn_days}")
    except (ConfigError, SplitError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(evaluate(args, banks))


def _base_settings(args: argparse.Namespace) -> Settings:
    base = Settings.from_env()
    if base.pseudonym_key in PLACEHOLDER_PSEUDONYM_KEYS:
        # simulated customers only; a fresh key keeps the worker's production check happy
        base = base.replace(pseudonym_key=secrets.token_hex(16))
    return base.replace(partitions=args.partitions)


def _run_settings(base: Settings, run_id: str, out_dir: Path, period: Period) -> Settings:
    learn_until = datetime.fromtimestamp(period.learn_until, UTC) if period.learn_days > 0 else None
    return base.replace(
        topic_prefix=f"eval-{run_id}.",
        app_id=f"access-watch-eval-{run_id}",
        data_dir=out_dir / "workers" / run_id,
        learn_until=learn_until,
    )


async def evaluate(args: argparse.Namespace, banks: list[Bank]) -> int:
    base = _base_settings(args)
    stamp = time.strftime("%Y%m%d%H%M%S")
    if args.out is not None:
        out_dir = Path(args.out)
    elif args.profiles:
        out_dir = Path("reports") / f"eval-{args.split}-{args.profiles}"
    else:
        out_dir = Path("reports") / f"eval-{banks[0].config.seed}"
    chosen = variants(args)
    results: list[BankResult] = []
    for b_idx, bank in enumerate(banks):
        t = time.monotonic()
        sim = generate(bank.config)
        gen_s = time.monotonic() - t
        by_date = sim.active_staff_days_by_date()
        print(
            f"[{b_idx + 1}/{len(banks)}] {bank.label}: {bank.config.branches} branches, "
            f"{bank.config.staff} staff, {len(sim.events)} accesses, "
            f"{sum(1 for i in sim.incidents if not i.benign)} incidents ({gen_s:.1f} s)",
            flush=True,
        )
        cards: list[Scorecard] = []
        runs: dict[str, dict[str, Any]] = {}
        for v_idx, variant in enumerate(chosen):
            period = Period(
                bank.config.start_date, bank.config.days, variant.learn_days, base.bank_timezone
            )
            s = _run_settings(base, f"{stamp}-{b_idx}-{v_idx}", out_dir, period)
            analyst = (
                SimulatedAnalyst(
                    sim.incidents,
                    timezone=base.bank_timezone,
                    unreviewed_share=args.unreviewed_share,
                    error_rate=args.analyst_error_rate,
                    seed=bank.config.seed,
                )
                if variant.feedback
                else None
            )
            t = time.monotonic()
            result = await _one_run(args, sim, s, out_dir, analyst)
            card = score(variant.name, sim.incidents, result.alerts, by_date, period)
            if analyst is not None:
                card.extra["analyst"] = {
                    "reviewed": analyst.stats.reviewed,
                    "unreviewed": analyst.stats.unreviewed,
                    "wrong": analyst.stats.wrong,
                    "verdicts": dict(sorted(analyst.stats.verdicts.items())),
                }
            card.extra["run"] = {
                **result.meta,
                "alert_revisions": len(result.alerts),
                "learn_until": s.learn_until.isoformat() if s.learn_until else None,
                "seconds": round(time.monotonic() - t, 1),
            }
            cards.append(card)
            runs[variant.name] = card.extra["run"]
            print(f"    {_one_line(card)}", flush=True)
        if not args.no_baselines:
            period = Period(
                bank.config.start_date, bank.config.days, chosen[0].learn_days, base.bank_timezone
            )
            for name, fn in (("naive_rules", naive_rules), ("halfspacetrees", halfspacetrees)):
                t = time.monotonic()
                card = score(name, sim.incidents, fn(enrich_simulation(sim)), by_date, period)
                card.extra["seconds"] = round(time.monotonic() - t, 2)
                cards.append(card)
                print(f"    {_one_line(card)}", flush=True)
        results.append(BankResult(_bank_info(bank, sim, gen_s), cards))
    meta = {
        "command": "simbank evaluate " + " ".join(sys.argv[2:] if len(sys.argv) > 2 else []),
        "mode": "offline (pure core, no broker)" if args.offline else "real pipeline",
        "split": args.split if args.profiles else None,
        "profiles": args.profiles,
        "learn_days": args.learn_days,
        "variants": [v.name for v in chosen],
        "bank_timezone": base.bank_timezone,
        "analyst": {
            "unreviewed_share": args.unreviewed_share,
            "error_rate": args.analyst_error_rate,
        },
    }
    paths = write_evaluation(results, meta, out_dir)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


async def _one_run(
    args: argparse.Namespace,
    sim: Simulation,
    s: Settings,
    out_dir: Path,
    analyst: SimulatedAnalyst | None,
) -> RunResult:
    if args.offline:
        return await asyncio.to_thread(run_core, sim, s, analyst)
    from simbank.evaluate.realrun import run_real

    return await run_real(
        sim,
        s,
        Path(s.data_dir),
        workers=args.workers,
        analyst=analyst,
        timeout=args.timeout,
        settle_s=args.settle,
    )


def _one_line(card: Scorecard) -> str:
    return (
        f"{card.name:<34} recall {card.incident_recall:.2f} "
        f"({card.kinds_found}/{card.kinds_scored} kinds)  precision {card.alert_precision:.2f}"
        f"  false/100 staff-days {card.false_alerts_per_100_staff_days:.2f}"
        f"  false > medium {card.false_alerts_above_medium}"
    )


def _bank_info(bank: Bank, sim: Simulation, gen_s: float) -> dict[str, Any]:
    return {
        "label": bank.label,
        "profile_seed": bank.profile_seed,
        "simulation_seed": bank.config.seed,
        "size": bank.config.to_json(),
        "profile": bank.config.profile.to_json(),
        "events": len(sim.events),
        "incidents": sum(1 for i in sim.incidents if not i.benign),
        "benign_lookalikes": sum(1 for i in sim.incidents if i.benign),
        "active_staff_days": sim.active_staff_days(),
        "generate_seconds": round(gen_s, 1),
    }
