"""What every configured provider shares: the configuration's common fields, the context
its tool runs in, and one HTTP request with the failure policy (timeouts, connection errors,
429 and 5xx are retryable; other 4xx are not)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.alias_generators import to_camel

from orchestration.base.tools import InputType, ToolCall, ToolFailure, ToolInput
from orchestration.storage.media import MediaStore

REQUEST_TIMEOUT_SECONDS = 60.0
MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # a provider's JSON answer
MAX_ERROR_CHARS = 300  # of a provider's error message, in a failure's reason


class InputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    type: InputType = InputType.STRING
    required: bool = False
    description: str = ""


class BaseProviderConfig(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    description: str = ""
    base_url: str = Field(pattern=r"^https?://")
    api_key: SecretStr | None = None
    inputs: list[InputConfig] = []
    open_inputs: bool = True


@dataclass(frozen=True)
class ProviderContext:
    client: httpx.AsyncClient
    media: MediaStore
    callback_url: Callable[[str], str]  # provider id -> the URL its webhooks go to


def declared_inputs(
    config: BaseProviderConfig, defaults: tuple[ToolInput, ...]
) -> tuple[ToolInput, ...]:
    declared = tuple(ToolInput(i.name, i.type, i.required, i.description) for i in config.inputs)
    return declared or defaults


def request_headers(config: BaseProviderConfig, call: ToolCall | None = None) -> dict[str, str]:
    headers = {}
    if config.api_key is not None:
        headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
    if call is not None:
        headers["Idempotency-Key"] = f"{call.job_key}:{call.attempt}"
    return headers


async def send(
    ctx: ProviderContext,
    method: str,
    url: str,
    what: str,
    *,
    max_bytes: int = MAX_RESPONSE_BYTES,
    **kwargs: Any,
) -> Any:
    """One request to a provider; its failures become ToolFailure (retryable when it may
    help: timeouts, connection errors, 429 and 5xx). An OpenAI-shaped error body's
    ``error.message`` (a refusal's reason, say) is added to the failure's reason."""
    try:
        response = await ctx.client.request(method, url, timeout=REQUEST_TIMEOUT_SECONDS, **kwargs)
    except httpx.TimeoutException as exc:
        raise ToolFailure(f"{what}: timed out", retryable=True) from exc
    except httpx.HTTPError as exc:
        raise ToolFailure(f"{what}: {type(exc).__name__}", retryable=True) from exc
    if response.status_code >= 400:
        retry = response.status_code >= 500 or response.status_code == 429
        reason = f"{what}: HTTP {response.status_code}{_explained(response)}"
        raise ToolFailure(reason, retryable=retry)
    if len(response.content) > max_bytes:
        raise ToolFailure(f"{what}: the answer is over {max_bytes} bytes", retryable=False)
    try:
        return response.json()
    except (ValueError, RecursionError) as exc:
        raise ToolFailure(f"{what}: the answer is not JSON", retryable=True) from exc


def malformed(what: str) -> ToolFailure:
    return ToolFailure(f"{what}: unexpected answer", retryable=False)


def _explained(response: httpx.Response) -> str:
    """``: <message>`` from an ``{"error": {"message": ...}}`` body, else nothing."""
    try:
        error = response.json().get("error") if len(response.content) <= 65_536 else None
    except (ValueError, AttributeError, RecursionError):
        return ""
    message = error.get("message") if isinstance(error, dict) else None
    return f": {message[:MAX_ERROR_CHARS]}" if isinstance(message, str) and message else ""
