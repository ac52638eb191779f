"""A webhook receiver on loopback for tests: records every request, answers as told, and
verifies signatures with the ``standardwebhooks`` library (as a real receiver would)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded

    def verifies_with(self, secret: str) -> bool:
        try:
            Webhook(secret).verify(self.body, self.headers)
        except WebhookVerificationError:
            return False
        return True


# (the request's number, 1-based) -> (status, extra headers)
type Answer = Callable[[int], tuple[int, dict[str, str]]]


def always_ok(_n: int) -> tuple[int, dict[str, str]]:
    return 200, {}


@dataclass
class Receiver:
    url: str = ""
    answer: Answer = always_ok
    received: list[Received] = field(default_factory=list)
    hold: threading.Event | None = None  # set: answer; unset: keep the request waiting
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def wait(self, n: int, within: float = 30.0) -> list[Received]:
        """``wait_for`` for a test whose event loop runs the app too."""
        deadline = time.monotonic() + within
        while True:
            with self.lock:
                if len(self.received) >= n:
                    return list(self.received)
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.received)} requests arrived, not {n}")
            await asyncio.sleep(0.01)

    def wait_for(self, n: int, within: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + within
        while True:
            with self.lock:
                if len(self.received) >= n:
                    return list(self.received)
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.received)} requests arrived, not {n}")
            time.sleep(0.01)


@contextmanager
def webhook_receiver(answer: Answer = always_ok, host: str = "127.0.0.1") -> Iterator[Receiver]:
    receiver = Receiver(answer=answer)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 65536  # the answer leaves in one write, flushed after each request
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.received.append(
                    Received({k.lower(): v for k, v in self.headers.items()}, body, time.time())
                )
                n = len(receiver.received)
            receiver.arrived.set()
            if receiver.hold is not None:
                receiver.hold.wait(30)
            status, extra = receiver.answer(n)
            reply = b"ok"
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # many senders connect at once
        if ":" in host:
            address_family = __import__("socket").AF_INET6

    server_class = Server
    server = server_class((host, 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    receiver.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        server.shutdown()
        server.server_close()
