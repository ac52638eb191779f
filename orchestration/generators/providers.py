"""Generation providers, configured from the environment, each offered as a tool.

- ``openai``: an OpenAI-compatible chat-completions endpoint. Synchronous: the answer
  completes the piece in the same call.
- ``openai-images``: an OpenAI-compatible image-generation endpoint, synchronous too
  (``image_provider.py``).
- ``comfydeploy``: a ComfyDeploy-style run API. The service starts a run with a callback URL;
  the provider POSTs signed updates to ``/webhooks/{id}``. With ``poll`` it is also polled
  (``GET /api/run/{run_id}``); either path completes the piece, once.
- ``comfyui``: the ComfyUI API. ``POST /prompt`` gives a ``prompt_id``; the poller reads
  ``GET /history/{prompt_id}`` and fetches images with ``GET /view``.

Secrets (API keys, webhook secrets) live only in this configuration, never in the database or
logs (``SecretStr``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode, urlsplit

from pydantic import Field, SecretStr, TypeAdapter

from orchestration.base.tools import (
    BUILTIN_TOOLS,
    InputType,
    Submitted,
    Toolbox,
    ToolCall,
    ToolFailure,
    ToolInput,
    ToolOutput,
    ToolSpec,
    WebhookReport,
    Webhooks,
    render_text,
)
from orchestration.generators.image_provider import OpenAIImagesConfig, openai_images
from orchestration.generators.provider_http import BaseProviderConfig
from orchestration.generators.provider_http import ProviderContext as ProviderContext
from orchestration.generators.provider_http import declared_inputs as _inputs
from orchestration.generators.provider_http import malformed as _malformed
from orchestration.generators.provider_http import request_headers as _headers
from orchestration.generators.provider_http import send as _send
from orchestration.storage.media import fetch_image

MAX_OUTPUTS = 16
MAX_TEXT_CHARS = 100_000  # a text output
MAX_RUN_ID = 200
FINAL_OK = "success"
FINAL_FAILED = "failed"


class OpenAIConfig(BaseProviderConfig):
    kind: Literal["openai"]
    model: str
    input_micros_per_token: int = Field(default=0, ge=0)
    output_micros_per_token: int = Field(default=0, ge=0)


class ComfyDeployConfig(BaseProviderConfig):
    kind: Literal["comfydeploy"]
    deployment_id: str
    webhook_secret: SecretStr
    poll: bool = False
    deadline_seconds: float = Field(default=600, gt=0, le=86_400)
    cost_micros: int = Field(default=0, ge=0)


class ComfyUIConfig(BaseProviderConfig):
    kind: Literal["comfyui"]
    deadline_seconds: float = Field(default=600, gt=0, le=86_400)
    cost_micros: int = Field(default=0, ge=0)


type ProviderConfig = Annotated[
    OpenAIConfig | OpenAIImagesConfig | ComfyDeployConfig | ComfyUIConfig,
    Field(discriminator="kind"),
]
PROVIDERS = TypeAdapter(list[ProviderConfig])


def parse_providers(raw: str) -> list[ProviderConfig]:
    """``COOK_PROVIDERS``: a JSON list of provider objects. Raises pydantic's ValidationError."""
    return PROVIDERS.validate_json(raw or "[]")


def build_toolbox(configs: list[ProviderConfig], ctx: ProviderContext) -> Toolbox:
    """The built-in tools and one per configured provider."""
    return Toolbox([*BUILTIN_TOOLS, *(provider_tool(c, ctx) for c in configs)])


def provider_tool(config: ProviderConfig, ctx: ProviderContext) -> ToolSpec:
    match config:
        case OpenAIConfig():
            return _openai(config, ctx)
        case OpenAIImagesConfig():
            return openai_images(config, ctx)
        case ComfyDeployConfig():
            return _comfydeploy(config, ctx)
        case ComfyUIConfig():
            return _comfyui(config, ctx)


def _too_long(what: str) -> ToolFailure:
    return ToolFailure(f"{what}: the text is over {MAX_TEXT_CHARS} characters", retryable=False)


# --- OpenAI-compatible chat completions (synchronous) ------------------------------------


def _openai(config: OpenAIConfig, ctx: ProviderContext) -> ToolSpec:
    url = config.base_url.rstrip("/") + "/chat/completions"

    async def run(call: ToolCall) -> ToolOutput:
        params = call.params if isinstance(call.params, dict) else {}
        prompt = params.get("prompt", render_text(call.params))
        messages = [{"role": "user", "content": str(prompt)}]
        if isinstance(params.get("system"), str):
            messages.insert(0, {"role": "system", "content": params["system"]})
        body: dict[str, Any] = {"model": config.model, "messages": messages}
        for key in ("temperature", "max_tokens"):
            if key in params:
                body[key] = params[key]
        answer = await _send(ctx, "POST", url, config.id, json=body, headers=_headers(config, call))
        try:
            text = answer["choices"][0]["message"]["content"]
            usage = answer.get("usage") or {}
            cost = (
                int(usage.get("prompt_tokens", 0)) * config.input_micros_per_token
                + int(usage.get("completion_tokens", 0)) * config.output_micros_per_token
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise _malformed(config.id) from exc
        if not isinstance(text, str):
            raise _malformed(config.id)
        if len(text) > MAX_TEXT_CHARS:
            raise ToolFailure(
                f"{config.id}: the answer is over {MAX_TEXT_CHARS} characters", retryable=False
            )
        return ToolOutput(text, cost)

    return ToolSpec(
        config.id,
        config.description or f"Chat completion with {config.model} (answers at once).",
        run,
        inputs=_inputs(
            config,
            (
                ToolInput("prompt", InputType.STRING, True, "the user message"),
                ToolInput("system", InputType.STRING, False, "a system message"),
                ToolInput("temperature", InputType.NUMBER),
                ToolInput("max_tokens", InputType.NUMBER),
            ),
        ),
        open_inputs=False,
        kind="openai",
    )


# --- ComfyDeploy-style runs: webhook, optionally polled too -------------------------------


def _items(value: Any, key: str) -> list[Any]:
    """``value[key]`` when ``value`` is an object and that is a list; else nothing."""
    found = value.get(key) if isinstance(value, dict) else None
    return found if isinstance(found, list) else []


async def _outputs(
    ctx: ProviderContext, outputs: Any, cost: int, trusted_host: str | None
) -> ToolOutput:
    """ComfyDeploy's ``outputs``: ``[{data: {images: [{url}], text: [...]}}]``. Images are
    fetched and stored; an output that cannot be fetched fails the attempt."""
    urls: list[str] = []
    texts: list[str] = []
    for output in outputs[:MAX_OUTPUTS] if isinstance(outputs, list) else []:
        data = output.get("data", output) if isinstance(output, dict) else None
        urls += [
            i["url"]
            for i in _items(data, "images")
            if isinstance(i, dict) and isinstance(i.get("url"), str)
        ]
        texts += [t for t in _items(data, "text") if isinstance(t, str)]
    if not urls and not texts:
        raise ToolFailure("the run's outputs hold no image or text", retryable=False)
    text = "\n".join(texts)
    if len(text) > MAX_TEXT_CHARS:
        raise ToolFailure(
            f"the run's text is longer than {MAX_TEXT_CHARS} characters", retryable=False
        )
    media = tuple(
        [
            await fetch_image(ctx.client, url, ctx.media, trusted_host=trusted_host)
            for url in urls[:MAX_OUTPUTS]
        ]
    )
    return ToolOutput(text, cost, media)


def _comfydeploy(config: ComfyDeployConfig, ctx: ProviderContext) -> ToolSpec:
    base = config.base_url.rstrip("/")
    host = urlsplit(base).hostname

    async def run(call: ToolCall) -> Submitted:
        body = {
            "deployment_id": config.deployment_id,
            "inputs": call.params,
            "webhook": ctx.callback_url(config.id),
        }
        answer = await _send(
            ctx, "POST", f"{base}/api/run", config.id, json=body, headers=_headers(config, call)
        )
        run_id = answer.get("run_id") if isinstance(answer, dict) else None
        if not isinstance(run_id, str) or not 0 < len(run_id) <= MAX_RUN_ID:
            raise _malformed(config.id)
        return Submitted(run_id, poll=config.poll, deadline_seconds=config.deadline_seconds)

    async def poll(run_id: str) -> ToolOutput | None:
        answer = await _send(
            ctx,
            "GET",
            f"{base}/api/run/{quote(run_id, safe='')}",
            config.id,
            headers=_headers(config),
        )
        status, failure = _state(answer)
        if status not in (FINAL_OK, FINAL_FAILED):
            return None
        if failure is not None:
            raise ToolFailure(failure, retryable=True)
        return await _outputs(ctx, answer.get("outputs"), config.cost_micros, host)

    def _state(body: Any) -> tuple[str, str | None]:
        """The run's status, and why it failed if it did."""
        if not isinstance(body, dict):
            raise ToolFailure(f"{config.id}: unexpected answer", retryable=False)
        status = str(body.get("status", ""))
        if status != FINAL_FAILED:
            return status, None
        return status, str(body.get("error") or "the provider reported a failure")[:500]

    def read(body: Any) -> WebhookReport:
        if not isinstance(body, dict) or not isinstance(body.get("run_id"), str):
            raise ValueError("a run update needs a run_id")
        status, failure = _state(body)
        final = status in (FINAL_OK, FINAL_FAILED)
        return WebhookReport(body["run_id"], status, final=final, failure=failure)

    async def finish(body: Any) -> ToolOutput:
        return await _outputs(ctx, body.get("outputs"), config.cost_micros, host)

    return ToolSpec(
        config.id,
        config.description
        or "A ComfyDeploy run; completes by webhook" + (" or polling." if config.poll else "."),
        run,
        inputs=_inputs(config, ()),
        open_inputs=config.open_inputs,
        kind="comfydeploy",
        poll=poll if config.poll else None,
        webhooks=Webhooks(config.webhook_secret.get_secret_value(), read, finish),
    )


# --- ComfyUI: polling -----------------------------------------------------------------------


def _comfyui(config: ComfyUIConfig, ctx: ProviderContext) -> ToolSpec:
    base = config.base_url.rstrip("/")

    async def run(call: ToolCall) -> Submitted:
        body = {"prompt": call.params, "client_id": call.job_key}
        answer = await _send(ctx, "POST", f"{base}/prompt", config.id, json=body)
        prompt_id = answer.get("prompt_id") if isinstance(answer, dict) else None
        if not isinstance(prompt_id, str) or not 0 < len(prompt_id) <= MAX_RUN_ID:
            raise _malformed(config.id)
        return Submitted(prompt_id, poll=True, deadline_seconds=config.deadline_seconds)

    async def poll(prompt_id: str) -> ToolOutput | None:
        history = await _send(ctx, "GET", f"{base}/history/{quote(prompt_id, safe='')}", config.id)
        entry = history.get(prompt_id) if isinstance(history, dict) else None
        if not isinstance(entry, dict):
            return None  # not finished (ComfyUI answers {} until then)
        found = entry.get("status")
        status: dict[str, Any] = found if isinstance(found, dict) else {}
        if status.get("status_str") == "error":
            raise ToolFailure(f"{config.id}: the prompt failed", retryable=True)
        if not status.get("completed", True):
            return None
        nodes = entry.get("outputs")
        urls = [
            f"{base}/view?"
            + urlencode({k: str(image.get(k, "")) for k in ("filename", "subfolder", "type")})
            for node in (nodes.values() if isinstance(nodes, dict) else [])
            for image in _items(node, "images")
            if isinstance(image, dict)
        ]
        if not urls:
            raise ToolFailure(f"{config.id}: the prompt produced no image", retryable=False)
        host = urlsplit(base).hostname
        media = tuple(
            [
                await fetch_image(ctx.client, u, ctx.media, trusted_host=host)
                for u in urls[:MAX_OUTPUTS]
            ]
        )
        return ToolOutput("", config.cost_micros, media)

    return ToolSpec(
        config.id,
        config.description or "A ComfyUI workflow; completes when polled.",
        run,
        inputs=_inputs(config, ()),
        open_inputs=config.open_inputs,
        kind="comfyui",
        poll=poll,
    )
