"""A labelled bank simulator: staff, customers, assignments, normal activity, reference
changes, and injected misuse with benign look-alikes, as contract records.

    >>> from simbank.simulate import SimConfig, generate
    >>> sim = generate(SimConfig())            # doctest: +SKIP
"""

from simbank.simulate.config import SimConfig
from simbank.simulate.generate import generate
from simbank.simulate.model import Incident, RefRecord, Simulation

__all__ = ["Incident", "RefRecord", "SimConfig", "Simulation", "generate"]
