"""What every benchmark shares: statistics, a fresh embedded database, the app in process."""

from __future__ import annotations

import contextlib
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from auth.dev_keys import ensure_dev_keys, mint_token
from service.embedded_db import EmbeddedDatabase
from service.settings import Settings
from tests.api import OWNER
from tests.processes import gql

Row = dict[str, Any]
# What makes a piece itself (its identity, and the claims and events of its own life): left out
# of its copies.
OWN_FIELDS = {"_id", "index", "indexKey", "jobKey", "seat", "slot", "combo", "leaseExpiresAt"}
OWN_FIELDS |= {"outbox", "unlogged", "lastEvent"}
CLONE_BATCH = 200  # pieces per insert_many: a batch must finish within the client's timeoutMS
START_COOK = """mutation($c: ID!, $n: Int!) {
  startCook(collectionId: $c, count: $n, maxConcurrent: 8) { id } }"""
COOK_STATUS = "query($id: ID!) { cook(id: $id) { status } }"


@dataclass(frozen=True)
class Spread:
    """The median of repeated measurements and their range."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def show(self, digits: int = 2) -> str:
        if len(self.values) == 1:
            return f"{self.values[0]:.{digits}f}"
        low, high = min(self.values), max(self.values)
        return f"{self.median:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


@contextlib.contextmanager
def embedded() -> Iterator[tuple[EmbeddedDatabase, Path]]:
    """A fresh embedded server on its own directory, and a data directory beside it."""
    root = Path(tempfile.mkdtemp(prefix="cook-bench-"))
    try:
        with EmbeddedDatabase(root / "db") as db:
            yield db, root
    finally:
        shutil.rmtree(root, ignore_errors=True)  # a full run left gigabytes behind


def bench_settings(uri: str, root: Path, **overrides: Any) -> Settings:
    unlimited = "1000000000/minute"
    return Settings(
        mongodb_uri=uri,
        db_name=f"b_{uuid.uuid4().hex[:12]}",
        data_dir=root / "data",
        env="development",
        http_rate_limit=unlimited,
        operation_rate_limits={"startCook": unlimited, "createCollection": unlimited},
        **overrides,
    )


def owner_token(data_dir: Path) -> str:
    return mint_token(
        ensure_dev_keys(data_dir / "keys"),
        subject=OWNER,
        issuer="cook-dev",
        audience="cook",
        ttl_seconds=7200,
    )


# Generous limits for processes started by the benchmarks (they are the load, not the abuse).
PROCESS_ENV = {
    "COOK_HTTP_RATE_LIMIT": "1000000000/minute",
    "COOK_OPERATION_RATE_LIMITS": '{"startCook": "1000000/minute", '
    '"createCollection": "1000000/minute"}',
    "COOK_LOG_LEVEL": "WARNING",
}


async def clone_pieces(
    pieces: AsyncCollection[Row],
    template: Row,
    first: int,
    count: int,
    each: Callable[[int], Awaitable[Row]] | None = None,
    **fields: Any,
) -> None:
    """``count`` copies of the ``template`` piece, in its collection and cook, with indexes
    ``first``, ``first + 1``, ... (inserted directly: cooking them would take far longer).
    ``fields`` are set on every copy, ``each(index)``'s on that one."""
    base = {k: v for k, v in template.items() if k not in OWN_FIELDS} | fields
    collection_id, cook_id = base["collectionId"], base["cookId"]
    batch: list[Row] = []
    for i in range(first, first + count):
        copy = {
            **base,
            "_id": f"pc_{i:032x}",
            "index": i,
            "indexKey": f"{collection_id}:{i}",
            "jobKey": f"{cook_id}:{i}",
        }
        if each is not None:
            copy |= await each(i)
        batch.append(copy)
        if len(batch) == CLONE_BATCH:
            await pieces.insert_many(batch)
            batch = []
    if batch:
        await pieces.insert_many(batch)


def cook_to_end(base: str, token: str, collection: str, pieces: int) -> str:
    """A cook of ``pieces`` in the collection, through an API process, run to the end."""
    cook_id: str = gql(base, token, START_COOK, {"c": collection, "n": pieces})["startCook"]["id"]
    while gql(base, token, COOK_STATUS, {"id": cook_id})["cook"]["status"] == "RUNNING":
        time.sleep(0.1)
    return cook_id
