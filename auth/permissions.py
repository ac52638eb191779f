"""Strawberry permission classes. Ownership itself is checked in database filters."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from domain.errors import Forbidden
from schema.context import Info


class IsAuthenticated(BasePermission):
    """The caller presented a valid token. Raises ``UNAUTHENTICATED`` with the reason."""

    message = "sign in"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        info.context.require_principal()
        return True


class IsAdmin(BasePermission):
    message = "admins only"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        if not info.context.require_principal().is_admin:
            raise Forbidden("this operation is for admins only")
        return True
