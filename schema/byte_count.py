"""``ByteCount``: a size in bytes, which outgrows GraphQL's 32-bit ``Int`` (the export archive
of a thousand 1024 px images is about 3.4 GB). A plain integer in JSON, from 0 to 2^53 - 1, the
integers every JSON client (JavaScript's numbers included) reads exactly."""

from __future__ import annotations

from typing import NewType

import strawberry

MAX_BYTE_COUNT = 2**53 - 1


def _checked(value: object) -> int:
    # bool is an int, and the database hands sizes past 2^31 back as bson's Int64, also one
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BYTE_COUNT:
        raise ValueError(f"ByteCount must be an integer from 0 to {MAX_BYTE_COUNT}: {value!r}")
    return int(value)


ByteCount = NewType("ByteCount", int)  # what fields are annotated with

BYTE_COUNT_SCALAR = strawberry.scalar(  # its definition: given to the schema as an override
    name="ByteCount",
    description=(
        "A size in bytes: an integer from 0 to 2^53 - 1 (beyond GraphQL's 32-bit Int; exact "
        "in every JSON client)."
    ),
    serialize=_checked,
    parse_value=_checked,
)
