"""How the service learns its verification key: a PEM, a JWKS URL, or (development) its own."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from jwt.algorithms import ECAlgorithm

from domain.errors import Unauthenticated
from service.identity import build_verifier
from service.settings import Settings

ISS, AUD = "https://idp.example", "cook-api"


def claims(sub: str = "alice") -> dict[str, object]:
    now = int(time.time())
    return {"sub": sub, "iss": ISS, "aud": AUD, "iat": now, "exp": now + 60}


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, object]]:
    key = generate_private_key(SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "ES256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json", key
    server.shutdown()
    server.server_close()


async def test_tokens_are_verified_against_a_jwks_url(jwks_server: tuple[str, object]) -> None:
    url, key = jwks_server
    settings = Settings(
        env="production", jwt_jwks_url=url, jwt_issuer=ISS, jwt_audience=AUD, jwt_algorithms="ES256"
    )  # type: ignore[arg-type]
    verifier = build_verifier(settings)
    good = jwt.encode(claims(), key, algorithm="ES256", headers={"kid": "k1"})  # type: ignore[arg-type]
    assert (await verifier.verify(good)).subject == "alice"
    unknown = jwt.encode(claims(), key, algorithm="ES256", headers={"kid": "k2"})  # type: ignore[arg-type]
    with pytest.raises(Unauthenticated, match="key id"):
        await verifier.verify(unknown)


async def test_tokens_are_verified_against_a_configured_public_key(tmp_path: Path) -> None:
    key = generate_private_key(SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "pub.pem").write_bytes(pem)
    settings = Settings(
        env="production",
        jwt_public_key_file=tmp_path / "pub.pem",
        jwt_issuer=ISS,
        jwt_audience=AUD,
        jwt_algorithms="ES256",
    )  # type: ignore[arg-type]
    verifier = build_verifier(settings)
    token = jwt.encode({**claims("bob"), "roles": ["admin"]}, key, algorithm="ES256")
    principal = await verifier.verify(token)
    assert principal.subject == "bob"
    assert principal.is_admin


def test_production_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="production needs"):
        build_verifier(Settings(env="production", data_dir=tmp_path))  # type: ignore[arg-type]


def test_the_jwks_url_must_be_https_off_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        Settings(jwt_jwks_url="http://idp.example/jwks")
