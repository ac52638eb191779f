"""HTTP routes of the providers' side: signed webhooks in, stored media out."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from domain.errors import BadUserInput, Unauthenticated
from domain.ids import parse_entity_id
from domain.json_values import JsonLimits, JsonRefused, decode
from orchestration.cooking import pieces as piece_domain
from orchestration.generators.webhooks import MAX_BODY_BYTES, Refused, verify
from orchestration.services import Services
from service.runtime import caller
from service.stored_files import serve_stored

log = logging.getLogger("cook.providers")

router = APIRouter()
WEBHOOK_JSON = JsonLimits(max_depth=64, max_bytes=MAX_BODY_BYTES)  # the one JSON rule


def _services(request: Request) -> Services:
    services: Services = request.app.state.runtime.services
    return services


def _answer(status: int, **body: object) -> JSONResponse:
    return JSONResponse(body, status_code=status)


async def _capped_body(request: Request) -> bytes:
    """The raw body, refused past ``MAX_BODY_BYTES`` however it is sent (chunked included)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise Refused(413, f"at most {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Refused(413, f"at most {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/webhooks/{provider}")
async def webhook(provider: str, request: Request) -> JSONResponse:
    """A provider's run update: signed, fresh and not seen before, or refused. A delivery is
    recorded as seen only once it has been applied, so a provider's retry of one that could
    not be applied yet (an unknown run, an output not fetchable for now) is accepted later."""
    services = _services(request)
    spec = services.toolbox.get(provider)
    if spec is None or spec.webhooks is None:
        return _answer(404, error="no such webhook")
    deliveries = services.orchestrator.deliveries
    signed = request.headers.get("x-cook-signature") or ""
    try:
        body = await _capped_body(request)
        verify(spec.webhooks.secret, request.headers.get("x-cook-timestamp"), signed, body)
        await deliveries.refuse_seen(provider, signed)
        try:
            payload = decode(body, WEBHOOK_JSON)
        except JsonRefused as exc:
            raise Refused(400, f"the body {exc.message}") from exc
        receipt = await services.orchestrator.receive(spec, payload)
    except Refused as refused:
        log.info("webhook for %s refused: %s", provider, refused.reason)
        return _answer(refused.status, error=refused.reason)
    await deliveries.record(provider, signed)
    return _answer(200, applied=receipt)


@router.get("/media/{piece_id}/{n}")
async def media(piece_id: str, n: int, request: Request) -> Response:
    """A piece's stored image: to its owner and admins only (others get 404, as missing)."""
    try:
        principal = caller(request)
    except Unauthenticated as exc:
        return _answer(401, error=exc.message)
    if principal is None:
        return _answer(401, error="send Authorization: Bearer <token>")
    try:
        pid = parse_entity_id(piece_id, piece_domain.ID_PREFIX, "pieceId")
    except BadUserInput:
        return _answer(404, error="not found")
    services = _services(request)
    piece = await services.pieces.get(principal, pid)
    if piece is None or not 0 <= n < len(piece.media):
        return _answer(404, error="not found")
    ref = piece.media[n]
    # A URL naming the bytes' hash (``?v=<sha256>``, as ``PieceOutput.url`` does) can never
    # answer other bytes: cache it for good. Without it, an hour.
    named = request.query_params.get("v") == ref.sha256
    cache = "private, max-age=31536000, immutable" if named else "private, max-age=3600"
    headers = {"Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
    served = await serve_stored(request, services.media, ref.sha256, ref.content_type, headers)
    return served or _answer(404, error="not found")
