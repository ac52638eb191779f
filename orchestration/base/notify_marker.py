"""The outbox half of a notification: what a cook's or an export's ending update adds.

The transition that ends a cook or an export sets ``notify`` (the event's name) on the same
document in the same conditional update, so the two commit together: a process killed right
after the end loses nothing. The fan-out (``fanout.py``) of any process turns the mark into
deliveries and clears it. This module imports nothing of Cook's, so the stores can use it.
"""

from __future__ import annotations

from typing import Any

FIELD = "notify"


def ended(event: str) -> dict[str, Any]:
    """The update fragment recording that ``event`` is to be sent."""
    return {"$set": {FIELD: event}}
