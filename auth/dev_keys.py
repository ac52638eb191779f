"""Development identity: an Ed25519 key pair under the data directory, and token minting."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth.tokens import StaticKey

PRIVATE_FILE = "dev-signing-key.pem"


@dataclass(frozen=True)
class DevKeyPair:
    private_pem: bytes
    public_pem: bytes

    @property
    def kid(self) -> str:
        return key_id(self.public_pem)

    def static_key(self) -> StaticKey:
        return StaticKey(serialization.load_pem_public_key(self.public_pem), self.kid)


def key_id(public_pem: bytes) -> str:
    """A stable key id: the first 16 bytes of the public key's SHA-256, base64url."""
    digest = hashlib.sha256(public_pem).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def ensure_dev_keys(keys_dir: Path) -> DevKeyPair:
    """Load the development key pair, creating it (mode 0600) on first use."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    path = keys_dir / PRIVATE_FILE
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        try:
            os.link(tmp, path)  # atomic, and never overwrites a key another process just made
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    private_pem = path.read_bytes()
    private = serialization.load_pem_private_key(private_pem, password=None)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DevKeyPair(private_pem, public_pem)


def mint_token(
    keys: DevKeyPair,
    *,
    subject: str,
    issuer: str,
    audience: str,
    roles: Iterable[str] = (),
    ttl_seconds: int = 3600,
    now: int | None = None,
) -> str:
    issued = int(time.time()) if now is None else now
    claims = {
        "sub": subject,
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "roles": sorted(set(roles)),
    }
    return jwt.encode(claims, keys.private_pem, algorithm="EdDSA", headers={"kid": keys.kid})
