"""HTTP routes of the providers' side: signed webhooks in, stored media out."""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from orchestration import pieces as piece_domain
from orchestration.errors import BadUserInput, Unauthenticated
from orchestration.ids import parse_entity_id
from orchestration.pieces import Failure, Success
from orchestration.runs import run_key
from orchestration.services import Services
from orchestration.tools import ToolFailure
from orchestration.webhooks import MAX_BODY_BYTES, Refused, verify
from service.runtime import caller

log = logging.getLogger("cook.providers")

router = APIRouter()


def _services(request: Request) -> Services:
    services: Services = request.app.state.runtime.services
    return services


def _answer(status: int, **body: object) -> JSONResponse:
    return JSONResponse(body, status_code=status)


@router.post("/webhooks/{provider}")
async def webhook(provider: str, request: Request) -> JSONResponse:
    """A provider's run update. Signed, fresh and new, or refused; idempotent per run."""
    services = _services(request)
    spec = services.toolbox.get(provider)
    if spec is None or spec.webhooks is None:
        return _answer(404, error="no such webhook")
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
        return _answer(413, error=f"at most {MAX_BODY_BYTES} bytes")
    body = await request.body()
    signed = request.headers.get("x-cook-signature")
    try:
        if len(body) > MAX_BODY_BYTES:
            raise Refused(413, f"at most {MAX_BODY_BYTES} bytes")
        verify(spec.webhooks.secret, request.headers.get("x-cook-timestamp"), signed, body)
        assert signed is not None
        await services.orchestrator.deliveries.first_time(provider, signed)
        try:
            payload = json.loads(body)
            report = spec.webhooks.read(payload)
        except ValueError as exc:
            raise Refused(400, f"malformed update: {exc}") from exc
    except Refused as refused:
        log.info("webhook for %s refused: %s", provider, refused.reason)
        return _answer(refused.status, error=refused.reason)
    orchestrator = services.orchestrator
    run = await orchestrator.runs.get(run_key(provider, report.run_id))
    if run is None:
        return _answer(404, error="unknown run")
    if not report.final:
        applied = await orchestrator.report_progress(provider, report.run_id, report.status)
        return _answer(200, applied=applied)
    if run.done:
        return _answer(200, applied=False)
    if report.failure is not None:
        outcome: Success | Failure = Failure(report.failure, retryable=True)
    else:
        try:
            output = await spec.webhooks.finish(payload)
            outcome = Success(output.text, output.cost_micros, output.media)
        except ToolFailure as exc:
            outcome = Failure(exc.reason, exc.retryable)
    applied = await orchestrator.report_run(provider, report.run_id, outcome)
    return _answer(200, applied=applied)


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
    headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
    path = services.media.local_path(ref.sha256)
    if path is not None:
        return FileResponse(path, media_type=ref.content_type, headers=headers)
    data = await services.media.read(ref.sha256)
    return Response(data, media_type=ref.content_type, headers=headers)
