"""The service as separate OS processes: shared database, embedded default, clean shutdown."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from auth.dev_keys import ensure_dev_keys, mint_token
from service.embedded_db import EmbeddedDatabase
from tests.api import OWNER, collection_input
from tests.processes import api_process, gql

CREATE = "mutation($input: CreateCollectionInput!) { createCollection(input: $input) { id } }"
LIST = "query { collections { edges { node { id name } } } }"

pytestmark = pytest.mark.slow


def token(data_dir: Path) -> str:
    return mint_token(
        ensure_dev_keys(data_dir / "keys"), subject=OWNER, issuer="cook-dev", audience="cook"
    )


def test_two_api_processes_sharing_one_embedded_server_serve_the_same_collections(
    tmp_path: Path,
) -> None:
    with EmbeddedDatabase(tmp_path / "db") as db:
        env = {"MONGODB_URI": db.uri, "COOK_DB_NAME": "shared"}
        data = tmp_path / "data"
        bearer = token(data)
        with (
            api_process(env, data, tmp_path / "a.log") as a,
            api_process(env, data, tmp_path / "b.log") as b,
        ):
            made_on_a = gql(a, bearer, CREATE, {"input": collection_input(name="from A")})
            made_on_b = gql(b, bearer, CREATE, {"input": collection_input(name="from B")})
            seen_on_b = gql(b, bearer, LIST)["collections"]["edges"]
            seen_on_a = gql(a, bearer, LIST)["collections"]["edges"]
    ids = {made_on_a["createCollection"]["id"], made_on_b["createCollection"]["id"]}
    assert {e["node"]["id"] for e in seen_on_b} == ids
    assert seen_on_a == seen_on_b


def test_with_no_mongodb_uri_the_service_runs_and_stops_its_own_embedded_database(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    bearer = token(data)
    with api_process({"MONGODB_URI": ""}, data, tmp_path / "api.log") as base:
        made = gql(base, bearer, CREATE, {"input": collection_input()})
    assert (data / "db" / "cook.sqlite3").exists()
    assert not _embedded_servers_for(data), "the embedded database outlived the service"
    # A restart finds the same data on disk.
    with api_process({"MONGODB_URI": ""}, data, tmp_path / "api2.log") as base:
        edges = gql(base, bearer, LIST)["collections"]["edges"]
    assert [e["node"]["id"] for e in edges] == [made["createCollection"]["id"]]


def _embedded_servers_for(data: Path) -> list[str]:
    deadline = time.monotonic() + 5
    while True:
        out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
        alive = [
            line for line in out.stdout.splitlines() if "service db" in line and str(data) in line
        ]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def test_the_cli_mints_a_token_the_service_accepts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    minted = subprocess.run(
        [sys.executable, "-m", "service", "token", "--sub", "carol", "--admin"],
        env={"COOK_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with api_process({"MONGODB_URI": ""}, data, tmp_path / "api.log") as base:
        viewer = gql(base, minted, "{ viewer { id isAdmin } }")["viewer"]
    assert viewer == {"id": "carol", "isAdmin": True}
