"""Which key verifies tokens: a configured public key, a JWKS URL, or (development) our own."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from auth.dev_keys import ensure_dev_keys
from auth.tokens import StaticKey, TokenVerifier
from service.settings import Settings


def build_verifier(settings: Settings) -> TokenVerifier:
    def verifier(static_key: StaticKey | None = None, jwks_url: str | None = None) -> TokenVerifier:
        return TokenVerifier(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            algorithms=settings.jwt_algorithms,
            leeway_seconds=settings.jwt_leeway_seconds,
            static_key=static_key,
            jwks_url=jwks_url,
        )

    if settings.jwt_jwks_url:
        return verifier(jwks_url=settings.jwt_jwks_url)
    pem = _configured_public_key(settings)
    if pem is not None:
        return verifier(StaticKey(serialization.load_pem_public_key(pem), settings.jwt_key_id))
    if not settings.is_development:
        raise RuntimeError(
            "production needs COOK_JWT_PUBLIC_KEY, COOK_JWT_PUBLIC_KEY_FILE or COOK_JWT_JWKS_URL"
        )
    return verifier(ensure_dev_keys(settings.keys_dir).static_key())


def _configured_public_key(settings: Settings) -> bytes | None:
    if settings.jwt_public_key:
        return settings.jwt_public_key.encode()
    if settings.jwt_public_key_file:
        return settings.jwt_public_key_file.read_bytes()
    return None
