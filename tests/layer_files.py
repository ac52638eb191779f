"""Layer images and HashLips projects made by the tests, and GraphQL multipart uploads."""

from __future__ import annotations

import io
import json
import random
import zipfile
from typing import Any

from PIL import Image, ImageDraw

from tests.api import OWNER, Api

SIZE = 64


def layer_png(
    colour: tuple[int, int, int, int],
    box: tuple[int, int, int, int] = (0, 0, SIZE, SIZE),
    size: int = SIZE,
) -> bytes:
    """A transparent square image with one filled rectangle."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle(box, fill=colour)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


# Category -> {file name: image}: opaque backgrounds, then translucent shapes over them.
PROJECT: dict[str, dict[str, bytes]] = {
    "Background": {
        "Blue#50.png": layer_png((40, 60, 200, 255)),
        "Sand#30.png": layer_png((220, 200, 150, 255)),
        "Night#20.png": layer_png((10, 10, 30, 255)),
    },
    "Body": {
        "Round#60.png": layer_png((200, 40, 40, 255), (16, 16, 48, 60)),
        "Ghost#40.png": layer_png((255, 255, 255, 120), (12, 10, 52, 60)),
    },
    "Eyes": {
        "Dots.png": layer_png((0, 0, 0, 255), (24, 24, 30, 30)),
        "Wide#2.png": layer_png((250, 250, 0, 200), (20, 22, 44, 32)),
        "Sleepy#1.png": layer_png((90, 90, 90, 160), (22, 26, 42, 28)),
    },
    "Hat": {
        "None#5.png": layer_png((0, 0, 0, 0)),
        "Cap#3.png": layer_png((30, 160, 60, 230), (14, 4, 50, 16)),
    },
}
ORDER = ["Background", "Body", "Eyes", "Hat"]


def project_zip(
    layers: dict[str, dict[str, bytes]] | None = None, extra: dict[str, bytes] | None = None
) -> bytes:
    """A HashLips project as a ZIP: ``layers/<Category>/<file>``, plus any ``extra`` entries."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for category, files in (PROJECT if layers is None else layers).items():
            for name, data in files.items():
                archive.writestr(f"layers/{category}/{name}", data)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


async def upload(
    api: Api,
    query: str,
    variables: dict[str, Any],
    files: dict[str, tuple[str, bytes, str]],
    *,
    as_: str | None = OWNER,
) -> dict[str, Any]:
    """A GraphQL multipart request: each ``files`` key is a variable set to that file."""
    operations = {"query": query, "variables": {**variables, **dict.fromkeys(files)}}
    mapping = {str(i): [f"variables.{name}"] for i, name in enumerate(files)}
    token = api.token_for(as_)
    response = await api.client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps(mapping)},
        files={str(i): file for i, file in enumerate(files.values())},
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


IMPORT = """mutation($c: ID!, $file: Upload!, $order: [LayerOrderInput!]) {
  importLayers(collectionId: $c, file: $file, layersOrder: $order) {
    id version traitTree { name ... on ManualCategory { traits { name value weight } } }
    layers { width height styles { category opacity blend } layers { category trait sha256 } }
  }
}"""


async def import_layers(
    api: Api,
    collection_id: str,
    data: bytes,
    order: list[dict[str, Any]] | None = None,
    *,
    as_: str | None = OWNER,
) -> dict[str, Any]:
    """The whole response body (errors included)."""
    return await upload(
        api,
        IMPORT,
        {"c": collection_id, "order": order},
        {"file": ("project.zip", data, "application/zip")},
        as_=as_,
    )


def layers_collection(**overrides: Any) -> dict[str, Any]:
    """A collection for the ``layers`` tool: an id range; the import adds the layer categories."""
    base: dict[str, Any] = {
        "generator": {"toolId": "layers"},
        "traitTree": [{"generated": {"name": "id", "range": {"start": 1, "end": 9999}}}],
        "template": {"name": "Piece #[[id]]"},
        "totalSupply": 1000,
    }
    return {**base, **overrides}


def noisy_png(size: int, seed: int, alpha: int = 255) -> bytes:
    """A ``size`` x ``size`` layer of random colours (photographic detail compresses about as
    badly): about 3 bytes per pixel as a PNG."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (size, size), rng.randbytes(size * size * 3))
    image.putalpha(alpha)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def noisy_project(size: int = 1024) -> bytes:
    """A HashLips project whose pieces are multi-megabyte PNGs: one noisy opaque background
    (about 3 MiB) under two small hats, so two pieces differ in one corner."""
    return project_zip(
        {
            "Background": {"Noise.png": noisy_png(size, 1)},
            "Hat": {
                "Red.png": layer_png((200, 30, 30, 255), (0, 0, size // 8, size // 8), size),
                "Blue.png": layer_png((30, 30, 200, 255), (0, 0, size // 8, size // 8), size),
            },
        }
    )
