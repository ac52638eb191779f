"""Pictures before a cook (``previewLayers``): each drawn piece composed from the layers in
memory, owner-only, bounded and rate-limited, writing nothing; and the gallery's filter by
trait (``pieces(filter: {traits})``)."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from PIL import Image

from tests.api import OWNER, STRANGER, Api, start_cook, wait_for_cook
from tests.conftest import MakeApi
from tests.layer_files import ORDER, PROJECT, SIZE, import_layers, layers_collection, project_zip

PREVIEW = """query($c: ID!, $n: Int!, $seed: Int, $size: Int!) {
  previewLayers(collectionId: $c, count: $n, seed: $seed, size: $size) {
    seed width height pieces { index image contentType traits { category name } } } }"""
DRAWS = """query($c: ID!, $n: Int!, $seed: Int) {
  previewPieces(collectionId: $c, count: $n, seed: $seed) {
    pieces { index traits { category name } } } }"""


async def layered(api: Api) -> str:
    collection = await api.create_collection(**layers_collection())
    body = await import_layers(api, collection["id"], project_zip(), [{"name": n} for n in ORDER])
    assert "errors" not in body, body
    cid: str = collection["id"]
    return cid


def composite(traits: list[dict[str, str]]) -> Image.Image:
    canvas = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    for t in traits:
        files = PROJECT.get(t["category"])
        if files is None:
            continue  # a generated category: nothing drawn
        (data,) = [d for name, d in files.items() if name.split("#")[0].split(".")[0] == t["name"]]
        canvas = Image.alpha_composite(canvas, Image.open(io.BytesIO(data)).convert("RGBA"))
    return canvas


def picture(piece: dict[str, Any]) -> Image.Image:
    assert piece["contentType"] == "image/png"
    return Image.open(io.BytesIO(base64.b64decode(piece["image"])))


async def written(api: Api) -> dict[str, int]:
    db = api.app.state.runtime.client[api.settings.db_name]
    names = await db.list_collection_names()
    return {n: await db[n].count_documents({}) for n in sorted(names)}


async def test_the_preview_shows_each_drawn_piece_composed_from_its_layers(api: Api) -> None:
    cid = await layered(api)
    got = (await api.data(PREVIEW, {"c": cid, "n": 6, "seed": 5, "size": SIZE}))["previewLayers"]
    drawn = (await api.data(DRAWS, {"c": cid, "n": 6, "seed": 5}))["previewPieces"]["pieces"]
    assert got["seed"] == 5
    assert (got["width"], got["height"]) == (SIZE, SIZE)
    assert [(p["index"], p["traits"]) for p in got["pieces"]] == [
        (p["index"], p["traits"]) for p in drawn
    ], "the same draws as previewPieces"
    for piece in got["pieces"]:
        image = picture(piece)
        assert image.size == (SIZE, SIZE)
        assert image.convert("RGBA").tobytes() == composite(piece["traits"]).tobytes()


async def test_thumbnails_are_scaled_to_the_asked_size(api: Api) -> None:
    cid = await layered(api)
    got = (await api.data(PREVIEW, {"c": cid, "n": 2, "seed": 1, "size": 16}))["previewLayers"]
    assert (got["width"], got["height"]) == (16, 16)
    assert [picture(p).size for p in got["pieces"]] == [(16, 16)] * 2
    bigger = await api.data(PREVIEW, {"c": cid, "n": 1, "seed": 1, "size": 256})
    assert bigger["previewLayers"]["width"] == SIZE, "never enlarged past the layers"


async def test_a_preview_writes_nothing(api: Api) -> None:
    cid = await layered(api)
    before = await written(api)
    await api.data(PREVIEW, {"c": cid, "n": 12, "seed": 3, "size": 64})
    assert await written(api) == before


async def test_another_users_collection_is_not_found_and_anonymous_callers_are_refused(
    api: Api,
) -> None:
    cid = await layered(api)
    variables = {"c": cid, "n": 1, "seed": 1, "size": 32}
    error = await api.error(PREVIEW, variables, as_=STRANGER)
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert (await api.error(PREVIEW, variables, as_=None))["extensions"]["code"] == (
        "UNAUTHENTICATED"
    )
    other = await api.create_collection(as_=STRANGER, **layers_collection())
    error = await api.error(PREVIEW, {**variables, "c": other["id"]}, as_=OWNER)
    assert error["extensions"]["code"] == "NOT_FOUND", "nor layerless for a stranger"


@pytest.mark.parametrize(
    ("count", "size", "field"),
    [(0, 64, "count"), (13, 64, "count"), (1, 15, "size"), (1, 257, "size")],
)
async def test_counts_and_sizes_out_of_bounds_are_refused(
    api: Api, count: int, size: int, field: str
) -> None:
    cid = await layered(api)
    error = await api.error(PREVIEW, {"c": cid, "n": count, "seed": 1, "size": size})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert [p["path"] for p in error["extensions"]["problems"]] == [field]


async def test_a_collection_without_layers_and_a_malformed_id_are_refused(api: Api) -> None:
    plain = await api.create_collection()
    error = await api.error(PREVIEW, {"c": plain["id"], "n": 1, "seed": 1, "size": 32})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "has no layers" in error["message"]
    error = await api.error(PREVIEW, {"c": "col_nope", "n": 1, "seed": 1, "size": 32})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_more_layer_pixels_than_the_bound_are_refused_before_decoding(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestration.art import layer_preview
    from orchestration.catalog import layer_assets

    def never(*_: Any) -> Any:
        raise AssertionError("nothing is decoded")

    cid = await layered(api)
    monkeypatch.setattr(layer_assets, "MAX_DECODED_PIXELS", 3 * SIZE * SIZE)
    monkeypatch.setattr(layer_preview, "decode", never)
    error = await api.error(PREVIEW, {"c": cid, "n": 4, "seed": 1, "size": 32})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "preview fewer" in error["message"]


async def test_previews_are_rate_limited_per_caller(make_api: MakeApi) -> None:
    api = await make_api(operation_rate_limits={"previewLayers": "2/minute"})
    cid = await layered(api)
    variables = {"c": cid, "n": 1, "seed": 1, "size": 16}
    for _ in range(2):
        await api.data(PREVIEW, variables)
    error = await api.error(PREVIEW, variables)
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["operation"] == "previewLayers"


FILTERED = """query($c: ID!, $traits: [TraitFilterInput!]) {
  pieces(collectionId: $c, filter: {traits: $traits}, order: INDEX, first: 100) {
    edges { node { index traits { category name } } } } }"""


async def test_pieces_filter_by_every_named_trait(api: Api) -> None:
    cid = await layered(api)
    cook = await start_cook(api, cid, count=24, seed=9, maxConcurrent=8)
    assert (await wait_for_cook(api, cook["id"], within=60))["status"] == "COMPLETED"

    def listed(body: dict[str, Any]) -> list[dict[str, Any]]:
        return [e["node"] for e in body["pieces"]["edges"]]

    everything = listed(await api.data(FILTERED, {"c": cid, "traits": None}))
    assert len(everything) == 24
    wanted = [{"category": "Body", "name": "Ghost"}, {"category": "Hat", "name": "Cap"}]

    def has(p: dict[str, Any], wants: list[dict[str, str]]) -> bool:
        return all(w in p["traits"] for w in wants)

    for wants in (wanted[:1], wanted):
        found = listed(await api.data(FILTERED, {"c": cid, "traits": wants}))
        expected = [p for p in everything if has(p, wants)]
        assert found == expected
        assert 0 < len(found) < 24
    none = await api.data(FILTERED, {"c": cid, "traits": [{"category": "Hat", "name": "Nope"}]})
    assert listed(none) == []
    error = await api.error(FILTERED, {"c": cid, "traits": [{"category": "", "name": "x"}]})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


DRY = """mutation($id: ID!, $input: UpdateCollectionInput!, $v: Int, $dry: Boolean!) {
  updateCollection(id: $id, input: $input, expectedVersion: $v, dryRun: $dry) {
    version traitTree { name } } }"""


async def test_a_dry_run_update_answers_as_the_change_would_and_writes_nothing(api: Api) -> None:
    created = await api.create_collection()
    tree = [{"manual": {"name": "Hat", "traits": [{"name": "Cap", "weight": 2}]}}]
    good = {"traitTree": tree, "template": {"input_prompt": "[[Hat]]"}}
    before = await written(api)
    variables = {"id": created["id"], "input": good, "v": 1, "dry": True}
    answer = (await api.data(DRY, variables))["updateCollection"]
    assert answer == {"version": 1, "traitTree": [{"name": "Hat"}]}
    assert await written(api) == before
    stored = await api.data("query($id: ID!) { collection(id: $id) { version } }", created)
    assert stored["collection"]["version"] == 1, "nothing was written"
    bad = {"traitTree": tree, "template": {"input_prompt": "[[Animal]]"}}
    for dry in (True, False):
        error = await api.error(DRY, {**variables, "input": bad, "dry": dry})
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        if dry:
            dry_error = error
    assert error["message"] == dry_error["message"], "the same refusal as the real change"
    stale = await api.error(DRY, {**variables, "v": 7})
    assert stale["extensions"]["code"] == "CONFLICT"
    assert await written(api) == before
    other = await api.error(DRY, variables, as_=STRANGER)
    assert other["extensions"]["code"] == "NOT_FOUND"
