"""Stateless rules over one enriched access. Pure functions; no I/O."""

from __future__ import annotations

from pipeline.detect.catalogue import spec
from pipeline.detect.signals import Signal
from pipeline.reference.state import Enriched


def unassigned_customer_access(e: Enriched) -> Signal | None:
    """A customer manager touching a customer they are not assigned to."""
    ev = e.event
    if ev.customer_id is None or e.assigned or e.role != "customer_manager":
        return None
    s = spec("unassigned_customer_access")
    return Signal(s.code, s.weight, f"{ev.action} on a customer not assigned to {ev.staff_id}")


def credit_report_without_authorization(e: Enriched) -> Signal | None:
    ev = e.event
    if ev.action != "credit_report_query" or ev.authorization_ref:
        return None
    s = spec("credit_report_without_authorization")
    return Signal(s.code, s.weight, "credit report queried without authorization_ref")


RULES = (unassigned_customer_access, credit_report_without_authorization)


def evaluate_rules(e: Enriched) -> list[Signal]:
    out = []
    for rule in RULES:
        sig = rule(e)
        if sig is not None:
            out.append(sig)
    return out
