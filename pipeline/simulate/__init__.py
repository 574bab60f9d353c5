"""A labelled bank simulator: staff, customers, assignments, normal activity, reference
changes, and injected misuse with benign look-alikes, as contract records.

    >>> from pipeline.simulate import SimConfig, generate
    >>> sim = generate(SimConfig())            # doctest: +SKIP
"""

from pipeline.simulate.config import SimConfig
from pipeline.simulate.generate import generate
from pipeline.simulate.model import Incident, RefRecord, Simulation

__all__ = ["Incident", "RefRecord", "SimConfig", "Simulation", "generate"]
