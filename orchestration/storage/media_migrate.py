"""Copying every stored file from one media store to another (``cook media migrate``).

Everything the source holds is copied: pieces' and cast steps' images, provider outputs,
layer assets and export archives alike (a store holds files by content, not by kind). Each
file is streamed from the source into an upload on the target, hashed on the way; the upload
is finished only when the bytes hash to the file's name (a corrupt source file is reported,
never copied), and the copy is then read back from the target and hashed again.

Resumable and idempotent because both stores are content-addressed: a file the target
already holds is verified (read back and hashed) and skipped, so a run killed at any point
is finished by running it again, and a finished run repeated copies nothing. A run killed
mid-file leaves only an unfinished upload on the target (a temporary file, or chunks with no
file document), which no reader sees and the target's collector removes after its grace
period. The source is left as it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestration.storage.media import MediaStore

SNIFF = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
)


def sniff(head: bytes) -> str:
    """The content type a file's first bytes show (the stores keep none the other needs)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    for magic, kind in SNIFF:
        if head.startswith(magic):
            return kind
    return "application/octet-stream"


@dataclass
class Migration:
    copied: int = 0
    present: int = 0  # already in the target, verified
    bytes_copied: int = 0
    failed: list[str] = field(default_factory=list)  # "<digest>: why"

    @property
    def ok(self) -> bool:
        return not self.failed


async def hash_of(store: MediaStore, sha256: str) -> str:
    digest = hashlib.sha256()
    async for chunk in store.stream(sha256):
        digest.update(chunk)
    return digest.hexdigest()


async def copy_one(source: MediaStore, target: MediaStore, sha256: str) -> int:
    """Copy one file; returns its size. Raises ``ValueError`` when the source's bytes do not
    hash to their name or the copy does not read back whole (nothing is named then)."""
    digest = hashlib.sha256()
    size = 0
    chunks = aiter(source.stream(sha256))
    head = await anext(chunks, b"")
    upload = await target.upload(sniff(head))
    try:
        chunk = head
        while chunk:
            digest.update(chunk)
            size += len(chunk)
            await upload.write(chunk)
            chunk = await anext(chunks, b"")
        if digest.hexdigest() != sha256:
            raise ValueError("the source's bytes do not hash to their name")
        ref = await upload.finish()
    except BaseException:
        await upload.abort()
        raise
    if ref.sha256 != sha256 or await hash_of(target, sha256) != sha256:
        raise ValueError("the copy does not read back whole")
    return size


async def migrate(
    source: MediaStore,
    target: MediaStore,
    report: Callable[[str], None] = print,
) -> Migration:
    """Copy every file ``source`` holds that ``target`` does not (verifying those it does)."""
    done = Migration()
    async for sha256 in source.digests():
        if await target.size(sha256) is not None:
            if await hash_of(target, sha256) == sha256:
                done.present += 1
                continue
            done.failed.append(f"{sha256}: the target's copy is corrupt (remove it and rerun)")
            report(f"corrupt in the target: {sha256}")
            continue
        try:
            size = await copy_one(source, target, sha256)
        except (ValueError, FileNotFoundError) as exc:
            done.failed.append(f"{sha256}: {exc}")
            report(f"failed: {sha256}: {exc}")
            continue
        done.copied += 1
        done.bytes_copied += size
        report(f"copied {sha256} ({size} bytes)")
    return done
