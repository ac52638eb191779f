"""Fake generation providers: one real HTTP server on loopback speaking all three protocols.

- OpenAI-compatible: ``POST /v1/chat/completions`` answers at once (or late, or with an error).
- ComfyDeploy-style: ``POST /api/run`` starts a run; ``GET /api/run/{id}`` reports it. The
  test decides when a run finishes, and delivers its webhooks itself (``send_webhook``), zero,
  one or several times.
- ComfyUI: ``POST /prompt``, ``GET /history/{id}`` (``{}`` until finished), ``GET /view``.
- OpenAI-compatible images: ``POST /v1/images/generations`` answers ``b64_json`` or ``url``
  images (``image_answer``), after any ``image_failures`` (statuses; 400 is a refusal with
  OpenAI's error body).
- Images: ``GET /img/{name}.png`` (a small PNG), ``/huge.png`` (over the size limit),
  ``/page.html`` (not an image), ``/missing.png`` (404).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import random
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from orchestration.generators.webhooks import signature
from tests.api import Api


def png(seed: str) -> bytes:
    """A valid 1x1 PNG whose colour depends on ``seed`` (so different images hash apart)."""
    colour = zlib.crc32(seed.encode()).to_bytes(4, "big")[:3]

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + colour)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@dataclass
class FakeRun:
    run_id: str
    inputs: Any
    webhook: str | None
    status: str = "queued"  # queued, running, success, failed
    image: str | None = None


@dataclass
class FakeProvider:
    base: str = ""
    chat_delay: float = 0.0
    chat_failures: list[int] = field(default_factory=list)  # statuses to answer first
    chat_calls: int = 0
    runs: dict[str, FakeRun] = field(default_factory=dict)
    auto_finish: bool = False  # finish ComfyUI prompts as soon as they are made
    image_path: str = "/img/{run}.png"
    flaky_failures: int = 0  # how many times /flaky.png answers 503 before the image
    image_answer: str = "b64_json"  # or "url"
    image_failures: list[int] = field(default_factory=list)  # statuses to answer first
    image_requests: list[Any] = field(default_factory=list)  # the bodies received
    image_padding: int = 0  # bytes (pseudo-random, by name) after each ComfyUI image
    _ids: Iterator[int] = field(default_factory=itertools.count)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_run(self, inputs: Any, webhook: str | None) -> FakeRun:
        with self.lock:
            run = FakeRun(f"run-{next(self._ids)}", inputs, webhook)
            self.runs[run.run_id] = run
        if self.auto_finish:
            self.finish(run.run_id)
        return run

    def finish(self, run_id: str, ok: bool = True) -> FakeRun:
        run = self.runs[run_id]
        run.status = "success" if ok else "failed"
        run.image = self.base + self.image_path.format(run=run_id)
        return run

    def comfydeploy_body(self, run: FakeRun, status: str | None = None) -> dict[str, Any]:
        status = status or run.status
        body: dict[str, Any] = {"run_id": run.run_id, "status": status}
        if status == "success":
            body["outputs"] = [{"data": {"images": [{"url": run.image}]}}]
        if status == "failed":
            body["error"] = "the fake provider failed"
        return body


def send_webhook(
    client: httpx.AsyncClient | httpx.Client,
    path: str,
    secret: str,
    body: dict[str, Any],
    *,
    timestamp: int | None = None,
    tamper: bool = False,
) -> Any:
    """POST a webhook signed as the provider would (``tamper`` breaks the signature)."""
    raw = json.dumps(body).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signed = signature(secret, stamp, raw)
    if tamper:
        raw = raw.replace(b"success", b"failed")
    headers = {
        "Content-Type": "application/json",
        "X-Cook-Timestamp": stamp,
        "X-Cook-Signature": signed,
    }
    return client.post(path, content=raw, headers=headers)


def _handler(fake: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _raw(self, status: int, kind: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length", "0"))
            return json.loads(self.rfile.read(length) or b"{}")

        def do_POST(self) -> None:
            path = urlparse(self.path).path
            body = self._body()
            if path == "/v1/chat/completions":
                fake.chat_calls += 1
                if fake.chat_failures:
                    self._json(fake.chat_failures.pop(0), {"error": "fake"})
                    return
                time.sleep(fake.chat_delay)
                prompt = body["messages"][-1]["content"]
                self._json(
                    200,
                    {
                        "choices": [
                            {"message": {"role": "assistant", "content": f"echo: {prompt}"}}
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
                    },
                )
            elif path == "/v1/images/generations":
                self._images(body)
            elif path == "/api/run":
                run = fake.new_run(body.get("inputs"), body.get("webhook"))
                self._json(200, {"run_id": run.run_id})
            elif path == "/prompt":
                run = fake.new_run(body.get("prompt"), None)
                self._json(200, {"prompt_id": run.run_id})
            else:
                self._json(404, {})

        def _images(self, body: Any) -> None:
            fake.image_requests.append(body)
            if fake.image_failures:
                status = fake.image_failures.pop(0)
                message = (
                    "Your request was rejected by the safety system."
                    if status == 400
                    else "the fake is busy"
                )
                code = "content_policy_violation" if status == 400 else None
                self._json(status, {"error": {"message": message, "code": code}})
                return
            images = []
            for i in range(int(body.get("n", 1))):
                name = f"{body['prompt']}-{i}"
                if fake.image_answer == "url":
                    images.append({"url": f"{fake.base}/img/{len(fake.image_requests)}-{i}.png"})
                else:
                    images.append({"b64_json": base64.b64encode(png(name)).decode()})
            self._json(200, {"created": 1, "data": images})

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path.startswith("/api/run/"):
                run = fake.runs.get(url.path.removeprefix("/api/run/"))
                if run is None:
                    self._json(404, {})
                else:
                    self._json(200, fake.comfydeploy_body(run))
            elif url.path.startswith("/history/"):
                run = fake.runs.get(url.path.removeprefix("/history/"))
                if run is None or run.status not in ("success", "failed"):
                    self._json(200, {})
                    return
                status = {
                    "completed": True,
                    "status_str": "success" if run.status == "success" else "error",
                }
                images = [{"filename": f"{run.run_id}.png", "subfolder": "", "type": "output"}]
                self._json(
                    200, {run.run_id: {"status": status, "outputs": {"9": {"images": images}}}}
                )
            elif url.path == "/view":
                name = parse_qs(url.query).get("filename", ["x"])[0]
                padding = random.Random(name).randbytes(fake.image_padding)
                self._raw(200, "image/png", png(name) + padding)
            elif url.path.startswith("/img/"):
                self._raw(200, "image/png", png(url.path))
            elif url.path == "/huge.png":
                self._raw(200, "image/png", b"\x00" * (21 * 1024 * 1024))
            elif url.path == "/flaky.png":
                fake.flaky_failures -= 1
                if fake.flaky_failures >= 0:
                    self._json(503, {})
                else:
                    self._raw(200, "image/png", png("flaky"))
            elif url.path == "/page.html":
                self._raw(200, "text/html", b"<html></html>")
            else:
                self._json(404, {})

    return Handler


@contextmanager
def fake_provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


SECRET = "whsec-test-secret"


def providers_json(fake: FakeProvider, *, poll: bool = True, deadline: float = 30) -> str:
    """COOK_PROVIDERS for the three fakes: ``gpt``, ``deploy`` (webhook, polled if ``poll``)
    and ``comfy`` (polled)."""
    return json.dumps(
        [
            {
                "id": "gpt",
                "kind": "openai",
                "baseUrl": f"{fake.base}/v1",
                "model": "fake-1",
                "apiKey": "sk-test",
                "inputMicrosPerToken": 2,
                "outputMicrosPerToken": 10,
            },
            {
                "id": "deploy",
                "kind": "comfydeploy",
                "baseUrl": fake.base,
                "apiKey": "cd-test",
                "deploymentId": "dep-1",
                "webhookSecret": SECRET,
                "poll": poll,
                "deadlineSeconds": deadline,
                "costMicros": 3000,
                "inputs": [{"name": "prompt", "type": "string", "required": True}],
            },
            {
                "id": "comfy",
                "kind": "comfyui",
                "baseUrl": fake.base,
                "deadlineSeconds": deadline,
                "costMicros": 500,
            },
        ]
    )


async def wait_for_runs(
    fake: FakeProvider, n: int, api: Api | None = None, within: float = 20
) -> list[str]:
    """The first ``n`` runs the fake started; with ``api``, once the service recorded them."""
    deadline = time.monotonic() + within
    while True:
        ids = list(fake.runs)[:n]
        recorded = n if api is None else await recorded_runs(api, ids)
        if len(ids) == n and recorded == n:
            return ids
        assert time.monotonic() < deadline, f"only {len(fake.runs)} runs started"
        await asyncio.sleep(0.02)


async def recorded_runs(api: Api, run_ids: list[str]) -> int:
    db = api.app.state.runtime.client[api.settings.db_name]
    count: int = await db.runs.count_documents({"runId": {"$in": run_ids}})
    return count


def image_providers_json(fake: FakeProvider) -> str:
    """COOK_PROVIDERS with the fake's image generation: ``pix``, at 40,000 micro-dollars an
    image."""
    return json.dumps(
        [
            {
                "id": "pix",
                "kind": "openai-images",
                "baseUrl": f"{fake.base}/v1",
                "model": "fake-image-1",
                "apiKey": "sk-test",
                "costMicrosPerImage": 40_000,
            }
        ]
    )
