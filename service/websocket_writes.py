"""WebSocket frames written to a connection in runs, one system call per run, not per frame.

uvicorn's WebSocket protocol writes each frame to the socket as it is sent: one ``send``
system call per message. A ``cookProgress`` subscriber that wakes to a run of events sends them
one after another in the same step of its task, so with 1,000 subscribers and runs of eight
events (bench section 3) the API process made eight thousand system calls per run, a quarter
of its CPU (each a trip through the kernel's TCP stack, and for the client one more read).

``CoalescingWebSocketProtocol`` is uvicorn's protocol (``websockets-sansio``, its default) with
its transport wrapped in ``CoalescedWrites``, which keeps a connection's writes until another
connection of the process writes or the current pass of the event loop ends (``call_soon``),
whichever comes first, and then writes them in one. So a subscriber's run of events goes out
as soon as the next subscriber starts on its own, and nothing waits longer than one pass.
Bytes keep their order, since every write of the protocol (frames, pings, pongs, the close
frame) goes through the same list; ``close`` writes what is kept first; a connection already
closing drops it, as the socket would.

Measured (1,000 subscribers, 75 pieces, three interleaved pairs with the garbage-collector
settings of ``service/collector.py`` in both): API CPU 7.4 s against 8.6 s, the benchmark
client's 3.5 s against 5.4 s, p50 latency 270 ms against 310 ms.

Passed to ``uvicorn.run(ws=...)`` by ``cook serve``.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

_writing: CoalescedWrites | None = None  # the connection whose writes are being kept


class CoalescedWrites(asyncio.Transport):
    """A transport whose consecutive writes reach the socket as one write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._kept: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview[Any]) -> None:
        global _writing
        if not data:
            return
        if _writing is not self:
            if _writing is not None and _writing._loop is self._loop:
                _writing.flush()  # another connection writes: that one's run is over
            _writing = self
        if not self._kept:
            self._loop.call_soon(self.flush)
        self._kept.append(bytes(data))

    def flush(self) -> None:
        """Write what is kept now (called at the end of the pass, and before a close)."""
        global _writing
        if _writing is self:
            _writing = None  # no reference to this connection outlives its writes
        if not self._kept:
            return
        data = b"".join(self._kept)
        self._kept.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._kept.clear()
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._kept))

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class CoalescingWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, writing through ``CoalescedWrites``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Any event loop's stream transport (uvloop's too): only its methods are called.
        super().connection_made(CoalescedWrites(cast(asyncio.Transport, transport), self.loop))
