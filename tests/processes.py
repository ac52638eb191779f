"""Helpers that run the real service as separate OS processes, as a deployment would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from orchestration.base.tls import verifying


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


SERVE = ("service", "serve")


@contextmanager
def api_process(
    env: dict[str, str], data_dir: Path, log: Path, module: tuple[str, ...] = SERVE
) -> Iterator[str]:
    """``cook serve`` (or ``python -m *module``) in a child process; yields its base URL once
    /readyz answers."""
    with api_process_handle(env, data_dir, log, module) as (base, _):
        yield base


@contextmanager
def api_process_handle(
    env: dict[str, str], data_dir: Path, log: Path, module: tuple[str, ...] = SERVE
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Like ``api_process``, also yielding the process (for tests that kill it)."""
    port = free_port()
    full_env = {
        **os.environ,
        "COOK_DATA_DIR": str(data_dir),
        "COOK_PORT": str(port),
        "COOK_LOG_LEVEL": "WARNING",
        **env,
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", *module],
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, log)
        yield base, proc
    finally:
        stop(proc)


def gql(base: str, token: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    """POST a GraphQL operation to a running process; fail the test on any error."""
    response = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        verify=verifying(),  # a client's own TLS context costs ~20 ms of CPU to make
    )
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1, verify=verifying()).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the API did not become ready:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
