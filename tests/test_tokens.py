"""RFC 8725's attack list against the HTTP endpoint: each token is refused UNAUTHENTICATED.

The WebSocket variant (the same `ATTACKS` in `connection_init`) belongs with the subscription."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from auth.dev_keys import key_id
from tests.api import OWNER, Api

VIEWER = "query { viewer { id } }"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(api: Api, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": OWNER,
        "iss": api.settings.jwt_issuer,
        "aud": api.settings.jwt_audience,
        "iat": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def signed(api: Api, **overrides: Any) -> str:
    return jwt.encode(
        claims(api, **overrides),
        api.keys.private_pem,
        algorithm="EdDSA",
        headers={"kid": api.keys.kid},
    )


def unsigned(api: Api, alg: str = "none") -> str:
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims(api)).encode())}."


def attacker_key_in_header(api: Api, **header: Any) -> str:
    """Signed by the attacker's key, with a header pointing at that key (embedded ``jwk`` or a
    ``jku`` URL): only the server's own keys may verify (RFC 8725 3.10)."""
    other = Ed25519PrivateKey.generate()
    return jwt.encode(
        claims(api), other, algorithm="EdDSA", headers={"kid": api.keys.kid, **header}
    )


def attacker_jwk(api: Api) -> str:
    other = Ed25519PrivateKey.generate()
    public = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(other.public_key()))
    return jwt.encode(
        claims(api), other, algorithm="EdDSA", headers={"kid": api.keys.kid, "jwk": public}
    )


def tampered_header(api: Api) -> str:
    _, payload, sig = signed(api).split(".")
    header = {"alg": "EdDSA", "typ": "JWT", "kid": api.keys.kid, "roles": ["admin"]}
    return f"{b64(json.dumps(header).encode())}.{payload}.{sig}"


def unknown_critical_header(api: Api) -> str:
    return jwt.encode(
        claims(api),
        api.keys.private_pem,
        algorithm="EdDSA",
        headers={"kid": api.keys.kid, "crit": ["urn:example:must-understand"]},
    )


def hmac_with_public_key(api: Api) -> str:
    """Algorithm confusion: HS256 keyed with the server's public key bytes."""
    header = {"alg": "HS256", "typ": "JWT", "kid": api.keys.kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims(api)).encode())}"
    import hashlib
    import hmac

    sig = hmac.new(api.keys.public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def tampered_payload(api: Api) -> str:
    header, _, sig = signed(api).split(".")
    payload = b64(json.dumps(claims(api, sub="root", roles=["admin"])).encode())
    return f"{header}.{payload}.{sig}"


def tampered_signature(api: Api) -> str:
    token = signed(api)
    last = "A" if token[-1] != "A" else "B"
    return token[:-1] + last


def foreign_key(api: Api) -> str:
    other = Ed25519PrivateKey.generate()
    return jwt.encode(claims(api), other, algorithm="EdDSA", headers={"kid": api.keys.kid})


def unknown_kid(api: Api) -> str:
    other = Ed25519PrivateKey.generate()
    pem = other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return jwt.encode(claims(api), other, algorithm="EdDSA", headers={"kid": key_id(pem)})


def rsa_not_allowed(api: Api) -> str:
    key = generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims(api), key, algorithm="RS256", headers={"kid": api.keys.kid})


ATTACKS: dict[str, Callable[[Api], str]] = {
    "expired": lambda api: signed(api, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
    "not yet valid": lambda api: signed(api, nbf=int(time.time()) + 3600),
    "issued in the future": lambda api: signed(api, iat=int(time.time()) + 3600),
    "another audience": lambda api: signed(api, aud="someone-else"),
    "another issuer": lambda api: signed(api, iss="https://evil.example"),
    "no exp": lambda api: signed(api, exp=None),
    "no iat": lambda api: signed(api, iat=None),
    "no sub": lambda api: signed(api, sub=None),
    "no iss": lambda api: signed(api, iss=None),
    "no aud": lambda api: signed(api, aud=None),
    "invalid subject": lambda api: signed(api, sub="../../etc"),
    "roles not a list": lambda api: signed(api, roles="admin"),
    "alg none": unsigned,
    "alg None": lambda api: unsigned(api, "None"),
    "alg NONE": lambda api: unsigned(api, "NONE"),
    "embedded jwk header with the attacker's key": attacker_jwk,
    "jku header pointing at the attacker's keys": lambda api: attacker_key_in_header(
        api, jku="https://evil.example/jwks.json"
    ),
    "tampered header": tampered_header,
    "unknown critical header": unknown_critical_header,
    "HS256 with the public key as secret": hmac_with_public_key,
    "tampered payload": tampered_payload,
    "tampered signature": tampered_signature,
    "signed by another key": foreign_key,
    "unknown key id": unknown_kid,
    "algorithm not on the allow-list": rsa_not_allowed,
    "garbage": lambda api: "not.a.token",
    "oversized": lambda api: "a" * 10_000,
}


@pytest.mark.parametrize("make", ATTACKS.values(), ids=ATTACKS.keys())
async def test_a_bad_token_is_refused_as_unauthenticated(
    api: Api, make: Callable[[Api], str]
) -> None:
    body = await api.post(VIEWER, token=make(api))
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}


async def test_a_good_token_within_the_leeway_is_accepted(api: Api) -> None:
    now = int(time.time())
    token = signed(api, iat=now - 60, exp=now - 5)  # expired 5 s ago, leeway is 30 s
    body = await api.post(VIEWER, token=token)
    assert body["data"] == {"viewer": {"id": OWNER}}


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer    ", "token"])
async def test_a_malformed_authorization_header_is_unauthenticated(api: Api, header: str) -> None:
    response = await api.client.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": header}
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_settings_refuse_symmetric_and_none_algorithms() -> None:
    from pydantic import ValidationError

    from service.settings import Settings

    for algs in ("HS256", "none", "EdDSA,HS512"):
        with pytest.raises(ValidationError, match="only asymmetric algorithms"):
            Settings(jwt_algorithms=algs)  # type: ignore[arg-type]
