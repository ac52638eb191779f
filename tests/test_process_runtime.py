"""How Cook's long-running processes write WebSocket frames (``service/websocket_writes.py``)
and collect garbage (``service/collector.py``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

from service.websocket_writes import CoalescedWrites


class RecordingTransport(asyncio.Transport):
    """The socket's side: what reached it, write by write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: Any) -> None:
        assert not self.closing, "written after close"
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


async def test_the_frames_of_one_pass_reach_the_socket_in_one_write_in_order() -> None:
    socket = RecordingTransport()
    writes = CoalescedWrites(socket, asyncio.get_running_loop())
    for frame in (b"one", b"two", b"three"):
        writes.write(frame)
    assert socket.writes == []
    await asyncio.sleep(0)
    assert socket.writes == [b"onetwothree"]
    writes.write(b"four")
    await asyncio.sleep(0)
    assert socket.writes == [b"onetwothree", b"four"]


async def test_a_connection_s_frames_go_out_when_another_connection_starts_writing() -> None:
    loop = asyncio.get_running_loop()
    first, second = RecordingTransport(), RecordingTransport()
    a, b = CoalescedWrites(first, loop), CoalescedWrites(second, loop)
    a.write(b"a1")
    a.write(b"a2")
    b.write(b"b1")
    assert first.writes == [b"a1a2"]  # out before the pass ends: the next one's turn began
    assert second.writes == []
    await asyncio.sleep(0)
    assert second.writes == [b"b1"]
    assert first.writes == [b"a1a2"]


async def test_close_writes_what_is_kept_first_and_a_closing_socket_gets_nothing() -> None:
    loop = asyncio.get_running_loop()
    socket = RecordingTransport()
    writes = CoalescedWrites(socket, loop)
    writes.write(b"last frame")
    writes.close()
    assert socket.writes == [b"last frame"]
    assert socket.closing
    gone = RecordingTransport()
    lost = CoalescedWrites(gone, loop)
    lost.write(b"never sent")
    gone.closing = True  # the peer went away during the pass
    await asyncio.sleep(0)
    assert gone.writes == []


def test_a_tuned_process_freezes_what_it_built_and_collects_rarely() -> None:
    script = (
        "import gc\n"
        "import service.app\n"  # what cook serve has built when it calls tune()
        "from service import collector\n"
        "before = gc.get_threshold()\n"
        "collector.tune()\n"
        "print(before, gc.get_threshold(), gc.get_freeze_count() > 50_000)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split(") ")
    assert out[0] == "(2000, 10, 10"  # CPython's default, so the test sees a change
    assert out[1] + ")" == "(2000, 10, 1000)"
    assert out[2].strip() == "True"
