"""``openai-images``: an OpenAI-compatible image-generation endpoint (synchronous).

``POST {baseUrl}/images/generations`` with ``{model, prompt, n, ...}``: the prompt is the
filled template's ``prompt``; ``size``, ``quality`` and the other declared inputs are passed
on as they are. Each answer in ``data`` is a ``b64_json`` image or a ``url`` (fetched with the
media limits: 20 MiB; PNG, JPEG, WebP or GIF); all are stored through the ``MediaStore``. The
cost is ``costMicrosPerImage`` times the images returned. Errors, retries and timeouts are the
chat completions' (``provider_http.send``): a refusal (a 4xx, with the provider's message)
fails the piece, 429 and 5xx are retried.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field

from orchestration.base.tools import (
    InputType,
    MediaRef,
    ToolCall,
    ToolFailure,
    ToolInput,
    ToolOutput,
    ToolSpec,
    render_text,
)
from orchestration.generators.provider_http import (
    BaseProviderConfig,
    ProviderContext,
    declared_inputs,
    malformed,
    request_headers,
    send,
)
from orchestration.storage.media import IMAGE_TYPES, MAX_MEDIA_BYTES, fetch_image

MAX_IMAGES = 4
SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}


class OpenAIImagesConfig(BaseProviderConfig):
    kind: Literal["openai-images"]
    model: str
    cost_micros_per_image: int = Field(default=0, ge=0)
    # Sent as ``response_format`` when set; gpt-image models answer b64_json always and
    # refuse the field, so it is left out by default.
    response_format: Literal["b64_json", "url"] | None = None


DEFAULT_INPUTS = (
    ToolInput("prompt", InputType.STRING, True, "what to draw"),
    ToolInput("size", InputType.STRING, False, "e.g. 1024x1024"),
    ToolInput("quality", InputType.STRING, False, "e.g. standard, hd, low, medium, high"),
    ToolInput("style", InputType.STRING, False, "e.g. vivid, natural"),
    ToolInput("background", InputType.STRING, False, "e.g. transparent, opaque"),
    ToolInput("n", InputType.NUMBER, False, f"images per piece, 1 to {MAX_IMAGES}"),
)


def _sniff(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for sig, kind in SIGNATURES.items() if data.startswith(sig)), None)


async def _stored_b64(ctx: ProviderContext, what: str, payload: str) -> MediaRef:
    if len(payload) > MAX_MEDIA_BYTES * 4 // 3 + 4:
        raise ToolFailure(f"{what}: an image is over {MAX_MEDIA_BYTES} bytes", retryable=False)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ToolFailure(f"{what}: an image is not valid base64", retryable=False) from exc
    kind = _sniff(data)
    if kind not in IMAGE_TYPES:
        raise ToolFailure(f"{what}: an image is not a PNG, JPEG, WebP or GIF", retryable=False)
    return await ctx.media.put(data, kind)


def openai_images(config: OpenAIImagesConfig, ctx: ProviderContext) -> ToolSpec:
    url = config.base_url.rstrip("/") + "/images/generations"
    host = urlsplit(config.base_url).hostname
    what = config.id
    inputs = declared_inputs(config, DEFAULT_INPUTS)

    async def run(call: ToolCall) -> ToolOutput:
        params = call.params if isinstance(call.params, dict) else {}
        prompt = params.get("prompt", render_text(call.params))
        body: dict[str, Any] = {"model": config.model, "prompt": str(prompt)}
        body.update({i.name: params[i.name] for i in inputs if i.name in params})
        body["prompt"] = str(prompt)
        n = body.get("n", 1)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_IMAGES:
            raise ToolFailure(f"{what}: n must be 1 to {MAX_IMAGES}", retryable=False)
        body["n"] = n
        if config.response_format is not None:
            body["response_format"] = config.response_format
        answer = await send(
            ctx,
            "POST",
            url,
            what,
            json=body,
            headers=request_headers(config, call),
            max_bytes=MAX_IMAGES * (MAX_MEDIA_BYTES * 4 // 3) + 1024 * 1024,
        )
        items = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise malformed(what)
        media: list[MediaRef] = []
        for item in items[:MAX_IMAGES]:
            if isinstance(item.get("b64_json"), str):
                media.append(await _stored_b64(ctx, what, item["b64_json"]))
            elif isinstance(item.get("url"), str):
                media.append(
                    await fetch_image(ctx.client, item["url"], ctx.media, trusted_host=host)
                )
            else:
                raise malformed(what)
        revised = items[0].get("revised_prompt")
        text = revised if isinstance(revised, str) else str(prompt)
        return ToolOutput(text[:10_000], config.cost_micros_per_image * len(media), tuple(media))

    return ToolSpec(
        config.id,
        config.description or f"Image generation with {config.model} (answers at once).",
        run,
        inputs=inputs,
        open_inputs=False,
        kind="openai-images",
    )
