"""Large binaries across mongoeco's command boundary without a hexadecimal round trip (4.11.0).

10. **A chunk's bytes are not encoded to be decoded.** Every document a command brings
    (``insert_one`` of each document of an ``insert``, a replacement, ...) passes through
    ``DocumentCodec.to_internal``, which normalizes it by encoding it to mongoeco's tagged
    JSON-ready form and decoding that again. For a binary value that is ``hexlify`` then
    ``unhexlify`` of all its bytes, and for a GridFS chunk (255 KiB) about 1 ms of the event
    loop's thread, a fifth of the embedded server's CPU while a file was being stored.

    ``install`` wraps ``to_internal``: the top-level values of a plain document that are large
    binaries (``bytes``, ``bson``'s or mongoeco's ``Binary``, at least ``LARGE`` bytes, as for
    the row's encoding in ``embedded_writes``) are replaced by empty ones of the same type and
    subtype, the rest is normalized by mongoeco's own ``to_internal``, and the values are put
    back as that round trip would have made them:
    the same bytes (``bytes`` stays ``bytes``; a ``Binary`` becomes mongoeco's immutable
    internal binary of the same subtype). The encoding of a binary does not depend on its
    bytes, only on its type and subtype, so everything else comes out the same. Where the
    normalized document does not hold the empty stand-ins exactly where they were put, the
    whole document goes through ``to_internal`` as before.

``tests/test_embedded_boundary.py`` compares both on random documents holding every kind of
binary (top level and nested) and shows that a chunk's bytes are no longer hexlified.
"""

from __future__ import annotations

from typing import Any

from bson import Binary
from mongoeco._types._bson_values import Binary as MongoecoBinary
from mongoeco.core import codec

from service.embedded_writes import LARGE  # the same "large binary" as the row's encoding

LIFTED: frozenset[type] = frozenset({bytes, Binary, MongoecoBinary, codec._InternalBsonBinary})

_mongoeco_to_internal = codec.DocumentCodec.to_internal


def to_internal(data: Any) -> Any:
    """``DocumentCodec.to_internal(data)``, without the round trip of large top-level binaries."""
    if type(data) is not dict:
        return _mongoeco_to_internal(data)
    large = {k: v for k, v in data.items() if type(v) in LIFTED and len(v) >= LARGE}
    if not large:
        return _mongoeco_to_internal(data)
    light = {k: _empty_like(large[k]) if k in large else v for k, v in data.items()}
    normalized = _mongoeco_to_internal(light)
    if not _holds_stand_ins(normalized, light, large):
        return _mongoeco_to_internal(data)
    return codec._InternalBsonDocument(
        {k: _normalized(large[k]) if k in large else v for k, v in normalized.items()}
    )


def install() -> None:
    """Make ``DocumentCodec.to_internal`` this module's (idempotent)."""
    codec.DocumentCodec.to_internal = staticmethod(to_internal)  # type: ignore[method-assign]


def _empty_like(value: Any) -> Any:
    if type(value) is bytes:
        return b""
    return type(value)(b"", value.subtype)


def _normalized(value: Any) -> Any:
    """What mongoeco's round trip makes of a binary: ``bytes`` of the same bytes, or its
    internal ``Binary`` of the same subtype."""
    if type(value) is bytes:
        return value  # immutable: an equal copy would be no different
    return codec._InternalBsonBinary(value, subtype=value.subtype)


def _holds_stand_ins(normalized: Any, light: dict[str, Any], large: dict[str, Any]) -> bool:
    if type(normalized) is not codec._InternalBsonDocument or list(normalized) != list(light):
        return False
    for key, value in large.items():
        got: Any = normalized[key]
        want = bytes if type(value) is bytes else codec._InternalBsonBinary
        if type(got) is not want or len(got) != 0:
            return False
        if want is not bytes and getattr(got, "subtype", None) != value.subtype:
            return False
    return True
