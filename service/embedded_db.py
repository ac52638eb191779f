"""The embedded MongoDB-compatible server: mongoeco's wire server on SQLite, in its own process.

The API never runs the engine in its own event loop (the engine's work blocks the loop); it
spawns ``python -m service db`` and talks to it over a real connection, as to MongoDB.

Narrowly scoped fixes live in ``service/embedded_engine.py`` (``IndexedReadsEngine``, on
``FlatInsertSQLiteEngine``), ``service/embedded_writes.py`` (``NamespacedIndexesEngine``),
``service/embedded_checkpoints.py`` (``CheckpointedEngine``), ``service/embedded_readers.py``
(``PooledReadersEngine``, on all of them: the engine used),
``service/embedded_races.py`` (``RaceSafeEngine``, at their base), ``service/embedded_wire.py``
(``CookWireServer``, the wire server used), ``service/embedded_boundary.py`` and
``service/embedded_explain.py``, pinned to the exact mongoeco version (4.11.0): inserts and
reads that scanned the whole collection now use indexes, each write pays only for its own
collection's indexes, the change-event dispatch, which no wire client can consume, is off, two
races that lost or failed writes are closed, WAL checkpoints run beside the writes, large
binaries come in without a hex round trip, replies are encoded in one C pass, ``explain``
reads mongoeco's catalog once, and read connections are kept between reads. The server
process keeps freed large buffers for reuse (``service/allocator.py``). On another version the
plain engine and server run, after the indexes are made whole-table again.
``tests/test_embedded_db.py`` proves duplicates are still refused, insert latency stays flat as
a collection grows, and reads never fail beside writes;
``tests/test_embedded_engine.py`` that reads return what the unpatched engine returns,
``tests/test_embedded_wire.py`` that replies are the bytes mongoeco's server writes,
``tests/test_embedded_races.py`` that neither race loses or fails a write,
``tests/test_embedded_checkpoints.py``, ``tests/test_embedded_boundary.py``,
``tests/test_embedded_explain.py`` and ``tests/test_embedded_readers.py`` the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mongoeco  # the package alone: its engine and wire server are imported where used, so
from pymongo import MongoClient  # an API process that only starts a server does not load them

from service import collector
from service.allocator import keep_large_buffers
from service.embedded_index_scope import private_scalar_indexes, whole_table_indexes

log = logging.getLogger(__name__)

PATCHED_MONGOECO_VERSION = "4.11.0"
DATABASE_FILE = "cook.sqlite3"
LOCK_FILE = "server.lock"
IN_USE_EXIT = 3  # the exit code of a server refused because its data directory is in use


def insert_fix_applies() -> bool:
    """The fixes override private methods, so they are only used on the version they were made
    for (``tests/test_embedded_db.py`` fails on any other)."""
    return mongoeco.__version__ == PATCHED_MONGOECO_VERSION


def make_engine(data_dir: Path) -> Any:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = str(data_dir / DATABASE_FILE)
    if insert_fix_applies():
        from service.embedded_readers import PooledReadersEngine  # imports private modules

        return PooledReadersEngine(path)
    log.warning(
        "mongoeco %s is not %s: inserts and reads are O(collection size) without the fixes",
        mongoeco.__version__,
        PATCHED_MONGOECO_VERSION,
    )
    if Path(path).exists():
        whole_table_indexes(path)  # the plain engine cannot use namespace-partial indexes
        private_scalar_indexes(path)  # and drops a scalar index's physical index with it
    from mongoeco.engines.sqlite import SQLiteEngine

    return SQLiteEngine(path)


def make_wire_server(engine: Any, host: str, port: int) -> Any:
    """mongoeco's wire server; on the pinned version, the one whose replies are encoded in one
    C pass (``service/embedded_wire.py``), with large binaries brought in without a hex round
    trip (``service/embedded_boundary.py``)."""
    if insert_fix_applies():
        from service import embedded_boundary, embedded_explain
        from service.embedded_wire import CookWireServer  # imports private modules

        embedded_boundary.install()
        embedded_explain.install()
        return CookWireServer(engine=engine, host=host, port=port)
    from mongoeco.wire import AsyncMongoEcoProxyServer

    return AsyncMongoEcoProxyServer(engine=engine, host=host, port=port)


class DataDirInUse(RuntimeError):
    """Another embedded server holds this data directory (the engine assumes one writer)."""


def lock_data_dir(data_dir: Path) -> int:
    """Hold ``data_dir``'s lock for the life of this process (the kernel releases it when the
    process dies, however it dies); raise ``DataDirInUse`` when another server holds it.

    Returns the lock file's descriptor, which must stay open.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DataDirInUse(
            f"{data_dir} is in use by another embedded database server (pid {holder}); "
            "stop it, or set COOK_DATA_DIR (or MONGODB_URI) to use another database"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def data_dir_in_use(data_dir: Path) -> str | None:
    """Why a server could not start on ``data_dir`` now, or None (the lock is not kept)."""
    try:
        fd = lock_data_dir(data_dir)
    except DataDirInUse as exc:
        return str(exc)
    os.close(fd)  # closing releases the lock; the server's own child takes it again
    return None


async def serve(
    data_dir: Path,
    host: str,
    port: int,
    address_file: Path | None,
    parent_pipe: int | None = None,
) -> None:
    """Run the wire server until SIGTERM or SIGINT, or until the process that started it is
    gone (``parent_pipe``); announce its address in ``address_file``.

    The data directory is locked first: a second server on it exits with ``DataDirInUse``.
    """
    lock = lock_data_dir(data_dir)
    keep_large_buffers()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watch = None
    if parent_pipe is not None:
        watch_parent(loop, parent_pipe, stop)
        watch = asyncio.create_task(poll_parent(os.getppid(), stop))
    try:
        engine = make_engine(data_dir)
        async with make_wire_server(engine, host, port) as srv:
            address = srv.address
            uri = f"mongodb://{address.host}:{address.port}/?directConnection=true"
            collector.tune()  # the engine is built and serving: see service/collector.py
            if address_file is not None:
                tmp = address_file.with_suffix(".tmp")
                tmp.write_text(uri)
                tmp.replace(address_file)
            log.info("embedded database serving %s at %s", data_dir, uri)
            await stop.wait()
    finally:
        if watch is not None:
            watch.cancel()
        os.close(lock)


def watch_parent(loop: asyncio.AbstractEventLoop, fd: int, stop: asyncio.Event) -> None:
    """Stop when the read end of the parent's pipe reports end-of-file: the kernel closes the
    parent's write end when the parent exits, even by SIGKILL (the end is not inherited by
    its other children, so nothing else keeps it open)."""

    def readable() -> None:
        try:
            data = os.read(fd, 64)
        except BlockingIOError:
            return
        if not data:
            log.warning("the process that started the embedded database is gone; stopping")
            loop.remove_reader(fd)
            stop.set()

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)


async def poll_parent(parent: int, stop: asyncio.Event, every: float = 1.0) -> None:
    """Fallback for the pipe: once re-parented (the parent died), stop."""
    while os.getppid() == parent:  # noqa: ASYNC110 - nothing signals a re-parenting
        await asyncio.sleep(every)
    log.warning("the embedded database's parent %s is gone; stopping", parent)
    stop.set()


@dataclass
class EmbeddedDatabase:
    """A child process running the embedded server; ``uri`` is set once it answers."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    startup_timeout: float = 30.0
    process: subprocess.Popen[bytes] | None = None
    uri: str = ""
    _parent_pipe: int | None = None

    def start(self) -> str:
        """Spawn the server; it dies with this process (it watches a pipe whose write end only
        this process holds), and refuses a data directory another server holds
        (``DataDirInUse``)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        address_file = self.data_dir / f"address-{os.getpid()}-{time.monotonic_ns()}"
        address_file.unlink(missing_ok=True)
        read_end, self._parent_pipe = os.pipe()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service",
                "db",
                "--data-dir",
                str(self.data_dir),
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--address-file",
                str(address_file),
                "--parent-pipe",
                str(read_end),
            ],
            start_new_session=True,
            pass_fds=(read_end,),
        )
        os.close(read_end)
        deadline = time.monotonic() + self.startup_timeout
        try:
            while not address_file.exists():
                if self.process.poll() is not None:
                    self._release()
                    if self.process.returncode == IN_USE_EXIT:
                        raise DataDirInUse(
                            f"{self.data_dir} is in use by another embedded database server"
                        )
                    raise RuntimeError(
                        f"the embedded database exited with code {self.process.returncode}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError("the embedded database did not start in time")
                time.sleep(0.05)
            self.uri = address_file.read_text()
        finally:
            address_file.unlink(missing_ok=True)
        wait_until_answering(self.uri, deadline - time.monotonic())
        return self.uri

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._release()

    def kill(self) -> None:
        """SIGKILL, as a crash would (used by crash tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._release()

    def _release(self) -> None:
        if self._parent_pipe is not None:
            os.close(self._parent_pipe)
            self._parent_pipe = None

    def __enter__(self) -> EmbeddedDatabase:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until_answering(uri: str, timeout: float) -> None:
    deadline = time.monotonic() + max(timeout, 0.1)
    last: Exception | None = None
    while time.monotonic() < deadline:
        client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=500)
        try:
            client.admin.command("ping")
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = exc
            time.sleep(0.1)
        finally:
            with contextlib.suppress(Exception):
                client.close()
    raise TimeoutError(f"the embedded database at {uri} did not answer: {last}")
