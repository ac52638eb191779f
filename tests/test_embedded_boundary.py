"""Large binaries across mongoeco's command boundary (``service/embedded_boundary.py``): the
same normalized document as mongoeco's own ``to_internal``, without hexlifying the bytes."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from bson import Binary, ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st
from mongoeco._types._bson_values import Binary as MongoecoBinary
from mongoeco.core import codec
from pymongo import MongoClient

from service import embedded_boundary
from service.embedded_boundary import LARGE, to_internal
from service.embedded_db import EmbeddedDatabase

mongoeco_to_internal = embedded_boundary._mongoeco_to_internal


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down and the same key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Binary):
        return bytes(a) == bytes(b) and a.subtype == b.subtype
    return bool(a == b)


sizes = st.sampled_from([0, 1, LARGE - 1, LARGE, LARGE + 1, 70_000])
subtypes = st.sampled_from([0, 2, 3, 4, 5, 128, 255])


@st.composite
def binaries(draw: st.DrawFn) -> bytes:
    data = os.urandom(draw(sizes))
    kind = draw(st.sampled_from(["bytes", "bson", "mongoeco", "internal"]))
    if kind == "bytes":
        return data
    subtype = draw(subtypes)
    maker = {"bson": Binary, "mongoeco": MongoecoBinary, "internal": codec._InternalBsonBinary}
    value: bytes = maker[kind](data, subtype)
    return value


scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.builds(ObjectId),
    st.builds(uuid.uuid4),
    binaries(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
keys = st.sampled_from(["_id", "files_id", "n", "data", "$mongoeco", "type", "value", "x.y"])
documents = st.dictionaries(keys, values, max_size=6)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_a_document_comes_out_as_mongoecos_own_to_internal_makes_it(
    document: dict[str, Any],
) -> None:
    assert same(to_internal(document), mongoeco_to_internal(document))


def test_a_document_that_is_not_a_plain_dict_takes_mongoecos_path_whole() -> None:
    from bson.son import SON

    son = SON([("data", os.urandom(LARGE)), ("n", 1)])
    assert same(to_internal(son), mongoeco_to_internal(son))
    internal = mongoeco_to_internal({"data": os.urandom(LARGE)})
    assert to_internal(internal) is internal


@pytest.fixture
def encoded_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the binaries mongoeco's codec encodes."""
    sizes: list[int] = []
    encode = codec.DocumentCodec.encode

    def recording(data: Any) -> Any:
        if isinstance(data, bytes):
            sizes.append(len(data))
        return encode(data)

    monkeypatch.setattr(codec.DocumentCodec, "encode", staticmethod(recording))
    return sizes


@pytest.mark.parametrize("fast", [True, False], ids=["wrapped", "mongoeco"])
def test_a_chunks_bytes_are_never_encoded_on_the_way_in(
    encoded_sizes: list[int], fast: bool
) -> None:
    chunk = {"_id": ObjectId(), "files_id": ObjectId(), "n": 0, "data": os.urandom(255 * 1024)}
    normalized = (to_internal if fast else mongoeco_to_internal)(chunk)
    assert normalized["data"] == chunk["data"]
    encoded_large = [size for size in encoded_sizes if size >= LARGE]
    assert (encoded_large == []) is fast  # mongoeco's own path hexlifies the chunk


def test_large_binaries_of_every_subtype_round_trip_through_the_server(
    embedded: EmbeddedDatabase,
) -> None:
    documents = [
        {"_id": 1, "data": os.urandom(LARGE * 3)},
        {"_id": 2, "data": Binary(os.urandom(LARGE * 2), 5)},
        {"_id": 3, "data": Binary(os.urandom(LARGE), 128), "small": Binary(b"\x01", 3)},
        {"_id": 4, "nested": {"data": os.urandom(LARGE)}, "list": [Binary(os.urandom(LARGE), 2)]},
    ]
    with MongoClient(embedded.uri, timeoutMS=10_000) as client:
        collection = client[f"boundary_{uuid.uuid4().hex[:8]}"].binaries
        collection.insert_many([dict(d) for d in documents])
        stored = {d["_id"]: d for d in collection.find()}
    for document in documents:
        back = stored[document["_id"]]
        assert back == document
        for key in ("data", "small"):
            if isinstance(document.get(key), Binary):
                assert back[key].subtype == document[key].subtype
