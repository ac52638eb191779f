"""Standard Webhooks signing (https://www.standardwebhooks.com), with the ``standardwebhooks``
package: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256
of "id.timestamp.body">``, keyed by a ``whsec_`` secret.

While a rotated-out secret is still in its overlap, the header carries one signature per
secret, space-separated, newest first: a receiver verifying with either secret accepts the
message (the library tries every signature in the header).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
SECRET_BYTES = 32
USER_AGENT = "Cook-Webhooks/1"


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secrets_: Sequence[str], message_id: str, at: datetime, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<sig>`` per secret, space-separated."""
    return " ".join(Webhook(s).sign(message_id, at, body) for s in secrets_)


def signed_headers(
    secrets_: Sequence[str], message_id: str, at: datetime, body: bytes
) -> dict[str, str]:
    """Every header of a delivery's request."""
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature(secrets_, message_id, at, body),
    }
