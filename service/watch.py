"""`cook watch COOK_ID`: follow a cook through `cookProgress`, with a live progress bar.

Exits with the cook's final status: 0 completed, 1 failed, 3 cancelled; 2 when the cook cannot
be followed (refused token, unknown cook). A dropped connection is resumed from the last
`seq` seen, so no event is missed or shown twice.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportClosed, TransportError, TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from tqdm import tqdm
from websockets.exceptions import ConnectionClosed, WebSocketException

PROGRESS = """
    subscription Watch($cookId: ID!, $afterSeq: Int) {
      cookProgress(cookId: $cookId, afterSeq: $afterSeq) {
        seq status count
        event { seq type index detail }
        numbers { inFlight retrying completed accepted rejected pendingReview failed live costUsd }
      }
    }
    """
EXIT_BY_STATUS = {"COMPLETED": 0, "FAILED": 1, "CANCELLED": 3}
CANNOT_FOLLOW = 2
RECONNECTS = 5


class Refused(Exception):
    """The server will not let us follow this cook; retrying cannot help."""


@dataclass
class Watch:
    url: str
    token: str
    cook_id: str
    out: TextIO = sys.stderr
    last_seq: int | None = None
    status: str | None = None
    events: int = 0

    async def run(self) -> int:
        bar: tqdm[Any] | None = None
        failures = 0
        try:
            while True:
                try:
                    async for message in self._messages():
                        failures = 0
                        bar = self._show(bar, message)
                    break
                except (TransportClosed, ConnectionClosed, WebSocketException, OSError) as exc:
                    if close_code(exc) == 4403:
                        raise Refused("the token was refused or has expired") from exc
                    failures += 1
                    if failures > RECONNECTS:
                        raise Refused(f"lost the connection {failures} times: {exc}") from exc
                    await asyncio.sleep(min(2.0**failures / 4, 5.0))
        except Refused as exc:
            print(f"cook watch: {exc}", file=self.out)
            return CANNOT_FOLLOW
        except TransportQueryError as exc:
            print(f"cook watch: {_messages_of(exc)}", file=self.out)
            return CANNOT_FOLLOW
        finally:
            if bar is not None:
                bar.close()
        print(f"cook {self.cook_id}: {(self.status or 'unknown').lower()}", file=self.out)
        return EXIT_BY_STATUS.get(self.status or "", CANNOT_FOLLOW)

    async def _messages(self) -> Any:
        transport = WebsocketsTransport(
            url=self.url,
            init_payload={"authorization": f"Bearer {self.token}"},
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        )
        variables = {"cookId": self.cook_id, "afterSeq": self.last_seq}
        try:
            async with Client(transport=transport) as session:
                request = GraphQLRequest(PROGRESS, variable_values=variables)
                async for result in session.subscribe(request):
                    yield result["cookProgress"]
        except TransportError as exc:
            if isinstance(exc, TransportQueryError):
                raise
            raise TransportClosed(str(exc)) from exc

    def _show(self, bar: tqdm[Any] | None, message: dict[str, Any]) -> tqdm[Any]:
        """The bar counts pieces made (completed, rejected or not) against what the cook must
        make: its count plus a replacement per rejection; once it ends, what it made. It
        starts at what was made before we arrived, so the rate is of what we saw being made
        (none for a finished cook) rather than a whole cook divided by a few milliseconds."""
        numbers = message["numbers"]
        made = numbers["completed"]
        ended = message["status"] in EXIT_BY_STATUS
        total = made if ended else max(message["count"] + numbers["rejected"], made)
        if bar is None:
            bar = tqdm(total=total, initial=made, unit="piece", file=self.out, dynamic_ncols=True)
        bar.total = total
        bar.update(made - bar.n)
        bar.set_postfix(
            status=message["status"].lower(),
            accepted=numbers["accepted"],
            rejected=numbers["rejected"],
            unreviewed=numbers["pendingReview"],
            running=numbers["inFlight"],
            failed=numbers["failed"],
            cost=f"${numbers['costUsd']}",
            refresh=False,
        )
        if message["event"] is not None:
            self.events += 1
            self.last_seq = message["seq"]
        elif self.last_seq is None:  # the first snapshot: follow from here
            self.last_seq = message["seq"]
        self.status = message["status"]
        return bar


def close_code(exc: BaseException) -> int | None:
    """The WebSocket close code the server sent, found along the exception's causes."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionClosed) and seen.rcvd is not None:
            return seen.rcvd.code
        seen = seen.__cause__ or seen.__context__
    return None


def _messages_of(exc: TransportQueryError) -> str:
    errors = exc.errors or []
    return "; ".join(str(e.get("message", e)) for e in errors) or str(exc)


def watch(url: str, token: str, cook_id: str) -> int:
    return asyncio.run(Watch(url, token, cook_id).run())
