"""A database outage: while the embedded server is stopped (SIGSTOP, as a hung or unreachable
database), requests are answered ``UNAVAILABLE`` with a retry hint and ``/readyz`` answers 503,
never ``INTERNAL``; once it continues, the same requests succeed."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.user_path import children
from orchestration.base.tls import verifying
from tests.api import OWNER, collection_input
from tests.processes import api_process_handle, gql

LIST = "query { collections(first: 5) { edges { node { id name } } } }"
CREATE = "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }"


def token(data_dir: Path) -> str:
    from auth.dev_keys import ensure_dev_keys, mint_token

    keys = ensure_dev_keys(data_dir / "keys")
    return mint_token(keys, subject=OWNER, issuer="cook-dev", audience="cook", ttl_seconds=600)


def post(base: str, bearer: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {bearer}"},
        timeout=30,
        verify=verifying(),
    )
    return response.status_code, response.json()


def test_a_stopped_database_answers_unavailable_with_a_retry_hint_never_internal(
    tmp_path: Path,
) -> None:
    env = {"COOK_DB_TIMEOUT_MS": "1500", "COOK_HTTP_RATE_LIMIT": "100000/minute"}
    env["COOK_TICK_SECONDS"] = "0.2"
    with api_process_handle(env, tmp_path / "data", tmp_path / "api.log") as (base, proc):
        bearer = token(tmp_path / "data")
        gql(base, bearer, CREATE, {"i": collection_input()})
        [database] = children(proc.pid)
        answers: list[tuple[int, Any]] = []
        stop = threading.Event()

        def keep_asking() -> None:
            while not stop.is_set():
                answers.append(post(base, bearer, LIST))

        asker = threading.Thread(target=keep_asking)
        asker.start()
        try:
            time.sleep(0.5)
            os.kill(database, signal.SIGSTOP)  # mid-request: the asker never pauses
            time.sleep(4)
            ready = httpx.get(f"{base}/readyz", timeout=30, verify=verifying())
            write = post(base, bearer, CREATE, {"i": collection_input(name="During")})
        finally:
            os.kill(database, signal.SIGCONT)
            time.sleep(1)
            stop.set()
            asker.join(60)
        assert ready.status_code == 503
        codes = [
            error["extensions"]["code"] for _, body in answers for error in body.get("errors", ())
        ]
        assert "UNAVAILABLE" in codes, answers
        assert set(codes) == {"UNAVAILABLE"}, codes  # never INTERNAL
        status, body = write
        assert status == 200
        [error] = body["errors"]
        assert error["extensions"]["code"] == "UNAVAILABLE"
        assert error["extensions"]["retryAfter"] > 0
        # Back: reads succeed, and /readyz is 200 again.
        assert gql(base, bearer, LIST)["collections"]["edges"]
        assert httpx.get(f"{base}/readyz", timeout=30, verify=verifying()).status_code == 200
