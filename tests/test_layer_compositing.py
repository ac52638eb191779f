"""Compositing without the service: opacity, blend modes, determinism and the layer checks."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
from collections import OrderedDict
from collections.abc import Sequence

import pytest
from PIL import Image

from orchestration.art import compositing
from orchestration.art.compositing import Compositor, CompositorBroken
from orchestration.art.layers import BadLayer, Blend, Style, compose, probe
from tests.layer_files import layer_png, noisy_png


class Store:
    """Layers by SHA-256, as the media store holds them, counting each read."""

    def __init__(self) -> None:
        self.layers: dict[str, bytes] = {}
        self.reads: list[str] = []

    def named(self, layers: Sequence[tuple[bytes, Style]]) -> list[tuple[str, Style]]:
        named = []
        for data, style in layers:
            digest = hashlib.sha256(data).hexdigest()
            self.layers[digest] = data
            named.append((digest, style))
        return named

    async def read(self, digest: str) -> bytes:
        self.reads.append(digest)
        return self.layers[digest]


def pixel(data: bytes) -> tuple[int, ...]:
    value = Image.open(io.BytesIO(data)).getpixel((0, 0))
    assert isinstance(value, tuple)
    return value


RED = layer_png((200, 40, 40, 255), size=2)
GREY = layer_png((100, 100, 100, 255), size=2)


def test_a_normal_layer_at_half_opacity_lets_half_of_the_backdrop_through() -> None:
    out = compose([(RED, Style()), (GREY, Style(opacity=0.5))], (2, 2))
    assert pixel(out) == pytest.approx((150, 70, 70, 255), abs=1)


def test_multiply_over_an_opaque_backdrop_is_the_product_of_the_colours() -> None:
    out = compose([(RED, Style()), (GREY, Style(blend=Blend.MULTIPLY))], (2, 2))
    assert pixel(out) == pytest.approx((200 * 100 // 255, 40 * 100 // 255, 15, 255), abs=1)


def test_screen_over_a_clear_canvas_is_the_layer_itself() -> None:
    out = compose([(GREY, Style(blend=Blend.SCREEN))], (2, 2))
    assert pixel(out) == (100, 100, 100, 255)


def test_the_same_layers_give_the_same_bytes() -> None:
    layers = [(RED, Style()), (GREY, Style(0.3, Blend.OVERLAY))]
    assert compose(layers, (2, 2)) == compose(list(layers), (2, 2))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GIF89a not allowed", "not a PNG or WebP"),
        (layer_png((1, 2, 3, 255))[:80], "truncated"),
    ],
)
def test_a_bad_layer_says_why(data: bytes, reason: str) -> None:
    with pytest.raises(BadLayer, match=reason):
        probe(data)


def test_a_webp_layer_is_accepted() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (4, 4), (1, 2, 3, 128)).save(out, "WEBP", lossless=True)
    assert probe(out.getvalue()).content_type == "image/webp"


async def test_the_compositing_pool_gives_the_same_bytes_as_composing_in_process() -> None:
    """Every blend and opacity, at a size that takes real work: the worker processes run the
    same ``compose``, so a piece's image (and hash) does not depend on where it was made."""
    size = 256
    layers = [(noisy_png(size, 7), Style())] + [
        (noisy_png(size, i, alpha=90 + 10 * i), Style(opacity=0.3 + 0.07 * i, blend=blend))
        for i, blend in enumerate(Blend)
    ]
    store = Store()
    named = store.named(layers)
    compositor = Compositor(workers=2)
    try:
        pooled = await asyncio.gather(
            *(
                compositor.compose(named[: n + 1], (size, size), store.read)
                for n in range(len(layers))
            )
        )
    finally:
        compositor.shutdown()
    for n, image in enumerate(pooled):
        assert image == compose(layers[: n + 1], (size, size)), f"{n + 1} layers"
    again = Compositor(workers=1)
    try:
        with pytest.raises(BadLayer, match="not 256x256"):
            await again.compose(store.named([(RED, Style())]), (size, size), store.read)
    finally:
        again.shutdown()


async def test_a_worker_is_sent_a_layer_once_and_composes_from_what_it_holds() -> None:
    """The first piece sends its layers; later pieces drawing the same layers send none, and
    still give the bytes ``compose`` gives. A new pool (its workers hold nothing) is sent them
    again."""
    size = 64
    layers = [(noisy_png(size, n, alpha=120 + n), Style(opacity=0.9)) for n in range(4)]
    store = Store()
    named = store.named(layers)
    compositor = Compositor(workers=1)
    try:
        first = await compositor.compose(named, (size, size), store.read)
        assert sorted(store.reads) == sorted(d for d, _ in named)
        store.reads.clear()
        for n in range(1, 5):  # other pieces: subsets and orders of the same layers
            piece = named[n - 1 :] + named[: n - 1]
            image = await compositor.compose(piece, (size, size), store.read)
            assert image == compose(layers[n - 1 :] + layers[: n - 1], (size, size))
        assert store.reads == [], "a layer the worker holds is read again"
        assert first == compose(layers, (size, size))
    finally:
        compositor.shutdown()
    fresh = Compositor(workers=1)
    try:
        assert await fresh.compose(named[:2], (size, size), store.read) == compose(
            layers[:2], (size, size)
        )
        assert sorted(store.reads) == sorted(d for d, _ in named[:2])
    finally:
        fresh.shutdown()


async def test_a_compositing_process_killed_mid_image_fails_that_call_and_the_next_works() -> None:
    size = 1024
    layers = [(noisy_png(size, n), Style()) for n in range(3)]
    store = Store()
    named = store.named(layers)
    compositor = Compositor(workers=1)
    try:
        await compositor.compose(named[:1], (size, size), store.read)  # the worker is up
        pool = compositor._pool
        assert pool is not None
        (pid,) = list(pool._processes)  # the worker, to kill it
        busy = asyncio.ensure_future(compositor.compose(named, (size, size), store.read))
        await asyncio.sleep(0.05)  # the job sent (killed before or while it runs: the same)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(CompositorBroken):
            await busy
        again = await compositor.compose(named[:2], (size, size), store.read)
        assert again == compose(layers[:2], (size, size)), "a fresh pool, the same bytes"
    finally:
        compositor.shutdown()


def test_a_worker_keeps_at_most_its_cache_of_decoded_layers_and_asks_again_for_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In the worker: layers past ``CACHE_BYTES`` of pixels are forgotten oldest first, and a
    piece naming a forgotten layer without its bytes is answered ``Missing``."""
    monkeypatch.setattr(compositing, "CACHE_BYTES", 2 * 8 * 8 * 4)  # two 8x8 layers
    monkeypatch.setattr(compositing, "_decoded", OrderedDict())
    layers = [(noisy_png(8, n), Style()) for n in range(3)]
    named = Store().named(layers)
    sent = [(digest, data, style) for (digest, style), (data, _) in zip(named, layers, strict=True)]
    assert compositing.compose_known(sent, (8, 8)) == compose(layers, (8, 8))
    by_name = [(digest, None, style) for digest, style in named]
    assert compositing.compose_known(by_name, (8, 8)) == compositing.Missing((named[0][0],))
    assert compositing.compose_known(by_name[1:], (8, 8)) == compose(layers[1:], (8, 8))
