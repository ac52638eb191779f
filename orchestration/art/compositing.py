"""Composing the ``layers`` tool's images on every core: a bounded pool of worker processes.

Pillow releases the GIL while it decodes and composites, but PNG encoding (zlib) of a large
image holds a core for most of the time, so threads stop scaling at about one core. The
``Compositor`` hands each piece's composition to a ``ProcessPoolExecutor`` of ``workers``
processes (default: one per core the process may use), created on the first image and shut
down with the app. The workers run ``orchestration.art.layers.compose_decoded``, as
``compose`` itself does, so a piece's bytes are the same as composing in process
(``tests/test_layer_compositing.py`` compares them).

A collection has a few dozen layers and every piece draws from them, so each worker keeps the
layers it has decoded, by their SHA-256, up to ``CACHE_BYTES`` of pixels (least recently used
first out). A piece is sent as its layers' digests and styles; a worker that lacks one answers
``Missing``, and only those layers are read from the media store and sent to it. Decoding every
layer of every piece, and sending each piece's layers (about 12 MiB at 1024x1024) to its
worker, cost a fifth of the compositing and much of the API's time (bench section 8). The
cache is only a cache: a layer is the same bytes under its digest for ever, and a worker that
forgets one is sent it again.

Workers are started with ``forkserver`` (never ``fork``: the service has threads, and a
forked copy of a threaded process may deadlock). A worker that dies (killed, out of memory)
breaks the pool; the call that saw it fails as retryable and the next call starts a new pool.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from PIL import Image

from orchestration.art.layers import Style, compose_decoded, decode

CACHE_BYTES = 256 * 1024 * 1024  # decoded pixels each worker keeps (64 layers at 1024x1024)

type Read = Callable[[str], Awaitable[bytes]]


class CompositorBroken(RuntimeError):
    """A worker process died while composing (the next call starts a fresh pool)."""


def default_workers() -> int:
    return max(1, os.process_cpu_count() or 1)


class Compositor:
    def __init__(self, workers: int = 0) -> None:
        self.workers = workers or default_workers()
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("forkserver")
                )
            return self._pool

    async def compose(
        self, layers: Sequence[tuple[str, Style]], size: tuple[int, int], read: Read
    ) -> bytes:
        """The image of ``layers`` (each a stored layer's SHA-256 and its style), as
        ``compose`` makes it, in a worker process. ``read(sha256)`` gives a layer's bytes; it
        is called only for layers the worker has not decoded already. ``BadLayer`` comes back
        as raised, and an error of ``read`` as it raised."""
        sent: dict[str, bytes] = {}
        while True:  # each round sends at least one more layer, so it ends
            call = [(digest, sent.get(digest), style) for digest, style in layers]
            made = await self._run(call, size)
            if not isinstance(made, Missing):
                return made
            read_now = [digest for digest in made.digests if digest not in sent]
            assert read_now, "a worker said it lacks a layer it was sent"
            sent.update(zip(read_now, await asyncio.gather(*map(read, read_now)), strict=True))

    async def _run(self, call: list[Layer], size: tuple[int, int]) -> bytes | Missing:
        pool = self._executor()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, compose_known, call, size)
        except BrokenProcessPool as exc:
            self._forget(pool)
            raise CompositorBroken("a compositing process died") from exc

    def _forget(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        """Stop the workers (the app's lifespan calls this at exit); a later call starts anew."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


# --- in each worker process ---------------------------------------------------------------

type Layer = tuple[str, bytes | None, Style]  # a layer's SHA-256, its bytes if sent, its style


@dataclass(frozen=True)
class Missing:
    """The layers a worker was not sent and does not hold: send them."""

    digests: tuple[str, ...]


_decoded: OrderedDict[str, Image.Image] = OrderedDict()  # this worker's layers, oldest first


def compose_known(layers: list[Layer], size: tuple[int, int]) -> bytes | Missing:
    """The image, if every layer was sent or is held; else which ones to send."""
    missing = [d for d, data, _ in layers if data is None and d not in _decoded]
    if missing:
        return Missing(tuple(dict.fromkeys(missing)))
    return compose_decoded([(_held(d, data), style) for d, data, style in layers], size)


def _held(digest: str, data: bytes | None) -> Image.Image:
    image = _decoded.get(digest)
    if image is not None:
        _decoded.move_to_end(digest)
        return image
    assert data is not None
    image = decode(data)
    _decoded[digest] = image
    held = sum(_pixels(i) for i in _decoded.values())
    while held > CACHE_BYTES and len(_decoded) > 1:
        _, oldest = _decoded.popitem(last=False)
        held -= _pixels(oldest)
    return image


def _pixels(image: Image.Image) -> int:
    return image.width * image.height * 4
