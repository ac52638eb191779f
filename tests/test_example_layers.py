"""The shipped example layer set: made by its script, and the README's first collection cooks
real images with it and the ``layers`` tool."""

from __future__ import annotations

import importlib.util
import io
import zipfile
from pathlib import Path
from types import ModuleType

from PIL import Image

from tests.api import OWNER, Api, pieces_of, start_cook, wait_for_cook
from tests.layer_files import import_layers

EXAMPLES = Path(__file__).parent.parent / "examples"


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_layers", EXAMPLES / "make_layers.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pixels(archive: zipfile.ZipFile) -> dict[str, bytes]:
    return {n: Image.open(io.BytesIO(archive.read(n))).tobytes() for n in archive.namelist()}


def test_the_shipped_example_is_what_its_script_makes() -> None:
    shipped = zipfile.ZipFile(EXAMPLES / "cult-secretaries-layers.zip")
    made = zipfile.ZipFile(io.BytesIO(script().make()))
    assert pixels(made) == pixels(shipped)
    assert len(shipped.namelist()) == 8


async def test_the_readmes_first_collection_cooks_images_with_the_example_layers(
    api: Api,
) -> None:
    collection = await api.data(
        """mutation { createCollection(input: {
          name: "Cult Secretaries", totalSupply: 1000, generator: {toolId: "layers"},
          traitTree: [
            {manual: {name: "Animal", traits: [{name: "Cat", value: "a cute cat", weight: 20},
                                               {name: "Owl", value: "a wise owl"}]}},
            {generated: {name: "id", range: {start: 0, end: 9999, zeroPad: 4,
                                             uniqueAcrossCook: true}}}
          ],
          template: {prompt: "[[Animal]] wearing a hat, #[[id]]"}
        }) { id } }"""
    )
    collection_id = collection["createCollection"]["id"]
    order = [{"name": "Background"}, {"name": "Animal"}, {"name": "Hat"}]
    data = (EXAMPLES / "cult-secretaries-layers.zip").read_bytes()
    body = await import_layers(api, collection_id, data, order)
    assert "errors" not in body, body
    cook = await wait_for_cook(api, (await start_cook(api, collection_id, count=4))["id"])
    assert cook["status"] == "COMPLETED"
    for piece in await pieces_of(api, cook["id"]):
        (image,) = piece["media"]
        response = await api.client.get(
            image["url"], headers={"Authorization": f"Bearer {api.token(OWNER)}"}
        )
        found = Image.open(io.BytesIO(response.content))
        assert (found.format, found.size) == ("PNG", (256, 256))
        assert piece["output"].endswith("wearing a hat, #" + piece["output"][-4:])
