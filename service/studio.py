"""The studio (``/studio``) and, in development, GraphiQL: pages served by Cook itself.

Every asset is a committed file under ``service/static`` (the third-party ones vendored by
``bin/vendor-assets`` from pinned npm packages, see ``vendor.json``), so the pages need no
network. Both pages are sent with a strict Content-Security-Policy: scripts and styles only
from this origin (no inline ones), connections only to this origin (HTTP and WebSocket), images
from this origin and from blob URLs (media fetched with the Bearer token). The pages hold no
secret: the token is pasted by the user and kept in the tab's sessionStorage.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def content_security_policy(request: Request, *, fonts_and_images_as_data: bool = False) -> str:
    """Only this origin, also over WebSocket (named explicitly: not every browser counts
    ``ws:`` as ``'self'``)."""
    host = request.headers.get("host", "")
    ws = f"ws://{host} wss://{host}" if host else ""
    data = " data:" if fonts_and_images_as_data else ""
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' blob:{data}",
            f"font-src 'self'{data}",
            f"connect-src 'self' {ws}".rstrip(),
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def page(request: Request, name: str, *, data_urls: bool = False) -> Response:
    headers = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": content_security_policy(
            request, fonts_and_images_as_data=data_urls
        ),
    }
    return FileResponse(STATIC / name, media_type="text/html", headers=headers)


class _Assets(StaticFiles):
    """Static files, with ``nosniff``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-content-type-options", b"nosniff"),
                ]
            await send(message)

        await super().__call__(scope, receive, send_nosniff)


def mount(app: FastAPI, *, development: bool, sdl: str) -> None:
    """The studio's routes; in development also the schema's SDL, which GraphiQL loads
    (introspection stays admin-only, and the SDL is the public contract in the repository)."""
    router = APIRouter()

    @router.get("/studio", include_in_schema=False)
    async def studio(request: Request) -> Response:
        return page(request, "studio/index.html")

    if development:

        @router.get("/graphql/schema.graphql", include_in_schema=False)
        async def schema_sdl() -> Response:
            return PlainTextResponse(sdl, headers=SECURITY_HEADERS)

    app.include_router(router)
    app.mount("/studio/assets", _Assets(directory=STATIC), name="studio-assets")


def graphiql(request: Request) -> Response:
    """GraphiQL from the vendored files (its stylesheet inlines fonts and icons as data:)."""
    return page(request, "graphiql/index.html", data_urls=True)
