"""The one place a database filter is scoped to its caller: owners see theirs, admins all."""

from __future__ import annotations

from typing import Any

from domain.principal import Principal


def owned(principal: Principal, query: dict[str, Any]) -> dict[str, Any]:
    """``query`` restricted to documents the caller owns, unless the caller is an admin."""
    if principal.is_admin:
        return query
    return {**query, "ownerId": principal.subject}
