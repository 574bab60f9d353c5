"""Generating a whole labelled simulation from a config. Pure and deterministic."""

from __future__ import annotations

from pipeline.simulate.activity import Recorder
from pipeline.simulate.assemble import assemble
from pipeline.simulate.bank import build_bank
from pipeline.simulate.behaviour import Behaviour
from pipeline.simulate.changes import plan_changes
from pipeline.simulate.config import SimConfig
from pipeline.simulate.incidents import Injector
from pipeline.simulate.labels import LabelBook
from pipeline.simulate.model import Simulation
from pipeline.simulate.schedule import Schedule


def generate(config: SimConfig) -> Simulation:
    """Simulate the bank described by ``config`` (same config -> identical output)."""
    bank = build_bank(config)
    book = LabelBook()
    changes = plan_changes(bank, book)
    schedule = Schedule(bank)
    rec = Recorder()
    injector = Injector(bank, schedule, book, rec, changes)
    overtime = injector.plan_overtime()
    Behaviour(bank, schedule, book, rec, changes, overtime).run()
    injector.run()
    return assemble(bank, book, rec)
