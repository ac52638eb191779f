"""Shared by the hostile-input tests: raw requests, the documented error shape, a snapshot of
everything stored."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.api import OWNER, Api
from tests.test_tokens import b64

TYPED = {"UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT", "CONFLICT", "RATE_LIMITED"}
INTERNAL_TEXT = re.compile(r"Traceback|\b(Key|Type|Value|Recursion|Attribute|Unicode\w*)Error\b")
COLLECTIONS = ("collections", "cooks", "pieces", "cook_events", "spells", "exports")
CREATE = "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }"
CREATE_SPELL = "mutation($i: SpellInput!) { createSpell(input: $i) { id } }"


def body_of(query: str, variables: Any = None, **more: Any) -> bytes:
    return json.dumps({"query": query, "variables": variables or {}, **more}).encode()


async def raw_post(
    api: Api,
    body: bytes,
    *,
    token: str | None = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = {"content-type": content_type, **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return await api.client.post("/graphql", content=body, headers=sent)


def documented_errors(response: httpx.Response) -> list[dict[str, Any]]:
    """The response's errors, asserting the documented shape: never a 500 or INTERNAL, a JSON
    body whose every error has a code from the fixed set, and the X-Request-ID header; a
    refusal outside GraphQL (any status but 200) carries the same id as ``requestId``."""
    assert response.status_code != 500, response.text
    request_id = response.headers.get("X-Request-ID")
    assert request_id, response.headers
    body = response.json()
    assert isinstance(body, dict), body
    errors: list[dict[str, Any]] = body.get("errors") or []
    for error in errors:
        assert isinstance(error["message"], str)
        assert error["extensions"]["code"] in TYPED, error
        assert not INTERNAL_TEXT.search(error["message"]), error
    if response.status_code != 200:
        assert errors, body
        assert all(e["extensions"]["requestId"] == request_id for e in errors), body
    return errors


async def snapshot(api: Api) -> dict[str, list[dict[str, Any]]]:
    db = api.app.state.runtime.client[api.settings.db_name]
    return {name: [d async for d in db[name].find({}).sort("_id")] for name in COLLECTIONS}


def dumps(value: Any) -> str:
    """JSON as a hostile client writes it: NaN and Infinity as bare words, surrogates escaped."""
    return json.dumps(value, allow_nan=True, ensure_ascii=True)


def hostile_token(keys: Any, issuer: str, audience: str, claim: str, value: Any) -> str:
    """Validly signed (EdDSA, our key), with ``claim`` set to ``value`` whatever its type
    (PyJWT's encoder would refuse some, so the token is assembled here)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": OWNER, "iss": issuer, "aud": audience, "iat": now}
    claims["exp"] = now + 600
    claims[claim] = value
    header = {"alg": "EdDSA", "typ": "JWT", "kid": keys.kid}
    signing_input = f"{b64(dumps(header).encode())}.{b64(dumps(claims).encode())}"
    private = serialization.load_pem_private_key(keys.private_pem, password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return f"{signing_input}.{b64(private.sign(signing_input.encode()))}"
