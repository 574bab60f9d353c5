"""Customers as the console shows them: pseudonyms only.

The pipeline pseudonymizes customer ids with a keyed hash
(:class:`pipeline.alerts.ids.Pseudonymizer`, ``cref-`` and 20 hex digits).
Where a deployment has configured raw ids in alerts
(``PIPELINE_RAW_CUSTOMER_IDS``), the console hashes them with the same key
before anything is rendered, so a page never shows a raw id: the only way to
one is the audited reveal.
"""

from __future__ import annotations

import re
from typing import Final

from pipeline.alerts.ids import Pseudonymizer

_PSEUDONYM: Final = re.compile(r"^cref-[0-9a-f]{20}$")


def is_pseudonym(ref: str) -> bool:
    """
    >>> is_pseudonym("cref-0123456789abcdef0123"), is_pseudonym("C000123")
    (True, False)
    """
    return bool(_PSEUDONYM.match(ref))


class RefMasker:
    """Turns whatever an alert or evidence row carries into a pseudonym for display."""

    def __init__(self, pseudonym_key: str) -> None:
        self._hash = Pseudonymizer(pseudonym_key, raw=False)

    def __call__(self, ref: str | None) -> str | None:
        if ref is None:
            return None
        return ref if is_pseudonym(ref) else self._hash.ref(ref)
