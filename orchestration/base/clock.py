from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current time at the database's precision (milliseconds), in UTC."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)
