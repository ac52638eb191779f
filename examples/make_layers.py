"""Make the example layer set: a HashLips project for the README's first collection.

    .venv/bin/python examples/make_layers.py [OUT]   # default: examples/cult-secretaries-layers.zip

Three folders of 256x256 PNG layers, drawn here with Pillow (nothing is downloaded):
``Background`` (opaque), ``Animal`` (``Cat#20``, ``Owl``: the README's traits and weights) and
``Hat``. Import it with ``layersOrder`` Background, Animal, Hat. The ZIP's entries carry a fixed
date, so the same Pillow makes the same bytes.
"""

from __future__ import annotations

import io
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 256
OUT = Path(__file__).with_name("cult-secretaries-layers.zip")
ORDER = ("Background", "Animal", "Hat")
FIXED_DATE = (2026, 1, 1, 0, 0, 0)
type Painter = Callable[[ImageDraw.ImageDraw], None]


def _background(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Painter:
    def paint(draw: ImageDraw.ImageDraw) -> None:
        for y in range(SIZE):
            mix = [round(a + (b - a) * y / (SIZE - 1)) for a, b in zip(top, bottom, strict=True)]
            draw.line([(0, y), (SIZE, y)], fill=(*mix, 255))

    return paint


def _cat(draw: ImageDraw.ImageDraw) -> None:
    fur, dark = (236, 150, 60, 255), (40, 30, 30, 255)
    draw.polygon([(70, 110), (88, 40), (120, 96)], fill=fur)  # ears
    draw.polygon([(186, 110), (168, 40), (136, 96)], fill=fur)
    draw.ellipse([60, 80, 196, 210], fill=fur)  # head
    draw.ellipse([92, 124, 110, 146], fill=dark)  # eyes
    draw.ellipse([146, 124, 164, 146], fill=dark)
    draw.polygon([(120, 162), (136, 162), (128, 172)], fill=(230, 110, 130, 255))  # nose


def _owl(draw: ImageDraw.ImageDraw) -> None:
    feathers, light = (120, 90, 60, 255), (235, 225, 200, 255)
    draw.ellipse([66, 70, 190, 226], fill=feathers)  # body
    draw.ellipse([78, 96, 126, 144], fill=light)  # eyes
    draw.ellipse([130, 96, 178, 144], fill=light)
    draw.ellipse([94, 112, 110, 128], fill=(20, 20, 20, 255))
    draw.ellipse([146, 112, 162, 128], fill=(20, 20, 20, 255))
    draw.polygon([(120, 146), (136, 146), (128, 164)], fill=(240, 180, 40, 255))  # beak


def _beret(draw: ImageDraw.ImageDraw) -> None:
    draw.ellipse([70, 46, 186, 96], fill=(170, 30, 50, 230))
    draw.rectangle([124, 36, 132, 50], fill=(170, 30, 50, 230))


def _top_hat(draw: ImageDraw.ImageDraw) -> None:
    draw.rectangle([96, 10, 160, 80], fill=(25, 25, 30, 255))
    draw.rectangle([70, 76, 186, 90], fill=(25, 25, 30, 255))
    draw.rectangle([96, 60, 160, 70], fill=(150, 20, 30, 255))  # band


def _crown(draw: ImageDraw.ImageDraw) -> None:
    gold = (245, 200, 40, 255)
    draw.polygon([(84, 90), (84, 40), (106, 66), (128, 30), (150, 66), (172, 40), (172, 90)], gold)


LAYERS: dict[str, dict[str, Painter]] = {
    "Background": {
        "Dawn#3.png": _background((250, 200, 170), (160, 120, 200)),
        "Mint#2.png": _background((200, 245, 220), (90, 170, 150)),
        "Night#1.png": _background((20, 24, 60), (60, 40, 90)),
    },
    "Animal": {"Cat#20.png": _cat, "Owl.png": _owl},
    "Hat": {"Beret#3.png": _beret, "Top Hat#2.png": _top_hat, "Crown#1.png": _crown},
}


def png(paint: Painter) -> bytes:
    image = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    paint(ImageDraw.Draw(image))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=9)
    return out.getvalue()


def make() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for category in ORDER:
            for name, paint in LAYERS[category].items():
                entry = zipfile.ZipInfo(
                    f"layers/{category}/{name}", date_time=(2026, 1, 1, 0, 0, 0)
                )
                archive.writestr(entry, png(paint), zipfile.ZIP_DEFLATED)
    return out.getvalue()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    target.write_bytes(make())
    sys.stdout.write(f"wrote {target}\n")
