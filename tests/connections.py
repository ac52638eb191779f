"""Who is still connected to a server: the open TCP connections to a loopback port, from the
kernel's tables (``/proc/net/tcp*``), with the processes that hold them.

A test that shares its worker's embedded server must leave no client connected to it when it
ends: a client still open is a loop, thread or process of that test still running against the
server the next test uses (``tests/conftest.py`` checks this after every test).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ESTABLISHED = "01"
TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


@dataclass(frozen=True)
class Connection:
    local_port: int
    inode: int


def clients_of(port: int) -> list[Connection]:
    """The established connections whose remote end is ``port`` (the clients' sockets, not
    the server's accepted ones)."""
    found = []
    remote_port = f":{port:04X} "  # as the remote address ends in a row; most rows lack it
    for table in TABLES:
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            if remote_port not in row:
                continue
            fields = row.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if state == ESTABLISHED and int(remote.rsplit(":", 1)[1], 16) == port:
                found.append(Connection(int(local.rsplit(":", 1)[1], 16), int(inode)))
    return found


def holders(connections: list[Connection]) -> dict[int, str]:
    """Each connection's local port -> the process holding its socket (pid and command line),
    for a failure message."""
    wanted = {f"socket:[{c.inode}]": c.local_port for c in connections}
    named: dict[int, str] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            for fd in fds:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link in wanted:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                    named[wanted[link]] = f"pid {pid}: {cmd.decode(errors='replace')[:160]}"
        except OSError:
            continue
    return named
