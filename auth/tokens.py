"""Bearer-token verification following RFC 8725 (JWT best current practice).

- An allow-list of asymmetric algorithms (settings refuse HS* and ``none`` outright), so an
  HMAC secret can never stand in for the public key.
- ``exp``, ``iat``, ``sub``, ``iss`` and ``aud`` are required; ``nbf`` is honoured; a small
  leeway absorbs clock skew.
- A token's ``kid`` must name a key we hold (the static key's thumbprint, or a JWKS entry).
- ``roles`` is an optional list of strings; ``admin`` grants admin rights.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from jwt import PyJWKClient
from jwt.types import Options

from domain.errors import Unauthenticated
from domain.ids import parse_account_id
from domain.principal import Principal

REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]
MAX_TOKEN_LENGTH = 8192
MAX_ROLES = 32


@dataclass(frozen=True)
class StaticKey:
    """One public key and, if known, its key id (then a token naming another kid is refused)."""

    public_key: Any
    kid: str | None


class TokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str],
        leeway_seconds: int,
        static_key: StaticKey | None = None,
        jwks_url: str | None = None,
    ) -> None:
        if (static_key is None) == (jwks_url is None):
            raise ValueError("configure exactly one of a public key or a JWKS URL")
        self._issuer = issuer
        self._audience = audience
        self._algorithms = list(algorithms)
        self._leeway = leeway_seconds
        self._static = static_key
        self._jwks = PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None

    async def verify(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("the token is too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the token is malformed") from exc
        alg = header.get("alg")
        if alg not in self._algorithms:
            raise Unauthenticated(f"the token's algorithm {alg!r} is not accepted")
        key = await self._key_for(token, header.get("kid"))
        options: Options = {"require": REQUIRED_CLAIMS}
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options=options,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthenticated("the token is not valid yet") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("the token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated("the token is from another issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the token lacks the {exc.claim!r} claim") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the token's signature or claims are invalid") from exc
        return _principal(claims)

    async def _key_for(self, token: str, kid: object) -> Any:
        if self._static is not None:
            if self._static.kid is not None and kid is not None and kid != self._static.kid:
                raise Unauthenticated("the token's key id is unknown")
            return self._static.public_key
        assert self._jwks is not None
        if not isinstance(kid, str):
            raise Unauthenticated("the token has no key id")
        try:
            # PyJWKClient fetches with blocking urllib: keep it off the event loop.
            signing = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientError as exc:
            raise Unauthenticated("the token's key id is unknown") from exc
        return signing.key


async def identify(
    verifier: TokenVerifier, authorization: str | None
) -> tuple[Principal | None, Unauthenticated | None]:
    """The caller named by an ``Authorization: Bearer <token>`` value: a principal, or why
    not (None and None: anonymous). The same for an HTTP header and a WebSocket's
    ``connection_init`` payload."""
    if authorization is None:
        return None, None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None, Unauthenticated("the Authorization header must be 'Bearer <token>'")
    try:
        return await verifier.verify(token.strip()), None
    except Unauthenticated as exc:
        return None, exc


def _principal(claims: dict[str, Any]) -> Principal:
    sub = claims["sub"]
    try:
        subject = parse_account_id(sub if isinstance(sub, str) else "")
    except ValueError as exc:
        raise Unauthenticated("the token's subject is not a valid account id") from exc
    roles = claims.get("roles", [])
    if (
        not isinstance(roles, list)
        or len(roles) > MAX_ROLES
        or not all(isinstance(r, str) for r in roles)
    ):
        raise Unauthenticated("the token's roles claim must be a list of strings")
    return Principal(subject, frozenset(roles), datetime.fromtimestamp(claims["exp"], UTC))
