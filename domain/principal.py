"""Who is calling. Built only from a verified token, never from arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from domain.ids import AccountId

ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class Principal:
    subject: AccountId
    roles: frozenset[str] = field(default_factory=frozenset)
    expires_at: datetime | None = field(default=None, compare=False)

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles
