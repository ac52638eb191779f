"""Composing the ``layers`` tool's images on every core: a bounded pool of worker processes.

Pillow releases the GIL while it decodes and composites, but PNG encoding (zlib) of a large
image holds a core for most of the time, so threads stop scaling at about one core. The
``Compositor`` hands each piece's ``compose`` to a ``ProcessPoolExecutor`` of ``workers``
processes (default: one per core the process may use), created on the first image and shut
down with the app. The workers run ``orchestration.art.layers.compose`` itself, so a piece's bytes
are the same as composing in process (``tests/test_layer_compositing.py`` compares them).

Workers are started with ``forkserver`` (never ``fork``: the service has threads, and a
forked copy of a threaded process may deadlock). A worker that dies (killed, out of memory)
breaks the pool; the call that saw it fails as retryable and the next call starts a new pool.
The pool holds no state: the layers travel with each call.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from orchestration.art.layers import Style, compose


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

    async def compose(self, layers: Sequence[tuple[bytes, Style]], size: tuple[int, int]) -> bytes:
        """``compose(layers, size)`` in a worker process; ``BadLayer`` comes back as raised."""
        pool = self._executor()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                pool, compose, list(layers), size
            )
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
