"""Layer assets and the ``layers`` tool through the API: a HashLips project imported, cooked,
exported and checked pixel by pixel; reproducible bytes; every bad input refused unwritten."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any

import pytest
from PIL import Image

from tests.api import OWNER, Api, start_cook, start_export, wait_for_cook, wait_for_export
from tests.layer_files import (
    ORDER,
    PROJECT,
    SIZE,
    import_layers,
    layer_png,
    layers_collection,
    project_zip,
    upload,
)

PIECES = "pieces(first: 100) { id index traits { category name value } outputs { url } }"
REVIEW = "mutation($d: [ReviewDecisionInput!]!) { reviewPieces(decisions: $d) { id } }"


def layer_file(category: str, trait: str) -> bytes:
    (data,) = [
        d for name, d in PROJECT[category].items() if name.split("#")[0].split(".")[0] == trait
    ]
    return data


def independent_composite(traits: list[dict[str, Any]]) -> Image.Image:
    """Pillow's alpha compositing of the traits' layers, in order, over a clear canvas."""
    canvas = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    for t in traits:
        if t["category"] in PROJECT:
            layer = Image.open(io.BytesIO(layer_file(t["category"], t["name"]))).convert("RGBA")
            canvas = Image.alpha_composite(canvas, layer)
    return canvas


async def imported_collection(api: Api, **overrides: Any) -> dict[str, Any]:
    collection = await api.create_collection(**layers_collection(**overrides))
    body = await import_layers(api, collection["id"], project_zip(), [{"name": n} for n in ORDER])
    assert "errors" not in body, body
    imported: dict[str, Any] = body["data"]["importLayers"]
    return imported


async def cooked(api: Api, collection_id: str, count: int, seed: int) -> list[dict[str, Any]]:
    cook = await start_cook(api, collection_id, count=count, seed=seed, maxConcurrent=8)
    done = await wait_for_cook(api, cook["id"], within=60, extra=PIECES)
    assert done["status"] == "COMPLETED", done
    pieces: list[dict[str, Any]] = sorted(done["pieces"], key=lambda p: p["index"])
    return pieces


async def test_an_imported_hashlips_project_becomes_the_trait_tree_with_its_layers(
    api: Api,
) -> None:
    imported = await imported_collection(api)
    tree = imported["traitTree"]
    assert [c["name"] for c in tree] == [*ORDER, "id"], "draw order first, generated after"
    assert tree[0]["traits"] == [
        {"name": "Blue", "value": "Blue", "weight": 50.0},
        {"name": "Night", "value": "Night", "weight": 20.0},
        {"name": "Sand", "value": "Sand", "weight": 30.0},
    ]
    eyes = {t["name"]: t["weight"] for t in tree[2]["traits"]}
    assert eyes == {"Dots": 1.0, "Wide": 2.0, "Sleepy": 1.0}, "no #weight: HashLips' weight 1"
    layers = imported["layers"]
    assert (layers["width"], layers["height"]) == (SIZE, SIZE)
    stored = {(x["category"], x["trait"]): x["sha256"] for x in layers["layers"]}
    assert stored[("Eyes", "Wide")] == hashlib.sha256(PROJECT["Eyes"]["Wide#2.png"]).hexdigest()
    assert len(stored) == sum(len(files) for files in PROJECT.values())


async def test_fifty_layered_pieces_export_images_equal_to_an_independent_composite(
    api: Api,
) -> None:
    collection = await imported_collection(api)
    pieces = await cooked(api, collection["id"], 50, seed=11)
    await api.data(REVIEW, {"d": [{"pieceId": p["id"], "outcome": "ACCEPTED"} for p in pieces]})
    job = await wait_for_export(api, (await start_export(api, collection["id"]))["id"], 60)
    assert job["status"] == "COMPLETED", job
    response = await api.client.get(
        f"/exports/{job['id']}/archive", headers={"Authorization": f"Bearer {api.token(OWNER)}"}
    )
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    manifest = json.loads(archive.read("manifest.json"))
    by_id = {p["id"]: p for p in pieces}
    hashes = []
    for item in manifest["items"]:
        piece = by_id[item["pieceId"]]
        assert item["image"] == f"images/{item['number']:04d}.png"
        data = archive.read(item["image"])
        stored = archive.getinfo(item["image"]).compress_type
        assert stored == zipfile.ZIP_STORED, "a PNG goes in as it is, not deflated again"
        assert archive.getinfo(item["metadata"]).compress_type == zipfile.ZIP_DEFLATED
        hashes.append(hashlib.sha256(data).hexdigest())
        assert hashes[-1] == item["contentHash"]
        image = Image.open(io.BytesIO(data))
        assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (SIZE, SIZE))
        expected = independent_composite(piece["traits"])
        assert image.tobytes() == expected.tobytes(), f"piece {piece['index']}: pixel by pixel"
        meta = json.loads(archive.read(item["metadata"]))
        assert meta["image"] == item["image"]
        assert meta["attributes"] == [
            {"trait_type": t["category"], "value": t["name"]} for t in piece["traits"]
        ]
    assert len(hashes) == 50
    assert len(set(hashes)) > 5, "different traits, different images"
    provenance = hashlib.sha256("".join(hashes).encode()).hexdigest()
    assert manifest["provenance"]["hash"] == provenance == job["provenanceHash"]


async def test_the_same_cook_repeated_with_the_same_seed_gives_byte_identical_images(
    api: Api,
) -> None:
    runs = []
    for _ in range(2):
        collection = await imported_collection(api)
        pieces = await cooked(api, collection["id"], 12, seed=5)
        images = []
        for p in pieces:
            (output,) = [o for o in p["outputs"] if o["url"]]
            response = await api.client.get(
                output["url"], headers={"Authorization": f"Bearer {api.token(OWNER)}"}
            )
            assert response.status_code == 200
            images.append(response.content)
        runs.append(([p["traits"] for p in pieces], images))
    assert runs[0][0] == runs[1][0], "the same seed draws the same traits"
    assert runs[0][1] == runs[1][1], "and the same traits give the same bytes"


async def test_categories_without_layers_are_not_drawn_and_text_comes_from_the_template(
    api: Api,
) -> None:
    collection = await imported_collection(api)
    (piece,) = await cooked(api, collection["id"], 1, seed=3)
    data = await api.data("query($id: ID!) { piece(id: $id) { output } }", {"id": piece["id"]})
    number = next(t["value"] for t in piece["traits"] if t["category"] == "id")
    assert data["piece"]["output"] == f"Piece #{number}"


UPLOAD = """mutation($c: ID!, $cat: String!, $t: String!, $file: Upload!) {
  uploadLayer(collectionId: $c, category: $cat, trait: $t, file: $file) {
    width height layers { category trait sha256 }
  }
}"""


async def test_one_layer_can_be_uploaded_or_replaced_at_the_collections_size(api: Api) -> None:
    collection = await imported_collection(api)
    new = layer_png((1, 2, 3, 255))
    body = await upload(
        api,
        UPLOAD,
        {"c": collection["id"], "cat": "Hat", "t": "Cap"},
        {"file": ("cap.png", new, "image/png")},
    )
    assert "errors" not in body, body
    found = {
        (x["category"], x["trait"]): x["sha256"] for x in body["data"]["uploadLayer"]["layers"]
    }
    assert found[("Hat", "Cap")] == hashlib.sha256(new).hexdigest()
    refused = await upload(
        api,
        UPLOAD,
        {"c": collection["id"], "cat": "Hat", "t": "Cap"},
        {"file": ("cap.png", layer_png((1, 2, 3, 255), size=32), "image/png")},
    )
    (error,) = refused["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "is 32x32" in error["message"]
    assert "are 64x64" in error["message"]
    unknown = await upload(
        api,
        UPLOAD,
        {"c": collection["id"], "cat": "Hat", "t": "Crown"},
        {"file": ("crown.png", new, "image/png")},
    )
    assert unknown["errors"][0]["extensions"]["field"] == "trait"


# --- bad input ------------------------------------------------------------------------------


def _bomb() -> bytes:
    """A PNG whose header claims 100,000 x 100,000 pixels (its data is a few bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _with(category: str, name: str, data: bytes) -> dict[str, dict[str, bytes]]:
    return {**PROJECT, category: {**PROJECT.get(category, {}), name: data}}


def _symlink_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for category, files in PROJECT.items():
            for name, data in files.items():
                archive.writestr(f"layers/{category}/{name}", data)
        link = zipfile.ZipInfo("layers/Hat/Link.png")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    return out.getvalue()


BAD = {
    "not an image": (
        project_zip(_with("Eyes", "Text.png", b"hello, not a PNG")),
        "layers/Eyes/Text.png",
    ),
    "a JPEG": (
        project_zip(_with("Eyes", "Photo.png", b"\xff\xd8\xff\xe0" + b"\x00" * 100)),
        "layers/Eyes/Photo.png",
    ),
    "truncated": (
        project_zip(_with("Eyes", "Cut.png", layer_png((9, 9, 9, 255), (1, 1, 60, 60))[:90])),
        "layers/Eyes/Cut.png",
    ),
    "a decompression bomb": (project_zip(_with("Eyes", "Bomb.png", _bomb())), "Bomb.png"),
    "another size": (
        project_zip(_with("Hat", "Tiny.png", layer_png((9, 9, 9, 255), size=32))),
        "layers/Hat/Tiny.png",
    ),
    "a path traversal": (
        project_zip(extra={"layers/../../evil.png": layer_png((0, 0, 0, 255))}),
        "layers/../../evil.png",
    ),
    "an absolute path": (project_zip(extra={"/layers/Hat/A.png": b"x"}), "/layers/Hat/A.png"),
    "a symlink": (_symlink_zip(), "layers/Hat/Link.png"),
    "a bracket in a trait": (
        project_zip(_with("Hat", "Top[1]#2.png", layer_png((1, 1, 1, 255)))),
        "layers/Hat/Top[1]#2.png",
    ),
    "a bracket in a category": (
        project_zip(_with("Hat]", "Top.png", layer_png((1, 1, 1, 255)))),
        "layers/Hat]/Top.png",
    ),
    "a weight that is not a number": (
        project_zip(_with("Hat", "Top#rare.png", layer_png((1, 1, 1, 255)))),
        "layers/Hat/Top#rare.png",
    ),
    "too deep": (project_zip(extra={"layers/Hat/more/A.png": b"x"}), "layers/Hat/more/A.png"),
    "too many categories": (
        project_zip({f"C{i}": {"A.png": b"x"} for i in range(51)}),
        "more than 50 categories",
    ),
    "not a ZIP": (b"PK\x03\x04 but not really a zip file", "not a ZIP"),
    "no layers": (project_zip({}, {"README.md": b"hi"}), "holds no layers"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
async def test_each_bad_project_is_refused_naming_the_file_and_nothing_is_written(
    api: Api, case: str
) -> None:
    data, named = BAD[case]
    collection = await api.create_collection(**layers_collection())
    before = await _stored(api)
    body = await import_layers(api, collection["id"], data)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert named in error["message"], error["message"]
    assert body["data"] is None
    assert await _stored(api) == before, "a refused import writes nothing"
    assert not any(before[2]), "not even the layers' files"


async def test_more_traits_than_a_category_may_hold_are_refused(api: Api) -> None:
    tiny = layer_png((1, 1, 1, 255), size=1)
    many = {"Dots": {f"T{i:03d}.png": tiny for i in range(501)}}
    collection = await api.create_collection(**layers_collection())
    body = await import_layers(api, collection["id"], project_zip(many))
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "layers/Dots/T500.png: more than 500 traits" in error["message"]


async def test_an_oversized_zip_is_refused_before_it_is_opened(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resolvers import layers as resolver

    monkeypatch.setattr(resolver, "MAX_ZIP_BYTES", 1000)
    collection = await api.create_collection(**layers_collection())
    body = await import_layers(api, collection["id"], project_zip())
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "larger than 1000 bytes" in error["message"]


async def test_a_project_the_template_cannot_use_is_refused_before_any_file_is_stored(
    api: Api,
) -> None:
    tree = [
        {"manual": {"name": "Animal", "traits": [{"name": "Cat", "value": "a cat"}]}},
        {"generated": {"name": "id", "range": {"start": 1, "end": 99}}},
    ]
    collection = await api.create_collection(
        **layers_collection(template={"name": "[[Animal]] #[[id]]"}, traitTree=tree)
    )
    before = await _stored(api)
    body = await import_layers(api, collection["id"], project_zip())
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "[[Animal]]" in error["message"]
    assert await _stored(api) == before


async def test_a_layers_order_naming_a_missing_folder_is_refused(api: Api) -> None:
    collection = await api.create_collection(**layers_collection())
    body = await import_layers(
        api, collection["id"], project_zip(), [{"name": "Background"}, {"name": "Wings"}]
    )
    (error,) = body["errors"]
    assert error["extensions"]["field"] == "layersOrder[1].name"


async def _stored(api: Api) -> tuple[Any, ...]:
    db = api.app.state.runtime.client[api.settings.db_name]
    collections = [d async for d in db.collections.find({}).sort("_id")]
    sets = [d async for d in db.layer_sets.find({})]
    media = api.app.state.runtime.services.media
    stored = [await _readable(media, hashlib.sha256(d).hexdigest()) for d in _all_layers()]
    return collections, sets, stored


def _all_layers() -> list[bytes]:
    return [d for files in PROJECT.values() for d in files.values()]


async def _readable(media: Any, sha256: str) -> bool:
    """Through the ``MediaStore`` protocol only, whichever store it is."""
    try:
        await media.read(sha256)
    except Exception:  # noqa: BLE001 - any store's "not there"
        return False
    return True
