"""Bearer-token verification following RFC 8725 (JWT best current practice).

- An allow-list of asymmetric algorithms (settings refuse HS* and ``none`` outright), so an
  HMAC secret can never stand in for the public key.
- ``exp``, ``iat``, ``sub``, ``iss`` and ``aud`` are required; ``nbf`` is honoured; a small
  leeway absorbs clock skew.
- A token's ``kid`` must name a key we hold (the static key's thumbprint, or a JWKS entry).
- ``roles`` is an optional list of strings; ``admin`` grants admin rights.
- Every registered claim must have its JSON type (RFC 7519 4.1): ``exp``, ``iat`` and ``nbf``
  numbers, ``sub``, ``iss`` and ``jti`` strings, ``aud`` a string or a list of strings.
  Anything else, however malformed, is ``Unauthenticated`` with the reason, never an error of
  the service.
"""

from __future__ import annotations

import asyncio
import math
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
NUMERIC_DATES = ("exp", "iat", "nbf")
STRING_CLAIMS = ("sub", "iss", "jti")
LATEST = datetime.max.replace(tzinfo=UTC).timestamp()
# What PyJWT may raise on a token it cannot read, besides its own errors: a claim of another
# type (``int([1])``, ``int(inf)``), or a header nested deeper than its JSON decoder recurses.
MALFORMED = (TypeError, ValueError, OverflowError, RecursionError, KeyError)


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
        except (jwt.PyJWTError, *MALFORMED) as exc:
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
        except jwt.InvalidSignatureError as exc:
            raise Unauthenticated("the token's signature or claims are invalid") from exc
        except jwt.PyJWTError as exc:  # unreadable, or a claim PyJWT checks (after the signature)
            otherwise = "the token's signature or claims are invalid"
            raise Unauthenticated(_unverified_claim_problem(token, otherwise)) from exc
        except MALFORMED as exc:
            # The signature held (PyJWT checks claims after it): say which claim is wrong.
            raise Unauthenticated(_unverified_claim_problem(token)) from exc
        problem = claim_problem(claims)
        if problem is not None:
            raise Unauthenticated(problem)
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


def claim_problem(claims: dict[str, Any]) -> str | None:
    """Why a registered claim has the wrong JSON type, or None."""
    for name in NUMERIC_DATES:
        if name in claims and not _numeric_date(claims[name]):
            return f"the token's {name!r} claim must be a number of seconds (a NumericDate)"
    for name in STRING_CLAIMS:
        if name in claims and not isinstance(claims[name], str):
            return f"the token's {name!r} claim must be a string"
    aud = claims.get("aud")
    if aud is not None and not (
        isinstance(aud, str) or (isinstance(aud, list) and all(isinstance(a, str) for a in aud))
    ):
        return "the token's 'aud' claim must be a string or a list of strings"
    return None


def _numeric_date(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and 0 <= value < LATEST


def _unverified_claim_problem(
    token: str, otherwise: str = "the token's claims are malformed"
) -> str:
    """Which claim is of the wrong type, read again without the checks that refused it (the
    signature was verified before any claim is checked)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, *MALFORMED):
        return otherwise
    return claim_problem(claims) or otherwise


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
