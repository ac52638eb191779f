"""The embedded server's replies encoded by pymongo's C encoder (mongoeco 4.11.0's wire server).

8. **One pass of C over a reply.** mongoeco's wire server answers every OP_MSG command with
   ``BSON.encode(encode_wire_value(reply))``: ``encode_wire_value`` first rebuilds the whole
   reply in Python (every dict, list and value of every document of a cursor batch), only to
   swap the few values of mongoeco's own types for ``bson``'s, and then the C encoder walks the
   copy again. On a gallery page (50 piece documents) that Python walk was about a third of the
   server's CPU per request.

   ``CookWireServer`` encodes the reply as it is with ``bson.encode``, whose C encoder handles
   dicts (mongoeco's ``SON`` is one), lists and every ``bson`` type itself and calls a fallback
   only for a value it cannot encode; the fallback is ``encode_wire_value`` of that one value
   (mongoeco's ``Regex``, ``Timestamp``, ``Decimal128``, ``DBRef``, its int32/int64/double/
   decimal wrappers, ``decimal.Decimal``, ``UNDEFINED``). The rest maps by itself to the same
   bytes: mongoeco's ``ObjectId`` is a subclass of ``bson``'s, a ``uuid.UUID`` is encoded with
   the standard representation (as ``encode_wire_value`` converts it), ``bytes`` is binary
   subtype 0 both ways. One type would not: mongoeco's ``Binary`` is a ``bytes`` subclass that
   the C encoder would write as subtype 0 whatever its subtype, so the class gets ``bson``'s
   marker of a binary (``_type_marker = 5``, read only by ``bson``'s encoders, which then write
   its ``subtype`` as for ``bson.Binary``; set when this module is imported, i.e. in the
   embedded server's process).

   Only where mongoeco's encoding fails could this one differ: ``encode_wire_value`` does not
   look inside tuples (a mongoeco value in a tuple made the reply fail), the C encoder does.
   Replies of legacy OP_QUERY (the handshake) keep mongoeco's encoder.

``tests/test_embedded_wire.py`` compares the bytes of both encoders on random replies holding
every type mongoeco produces (and shows it notices the ``Binary`` subtype going wrong), and runs
the differential workload over the wire against mongoeco's own server.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import bson
from bson.binary import STANDARD
from bson.codec_options import CodecOptions, TypeRegistry
from mongoeco._types._bson_values import Binary as MongoecoBinary
from mongoeco.errors import MongoEcoError
from mongoeco.wire import AsyncMongoEcoProxyServer
from mongoeco.wire.bson_bridge import encode_wire_value
from mongoeco.wire.protocol import OP_MSG

log = logging.getLogger("service.embedded_db")

BINARY_MARKER = 5  # bson.Binary._type_marker

MongoecoBinary._type_marker = BINARY_MARKER  # type: ignore[attr-defined]

REPLY_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    uuid_representation=STANDARD,
    type_registry=TypeRegistry(fallback_encoder=encode_wire_value),
)


def encode_reply(document: dict[str, Any]) -> bytes:
    """The BSON of ``document`` as mongoeco writes it (``BSON.encode(encode_wire_value(d))``)."""
    return bson.encode(document, codec_options=REPLY_OPTIONS)


def op_msg_response(document: dict[str, Any], *, request_id: int, response_to: int) -> bytes:
    """mongoeco's ``encode_op_msg_response`` with ``encode_reply`` for the body."""
    payload = struct.pack("<i", 0) + b"\x00" + encode_reply(document)
    header = struct.pack("<iiii", 16 + len(payload), request_id, response_to, OP_MSG)
    return header + payload


class CookWireServer(AsyncMongoEcoProxyServer):  # type: ignore[misc]  # untyped
    """mongoeco's wire server whose OP_MSG replies are encoded in one C pass (part 8), and
    which logs, with its traceback, a command that failed for a reason other than a MongoDB
    error (mongoeco answers it with only the exception's message)."""

    def _wire_failure(self, error: Exception, header: Any, state: Any) -> None:
        if not isinstance(error, MongoEcoError):
            log.error("%s failed inside the server", state.command_name, exc_info=error)
        super()._wire_failure(error, header, state)

    def _render_wire_result(self, header: Any, request_id: int, state: Any) -> bytes | None:
        if state.disposition == "suppress" or header.op_code != OP_MSG:
            rendered: bytes | None = super()._render_wire_result(header, request_id, state)
            return rendered
        state.phase = "encode"
        response = op_msg_response(
            state.result, request_id=request_id, response_to=header.request_id
        )
        state.response = "ready"
        return response
