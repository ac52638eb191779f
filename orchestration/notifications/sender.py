"""One attempt at one delivery over HTTP (httpx), safe to point anywhere a user types.

Before each attempt the endpoint's URL is checked again and its host resolved (``addresses``);
the request then goes to one of the checked addresses, with the typed host as ``Host`` and as
the TLS server name (so certificates are still verified against it). Redirects are never
followed (a 3xx is a failed attempt), proxies from the environment are ignored, the connect
and whole-request times are bounded, and at most ``MAX_RESPONSE_BYTES`` of an answer are read.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

import httpx

from orchestration.base import clock, tls
from orchestration.notifications.addresses import AddressRefused, Resolver, resolve_target
from orchestration.notifications.config import NotificationConfig
from orchestration.notifications.endpoints import Endpoint
from orchestration.notifications.signing import signed_headers

MAX_RESPONSE_BYTES = 4096


@dataclass(frozen=True)
class Outcome:
    at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Sender:
    def __init__(self, config: NotificationConfig, resolver: Resolver) -> None:
        self._config = config
        self._resolver = resolver
        timeout = httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds)
        # Plain http may keep connections (pooled by address and port); https never does: a
        # pooled TLS connection to an address would carry another host's requests.
        self._http = _client(timeout, keepalive=32)
        self._https = _client(timeout, keepalive=0)

    async def send(self, endpoint: Endpoint, message_id: str, body: str) -> Outcome:
        at = clock.now()
        started = time.monotonic()

        def outcome(status: int | None, error: str | None) -> Outcome:
            return Outcome(at, status, round((time.monotonic() - started) * 1000), error)

        try:
            target = await resolve_target(
                endpoint.url,
                require_https=self._config.require_https,
                allowed=self._config.allowed_networks,
                resolver=self._resolver,
            )
        except AddressRefused as exc:
            return outcome(None, f"not sent: the URL {exc}")
        data = body.encode()
        headers = signed_headers(endpoint.signing_secrets(at), message_id, at, data)
        url = httpx.URL(endpoint.url)
        headers["host"] = url.netloc.decode("ascii")
        extensions = {"sni_hostname": target.host} if target.https else {}
        client = self._https if target.https else self._http
        try:
            async with asyncio.timeout(self._config.timeout_seconds):
                request = client.build_request(
                    "POST",
                    url.copy_with(host=str(target.address)),
                    content=data,
                    headers=headers,
                    extensions=extensions,
                )
                response = await client.send(request, stream=True)
                try:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= MAX_RESPONSE_BYTES:
                            break  # the rest is never read
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return outcome(None, "timed out")
        except httpx.HTTPError as exc:
            return outcome(None, f"the request failed: {type(exc).__name__}")
        status = response.status_code
        if 200 <= status < 300:
            return outcome(status, None)
        if 300 <= status < 400:
            return outcome(status, f"HTTP {status}: redirects are not followed")
        return outcome(status, f"HTTP {status}")

    async def close(self) -> None:
        await self._http.aclose()
        await self._https.aclose()


def _client(timeout: httpx.Timeout, *, keepalive: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,  # no proxy from the environment: it would connect for us
        verify=tls.verifying(trust_env=False),
        timeout=timeout,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=keepalive),
    )
