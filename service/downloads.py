"""Export archives over plain HTTP: ``GET /exports/{id}/archive`` with a Bearer token.

Owner and admins only; anyone else gets 404, exactly as for a missing export. Streamed from
the media store with ``Content-Length``, ``ETag`` and range requests (``service/stored_files``),
so any replica serves it and an interrupted download resumes.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from domain.errors import NotFound, Unauthenticated
from orchestration.results.exports import ID_PREFIX, ExportStatus
from service.runtime import caller, runtime_of
from service.stored_files import serve_stored

downloads = APIRouter()

_EXPORT_ID = re.compile(rf"^{ID_PREFIX}_[0-9a-f]{{32}}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


@downloads.get("/exports/{export_id}/archive")
async def download_archive(export_id: str, request: Request) -> Response:
    """The ZIP of a completed export."""
    try:
        principal = caller(request)
    except Unauthenticated as exc:
        return _error(401, "UNAUTHENTICATED", exc.message)
    if principal is None:
        return _error(401, "UNAUTHENTICATED", "sign in: send Authorization: Bearer <token>")
    missing = _error(404, "NOT_FOUND", f"export {export_id!r} was not found")
    if not _EXPORT_ID.fullmatch(export_id):
        return missing
    services = runtime_of(request).services
    exporter = services.exports
    try:
        job = await exporter.get(principal, export_id)
    except NotFound:
        return missing
    if job.status is not ExportStatus.COMPLETED:
        return _error(409, "CONFLICT", f"the export is {job.status.value}, not completed")
    stem = _UNSAFE.sub("-", job.collection.name).strip("-") or "collection"
    disposition = {"Content-Disposition": f'attachment; filename="{stem}-{job.id}.zip"'}
    served = None
    if job.archive_sha256 is not None:
        served = await serve_stored(
            request, services.media, job.archive_sha256, "application/zip", disposition
        )
    return served or _error(404, "NOT_FOUND", "the archive is not in the media store")
