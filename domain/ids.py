"""Identifiers. Every ``_id`` Cook writes is a prefixed string and never numeric.

Non-numeric ids matter for the embedded database (see ``service/embedded_db.py``) and make ids
self-describing in logs. Account ids come from token subjects and are validated here, once.
"""

from __future__ import annotations

import re
import uuid
from typing import NewType

from domain.errors import BadUserInput

AccountId = NewType("AccountId", str)

ACCOUNT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@|+-]{0,127}$")
_ENTITY_ID = re.compile(r"^[a-z]{2,4}_[0-9a-f]{32}$")


def parse_account_id(value: str) -> AccountId:
    """Return ``value`` as an ``AccountId``, or raise ``ValueError``: 1-128 safe characters."""
    if not ACCOUNT_ID_PATTERN.fullmatch(value):
        raise ValueError("an account id is 1-128 characters of letters, digits and ._:@|+-")
    return AccountId(value)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def parse_entity_id(value: str, prefix: str, path: str = "id") -> str:
    """Check an id from the client has the shape of a ``prefix`` id (``col_<32 hex>``)."""
    if not (_ENTITY_ID.fullmatch(value) and value.startswith(prefix + "_")):
        raise BadUserInput.at(path, f"is not a valid id (expected {prefix}_ followed by 32 hex)")
    return value
