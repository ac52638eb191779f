"""The API with two plain JSON routes beside GraphQL, for ``bench.api_overhead``.

The routes read the same documents with the same store calls as the GraphQL fields they are
compared with, in the same process, so the difference is GraphQL's own cost.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import uvicorn
from fastapi import Request
from fastapi.responses import JSONResponse

from orchestration.cooking import pieces as piece_domain
from orchestration.cooking.pieces import Piece
from service.app import create_app
from service.runtime import caller, runtime_of
from service.settings import Settings


def _piece(p: Piece) -> dict[str, Any]:
    return {
        "id": p.id,
        "index": p.index,
        "status": p.status.value.upper(),
        "output": p.output_text,
        "costUsd": str(Decimal(p.cost_micros).scaleb(-6)),
        "traits": [{"category": t.category, "name": t.name, "value": t.value} for t in p.traits],
    }


def main() -> None:
    settings = Settings()
    app = create_app(settings)

    @app.get("/plain/cook/{cook_id}")
    async def plain_cook(cook_id: str, request: Request) -> JSONResponse:
        principal = caller(request)
        assert principal is not None
        services = runtime_of(request).services
        cook = await services.cooks.get(principal, cook_id)
        numbers = await services.pieces.numbers(cook_id)
        pieces = await services.pieces.list_for_cook(principal, cook_id, 50)
        body = {
            "id": cook.id,
            "status": cook.status.value.upper(),
            "numbers": {
                "completed": numbers.completed,
                "inFlight": numbers.in_flight,
                "costUsd": str(Decimal(numbers.cost_micros).scaleb(-6)),
            },
            "pieces": [_piece(p) for p in pieces],
        }
        return JSONResponse({"data": {"cook": body}})

    @app.get("/plain/pieces/{collection_id}")
    async def plain_pieces(collection_id: str, request: Request) -> JSONResponse:
        principal = caller(request)
        assert principal is not None
        services = runtime_of(request).services
        collection = await services.collections.get(principal, collection_id)
        query = piece_domain.PieceQuery(collection_id=collection.id)
        page = await services.pieces.find_page(principal, query, 100, None)
        edges = [{"node": _piece(p)} for p in page.items]
        return JSONResponse({"data": {"pieces": {"edges": edges}}})

    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
