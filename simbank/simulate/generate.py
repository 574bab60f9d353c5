"""Generating a whole labelled simulation from a config. Pure and deterministic."""

from __future__ import annotations

from simbank.simulate.activity import Recorder
from simbank.simulate.assemble import assemble
from simbank.simulate.bank import build_bank
from simbank.simulate.behaviour import Behaviour
from simbank.simulate.changes import plan_changes
from simbank.simulate.config import SimConfig
from simbank.simulate.incidents import Injector
from simbank.simulate.labels import LabelBook
from simbank.simulate.model import Simulation
from simbank.simulate.schedule import Schedule


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
