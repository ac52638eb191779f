"""N API processes on one database, as a deployment runs them: one embedded server, every
process pointed at it with MONGODB_URI, one key pair (the public key in a file), and nothing
else shared. A process can be SIGKILLed and started again on a new port."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from auth.dev_keys import DevKeyPair, ensure_dev_keys, mint_token
from service.embedded_db import EmbeddedDatabase
from tests.processes import api_process_handle


@dataclass
class ReplicaSet:
    root: Path
    env: dict[str, str]
    db_uri: str
    keys: DevKeyPair
    stack: ExitStack
    bases: list[str] = field(default_factory=list)
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    starts: dict[int, int] = field(default_factory=dict)

    def token(self, subject: str, ttl: int = 3600) -> str:
        return mint_token(
            self.keys, subject=subject, issuer="cook-dev", audience="cook", ttl_seconds=ttl
        )

    def log(self, i: int) -> Path:
        return self.root / f"api{i}-{self.starts[i]}.log"

    def start(self, i: int, **extra: str) -> str:
        """Start process ``i`` (again, after a kill); returns its base URL once ready."""
        if i == len(self.bases):
            self.bases.append("")
        self.starts[i] = self.starts.get(i, 0) + 1
        base, proc = self.stack.enter_context(
            api_process_handle({**self.env, **extra}, self.root / f"data{i}", self.log(i))
        )
        self.bases[i], self.procs[i] = base, proc
        return base

    def kill(self, i: int) -> None:
        """SIGKILL process ``i``: no shutdown code runs."""
        self.procs[i].kill()
        self.procs[i].wait()


@contextmanager
def replica_set(root: Path, count: int, env: dict[str, str]) -> Iterator[ReplicaSet]:
    keys = ensure_dev_keys(root / "issuer")
    public = root / "issuer" / "public.pem"
    public.write_bytes(keys.public_pem)
    with EmbeddedDatabase(root / "db") as db, ExitStack() as stack:
        full = {"MONGODB_URI": db.uri, "COOK_JWT_PUBLIC_KEY_FILE": str(public), **env}
        replicas = ReplicaSet(root, full, db.uri, keys, stack)
        for i in range(count):
            replicas.start(i)
        yield replicas
