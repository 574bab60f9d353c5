"""Deterministic alert ids and pseudonymized customer references."""

from __future__ import annotations

import hashlib
import hmac


def alert_id_for(staff_id: str, first_event_id: str, namespace: str = "") -> str:
    """The id of the incident that ``first_event_id`` opened for ``staff_id``.

    Replaying the same input opens the same incident with the same first event,
    so the id is stable across replays and workers. ``namespace`` (the
    deployment's ``PIPELINE_APP_ID``) keeps deployments that share one alert
    table apart.

    >>> alert_id_for("S1", "ev-1") == alert_id_for("S1", "ev-1")
    True
    >>> alert_id_for("S1", "ev-1") != alert_id_for("S2", "ev-1")
    True
    """
    text = f"{staff_id}\x1f{first_event_id}"
    if namespace:
        text = f"{namespace}\x1f{text}"
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"al-{digest[:24]}"


class Pseudonymizer:
    """Keyed hash of customer ids (HMAC-SHA256), or raw ids where configured."""

    def __init__(self, key: str, raw: bool = False) -> None:
        self._key = key.encode()
        self._raw = raw
        self._cache: dict[str, str] = {}

    def ref(self, customer_id: str) -> str:
        if self._raw:
            return customer_id
        cached = self._cache.get(customer_id)
        if cached is None:
            mac = hmac.new(self._key, customer_id.encode(), hashlib.sha256).hexdigest()
            cached = f"cref-{mac[:20]}"
            if len(self._cache) < 100_000:
                self._cache[customer_id] = cached
        return cached
