"""The embedded server's replies (``service/embedded_wire.py``, part 8) are the bytes mongoeco's
own server writes: the encoders compared on random replies holding every type mongoeco
produces, and the two servers compared over the wire on the differential workload and on
documents of every BSON type read back as raw bytes."""

from __future__ import annotations

import datetime as dt
import decimal
import random
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mongoeco
import pytest
from bson import BSON, Code, DBRef, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.binary import Binary
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from bson.raw_bson import RawBSONDocument
from mongoeco import types as eco
from mongoeco.core.bson_scalars import BsonDecimal128, BsonDouble, BsonInt32, BsonInt64
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.wire import AsyncMongoEcoProxyServer
from mongoeco.wire.bson_bridge import encode_wire_value
from mongoeco.wire.protocol import encode_op_msg_response
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError, OperationFailure

from service import embedded_wire
from service.embedded_db import make_wire_server
from service.embedded_wire import CookWireServer, encode_reply, op_msg_response
from service.embedded_writes import NamespacedIndexesEngine as CookEngine
from tests import engine_diff
from tests.test_embedded_engine import serving


def leaves() -> list[Any]:
    """One value of every kind a reply can hold: mongoeco's own types and bson's."""
    return [
        0,
        -(2**31),
        2**31,
        2**62,
        1.5,
        float("inf"),
        True,
        False,
        None,
        "",
        "é\x00x",
        b"",
        b"\x00ab",
        *(eco.Binary(b"ab", subtype) for subtype in (0, 2, 3, 5, 6, 0x80, 0xFF)),
        eco.Binary(uuid.uuid4().bytes, 4),
        Binary(b"cd", 5),
        Binary(b"cd", 0),
        uuid.uuid4(),
        eco.ObjectId(),
        ObjectId(),
        Int64(5),
        Code("f"),
        Code("f", {"a": 1}),
        MinKey(),
        MaxKey(),
        Regex("a", "i"),
        re.compile("x", re.IGNORECASE),
        Timestamp(1, 2),
        Decimal128("1.5"),
        DBRef("c", 1, "d"),
        eco.Regex("a", "im"),
        eco.Timestamp(3, 4),
        eco.Decimal128("2.5"),
        decimal.Decimal("3.1"),
        eco.DBRef("c", eco.ObjectId(), "db", {"x": BsonInt64(3)}),
        BsonInt32(3),
        BsonInt64(2),
        BsonDouble(2.0),
        BsonDecimal128(decimal.Decimal("1")),
        eco.UNDEFINED,
        dt.datetime(2024, 1, 1, 12, 30, 1, 5000),
        dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    ]


def tree(rng: random.Random, depth: int = 0, *, stored: bool = False) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return rng.choice([v for v in leaves() if storable(v) or not stored])
    items = [(f"k{i}", tree(rng, depth + 1, stored=stored)) for i in range(rng.randint(0, 4))]
    if roll < 0.65:
        return [v for _, v in items]
    if roll < 0.8:
        return eco.SON(items)
    return dict(items)


def reply(rng: random.Random) -> dict[str, Any]:
    """A reply as a cursor command answers: documents in ``cursor.firstBatch``."""
    docs = [{"_id": tree(rng), **{f"f{i}": tree(rng) for i in range(4)}} for _ in range(5)]
    return {"cursor": {"firstBatch": docs, "id": Int64(0), "ns": "db.c"}, "ok": 1.0}


def test_a_reply_is_encoded_to_the_bytes_of_mongoecos_encoder() -> None:
    rng = random.Random(11)
    for n in range(300):
        document = reply(rng)
        expected = BSON.encode(encode_wire_value(document))
        assert encode_reply(document) == expected, f"reply {n} differs"
    assert op_msg_response({"ok": 1.0}, request_id=7, response_to=3) == encode_op_msg_response(
        {"ok": 1.0}, request_id=7, response_to=3
    )


def test_the_comparison_notices_a_binary_written_without_its_subtype(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the marker, mongoeco's Binary (a bytes subclass) would be written as subtype 0."""
    monkeypatch.delattr(embedded_wire.MongoecoBinary, "_type_marker")
    document = {"v": eco.Binary(b"ab", 3)}
    assert encode_reply(document) != BSON.encode(encode_wire_value(document))


def test_a_value_neither_encoder_knows_fails_alike() -> None:
    for value in ({1, 2}, object()):
        failures = []
        for encode in (lambda d: BSON.encode(encode_wire_value(d)), encode_reply):
            with pytest.raises(Exception) as caught:  # noqa: PT011 - compared below
                encode({"v": value})
            failures.append(type(caught.value))
        assert failures[0] is failures[1]


@contextmanager
def both(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """mongoeco's server on the unpatched engine, and Cook's server on Cook's engine."""
    reference = AsyncMongoEcoProxyServer(engine=SQLiteEngine(str(tmp_path / "ref.sqlite3")))
    candidate = make_wire_server(CookEngine(str(tmp_path / "cook.sqlite3")), "127.0.0.1", 0)
    assert isinstance(candidate, CookWireServer)
    with serving(reference) as ref_uri, serving(candidate) as cook_uri:
        yield ref_uri, cook_uri


@pytest.mark.parametrize("kind", ["clean", "messy"])
def test_over_the_wire_cooks_server_answers_as_mongoecos(tmp_path: Path, kind: str) -> None:
    with both(tmp_path) as uris:
        clients: list[MongoClient[dict[str, Any]]] = [MongoClient(uri) for uri in uris]
        try:
            a, b = (c.db[kind] for c in clients)
            report = engine_diff.run(a, b, ops=150, seed=4, kind=kind, docs=30)
        finally:
            for c in clients:
                c.close()
    assert not report.mismatches, "\n".join(report.mismatches[:5])


def storable(value: Any) -> bool:
    """What a client can send and the engines store (SQLite's JSON refuses infinities)."""
    return not isinstance(value, BsonInt32) and value != float("inf")


def test_documents_of_every_type_come_back_as_the_same_bytes(tmp_path: Path) -> None:
    rng = random.Random(5)
    stored = [
        {"_id": n, "v": value, "nested": {"l": [value, {"x": value}]}, "t": tree(rng, stored=True)}
        for n, value in enumerate(v for v in leaves() if storable(v))
    ]
    options: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument)
    raw: list[list[bytes]] = []
    with both(tmp_path) as uris:
        for uri in uris:
            client: MongoClient[dict[str, Any]] = MongoClient(uri, uuidRepresentation="standard")
            try:
                collection = client.db.get_collection("all")
                for document in stored:
                    collection.insert_one(encode_wire_value(document))
                read = client.db.get_collection("all", codec_options=options)
                found = list(read.find({}).sort("_id", 1))
                found += list(read.find({}, {"t": 0}).sort("_id", -1).limit(7))
                one = read.find_one_and_update({"_id": 3}, {"$set": {"w": 1}})
                raw.append([d.raw for d in found] + [one.raw if one else b""])
            finally:
                client.close()
    assert len(raw[0]) == len(stored) + 8
    assert raw[0] == raw[1]


def test_another_mongoeco_version_gets_mongoecos_own_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = SQLiteEngine(str(tmp_path / "plain.sqlite3"))
    assert type(make_wire_server(engine, "127.0.0.1", 0)) is CookWireServer
    monkeypatch.setattr(mongoeco, "__version__", "4.12.0")
    assert type(make_wire_server(engine, "127.0.0.1", 0)) is AsyncMongoEcoProxyServer


class BrokenEngine(CookEngine):
    """Fails every write to the collection ``broken`` with an error no MongoDB would raise."""

    def _invalidate_collection_features_cache(
        self, db_name: str | None = None, coll_name: str | None = None
    ) -> None:
        if coll_name == "broken":
            raise RuntimeError("a bug inside the server")
        super()._invalidate_collection_features_cache(db_name, coll_name)


def test_a_command_failing_inside_the_server_is_logged_with_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = BrokenEngine(str(tmp_path / "cook.sqlite3"))
    with serving(make_wire_server(engine, "127.0.0.1", 0)) as uri, MongoClient(uri) as client:
        client.db.fine.insert_one({"_id": 1})
        with pytest.raises(OperationFailure, match="a bug inside the server"):
            client.db.broken.insert_one({"_id": 1})
        with pytest.raises(DuplicateKeyError):  # a MongoDB error: the client's business
            client.db.fine.insert_one({"_id": 1})
    logged = [r for r in caplog.records if r.name == "service.embedded_db" and r.exc_info]
    assert [r.getMessage() for r in logged] == ["insert failed inside the server"]
    assert "a bug inside the server" in caplog.text
