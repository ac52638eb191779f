"""Tests run against the embedded server over a real connection; every test gets a database of
its own on its worker's server, and drives the app over HTTP through its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from mongoeco.cxp.exchange import projection
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database

from orchestration.base.indexes import IGNORED
from orchestration.base.tools import Submitted, ToolCall, ToolSpec
from orchestration.generators import providers
from schema.rate_limits import OPERATION_LIMITS
from service import collector, embedded_explain
from service.embedded_db import EmbeddedDatabase
from service.settings import Settings
from tests.api import Api, running_app
from tests.connections import clients_of, holders
from tests.fake_providers import FakeProvider, fake_provider, providers_json

# The suite polls and races far faster than any client should; tests of the limits themselves
# set small ones explicitly. Child processes (``cook serve``) inherit these too.
GENEROUS = "1000000/minute"
os.environ.setdefault("COOK_HTTP_RATE_LIMIT", GENEROUS)
os.environ.setdefault(
    "COOK_OPERATION_RATE_LIMITS",
    json.dumps(dict.fromkeys(OPERATION_LIMITS, GENEROUS)),
)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: a worker per core and one more. A test's work is split between its worker
    and the servers and processes it drives, so a core sits idle while a worker waits on them:
    with a worker per core the suite kept 82% of two cores busy, with one more 92%, and ran in
    5:50 instead of 6:14. ``PYTEST_XDIST_AUTO_NUM_WORKERS`` (xdist's own) still decides."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return (os.process_cpu_count() or 1) + 1


def pytest_collection_finish(session: pytest.Session) -> None:
    """Each test worker's collector tuned as ``cook serve``'s is (``service/collector.py``):
    what collection built (modules, test functions, parametrized values) frozen, and full
    collections rare. The collector took about a tenth of the workers' CPU; half of that
    was walking what collection left, again and again."""
    collector.tune()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("COOK_SOAK") == "1":
        return
    skip = pytest.mark.skip(reason="soak run: set COOK_SOAK=1")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


# One embedded server per test worker (an xdist process), lent to each test in turn; each test
# has a database of its own on it. After each test every database it left is dropped (or, if
# its indexes are exactly the app's, emptied and given to a later test: its app's start then
# creates no index, which was two thirds of the server's CPU for a short test), and the
# test fails if anything of it is still connected to the server (a loop, thread or process
# still running would act on the next test's server: docs/testing.md); the server is then
# replaced, as it is every ``TESTS_PER_SERVER`` tests (COOK_TESTS_PER_SERVER, default 100;
# 1 gives every test a server of its own) and when a test left it dead. Sharing saves the
# second of CPU a server takes to start; it became the default once the two engine races that
# made shared runs fail in bursts were found and closed (service/embedded_races.py).
TESTS_PER_SERVER = int(os.environ.get("COOK_TESTS_PER_SERVER", "100"))
SPARE = 2  # emptied databases kept on a worker's server
SYSTEM_DATABASES = frozenset({"admin", "config", "local"})
LINGER_SECONDS = 5.0  # how long a closed client's connections may take to go


class WorkerServers:
    """The embedded server of one test worker, replaced every ``TESTS_PER_SERVER`` tests, or
    at once when a test left it dead or left something connected to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server: EmbeddedDatabase | None = None
        self.served = 0
        self.started = 0
        self.spare: list[str] = []  # emptied databases of the app's layout, on ``server``
        self.layout: Layout | None = None  # the app's indexes after a first start

    def database(self) -> str:
        """A name for a test's database: an emptied one of a test before, whose indexes are
        the app's (its start then creates none), or a new one."""
        return self.spare.pop() if self.spare else f"t_{uuid.uuid4().hex[:16]}"

    def lend(self) -> EmbeddedDatabase:
        process = self.server.process if self.server is not None else None
        alive = process is not None and process.poll() is None
        if self.server is not None and (not alive or self.served >= TESTS_PER_SERVER):
            self.server.stop()
            self.server = None
        if self.server is None:
            self.spare = []
            self.started += 1
            self.server = EmbeddedDatabase(self.root / f"server-{self.started}")
            self.server.start()
            self.served = 0
        self.served += 1
        return self.server

    def give_back(self, server: EmbeddedDatabase) -> str | None:
        """After a test: what it left connected to ``server`` (which is then replaced), or
        None once every database it left is dropped, or emptied for the next test (``SPARE``
        of them at most: ``emptied``)."""
        if server is not self.server or server.process is None or server.process.poll() is not None:
            return None  # a test that stopped or killed it: the next test gets a new one
        if self.served >= TESTS_PER_SERVER:
            return None  # replaced before the next test: nothing of this one reaches it
        port = port_of(server.uri)
        deadline = time.monotonic() + LINGER_SECONDS
        while (left := clients_of(port)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if left:
            held = holders(left)
            self.server.stop()
            self.server = None
            return "; ".join(held.get(c.local_port, f"port {c.local_port}") for c in left)
        client: MongoClient[dict[str, Any]] = MongoClient(server.uri, timeoutMS=30_000)
        with client:
            for name in set(client.list_database_names()) - SYSTEM_DATABASES:
                if len(self.spare) < SPARE and self.emptied(client[name]):
                    self.spare.append(name)
                else:
                    client.drop_database(name)
        return None

    def emptied(self, db: Database[dict[str, Any]]) -> bool:
        """Empty ``db`` for the next test if it is one of the tests' databases and its indexes
        are exactly the app's (a test that made or dropped one leaves it to be dropped); a
        collection the app makes later (by a write) counts if it has only ``_id``'s index."""
        if not db.name.startswith("t_"):
            return False
        if self.layout is None:
            self.layout = app_layout(db.client, self.root)
        names = db.list_collection_names()
        for name in names:
            indexes = layout_of(db[name])
            if indexes != self.layout.get(name, indexes if set(indexes) == {"_id_"} else None):
                return False
        for name in names:
            db[name].delete_many({})
        return True

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


type Layout = dict[str, dict[str, Any]]  # collection -> index name -> its listing


def layout_of(collection: Collection[dict[str, Any]]) -> dict[str, Any]:
    """Its indexes as listed, but for what names the database (``ns``) or the format (``v``)."""
    return {
        index["name"]: {k: v for k, v in index.items() if k not in IGNORED}
        for index in collection.list_indexes()
    }


def app_layout(client: MongoClient[dict[str, Any]], root: Path) -> Layout:
    """The indexes the app makes at its start on an empty database (one start, once a worker;
    in a thread of its own, as the caller may be inside the test's event loop)."""
    (host, port), *_ = client.nodes
    settings = app_settings(f"mongodb://{host}:{port}/?directConnection=true", root / "layout")

    async def start() -> None:
        async with running_app(settings) as api:
            await api.app.state.runtime.services.orchestrator.stop()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, start()).result()
    db = client[settings.db_name]
    layout = {name: layout_of(db[name]) for name in db.list_collection_names()}
    client.drop_database(settings.db_name)
    return layout


def port_of(uri: str) -> int:
    host_port = uri.removeprefix("mongodb://").split("/", 1)[0]
    return int(host_port.rsplit(":", 1)[1])


@pytest.fixture(scope="session")
def worker_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerServers]:
    servers = WorkerServers(tmp_path_factory.mktemp("embedded"))
    yield servers
    servers.close()


@pytest.fixture
def embedded(worker_servers: WorkerServers) -> Iterator[EmbeddedDatabase]:
    """This worker's embedded server, shared with the tests before and after this one (each
    test uses a database of its own). A test that stops, kills or reconfigures a server starts
    its own ``EmbeddedDatabase`` instead (``own_embedded``). Fails the test when it leaves a
    client connected to the server (``WorkerServers.give_back``)."""
    server = worker_servers.lend()
    yield server
    left = worker_servers.give_back(server)
    if left is not None:
        pytest.fail(f"the test left clients connected to its worker's shared server: {left}")


@pytest.fixture
def own_embedded(tmp_path: Path) -> Iterator[EmbeddedDatabase]:
    """A server for this test alone."""
    db = EmbeddedDatabase(tmp_path / "embedded")
    db.start()
    yield db
    db.stop()


def app_settings(uri: str, data_dir: Path, db_name: str | None = None) -> Settings:
    """The settings of a test's app: its short ticks and backoffs, on ``db_name`` (or a new one)."""
    return Settings(
        mongodb_uri=uri,
        db_name=db_name or f"t_{uuid.uuid4().hex[:16]}",
        data_dir=data_dir,
        env="development",
        tick_seconds=0.05,
        backoff_base_seconds=0.01,
        backoff_cap_seconds=0.05,
    )


@pytest.fixture
def settings(worker_servers: WorkerServers, embedded: EmbeddedDatabase, tmp_path: Path) -> Settings:
    """The app's settings for a test, on a database of its own on its worker's server (one a
    test before emptied, when there is one: ``WorkerServers.database``)."""
    return app_settings(embedded.uri, tmp_path / "data", worker_servers.database())


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Api]:
    """The app on ``settings``, through its lifespan, with a client (its database is emptied or
    dropped after the test: ``WorkerServers.give_back``)."""
    async with running_app(settings) as api:
        yield api
        await api.app.state.runtime.services.orchestrator.stop()


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running(settings) as api:
        yield api


@pytest.fixture
def explain_as_served(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's mongoeco explains as the embedded server does: its catalog read once
    (``service/embedded_explain.py``); mongoeco's own function is back after the test."""
    monkeypatch.setattr(projection, "load_mongodb_catalog", projection.load_mongodb_catalog)
    embedded_explain.install()


# --- generation providers: a fake on loopback, and the app configured to use it ---------------


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with fake_provider() as provider:
        yield provider


@pytest.fixture
def poll() -> bool:
    """Whether the webhook provider is also polled (parametrize to change)."""
    return True


@pytest.fixture
def deadline() -> float:
    """The providers' deadline in seconds (parametrize to change)."""
    return 30.0


@pytest.fixture
async def papi(make_api: MakeApi, fake: FakeProvider, poll: bool, deadline: float) -> Api:
    """Like ``api``, with the fake's three providers: ``gpt``, ``deploy`` and ``comfy``."""
    return await make_api(providers=providers_json(fake, poll=poll, deadline=deadline))


type MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(settings: Settings) -> AsyncIterator[MakeApi]:
    """``await make_api(**overrides)``: an app on the test's settings with some changed (e.g.
    tiny limits)."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> Api:
            changed = settings.model_copy(update=overrides)
            return await stack.enter_async_context(running(changed))

        yield make


async def _external(call: ToolCall) -> Submitted:
    return Submitted(run_id=f"run-{call.job_key}-{call.attempt}")


@pytest.fixture
def external_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tool ``external`` that accepts every attempt and never reports back by itself: the
    test delivers outcomes (``Orchestrator.complete``), or lets leases run out."""
    spec = ToolSpec("external", "test: the outcome comes from outside", _external)
    monkeypatch.setattr(providers, "BUILTIN_TOOLS", (*providers.BUILTIN_TOOLS, spec))
