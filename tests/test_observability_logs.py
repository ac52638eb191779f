"""JSON logs (COOK_LOG_FORMAT=json): a full journey (sign in, cook, review, export, webhooks)
logs one parseable JSON object a line, with the ids in scope, and never a secret it used."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from service.observability import CookJsonFormatter, json_log_handler
from tests.api import pieces_of, start_cook, start_export, wait_for_cook, wait_for_export
from tests.conftest import MakeApi
from tests.fake_providers import SECRET, FakeProvider, providers_json, send_webhook

API_KEY = "sk-obs-0123456789abcdefSECRET"
DEPLOY_KEY = "cd-obs-0123456789abcdefSECRET"
WEBHOOK_SECRET = "whsec-obs-0123456789abcdefSECRET"
REVIEW = "mutation($d: [ReviewDecisionInput!]!) { reviewPieces(decisions: $d) { id } }"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger writing JSON into a buffer (as ``configure_logging`` sets it up)."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(CookJsonFormatter([API_KEY, DEPLOY_KEY, WEBHOOK_SECRET]))
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def secret_providers(fake: FakeProvider) -> str:
    raw = providers_json(fake).replace('"sk-test"', json.dumps(API_KEY))
    return raw.replace('"cd-test"', json.dumps(DEPLOY_KEY)).replace(SECRET, WEBHOOK_SECRET)


async def test_a_json_logged_journey_is_all_parseable_and_shows_no_secret(
    make_api: MakeApi, fake: FakeProvider, captured: io.StringIO
) -> None:
    api = await make_api(providers=secret_providers(fake), log_format="json")
    token = api.token("alice")  # signing in: a verified JWT
    fake.chat_failures = [503]  # one provider call fails (logged in the piece's scope)
    collection = await api.create_collection(
        generator={"toolId": "gpt"}, template={"prompt": "[[Animal]] #[[miladyid]]"}
    )
    cook = await start_cook(api, collection["id"], count=3, maxConcurrent=3)
    done = await wait_for_cook(api, cook["id"])
    assert done["status"] == "COMPLETED"
    pieces = await pieces_of(api, cook["id"])
    decisions = [{"pieceId": p["id"], "outcome": "ACCEPTED"} for p in pieces]
    await api.data(REVIEW, {"d": decisions})
    export = await wait_for_export(api, (await start_export(api, collection["id"]))["id"])
    assert export["status"] == "COMPLETED"
    body: dict[str, Any] = {"run_id": "run-nobody-knows", "status": "success"}
    signed = await send_webhook(api.client, "/webhooks/deploy", WEBHOOK_SECRET, body)
    forged = await send_webhook(api.client, "/webhooks/deploy", WEBHOOK_SECRET, body, tamper=True)
    assert forged.status_code != signed.status_code or forged.status_code >= 400
    bad = await api.client.post(
        "/graphql", json={"query": "{ viewer { id } }"}, headers={"Authorization": "Bearer x.y.z"}
    )
    assert bad.status_code in (200, 401)
    logging.getLogger("cook.test").info("a token in a message %s", f"Bearer {token}")

    lines = captured.getvalue().splitlines()
    assert len(lines) >= 3
    records = [json.loads(line) for line in lines]  # every line one JSON object
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    scoped = [r for r in records if r.get("piece_id") in {p["id"] for p in pieces}]
    assert scoped, "a provider failure is logged with its piece in scope"
    assert all(r["cook_id"] == cook["id"] for r in scoped)
    assert all(r["collection_id"] == collection["id"] for r in scoped)
    text = captured.getvalue()
    signatures = [
        signed.request.headers["X-Cook-Signature"],
        forged.request.headers["X-Cook-Signature"],
    ]
    for secret in [token, API_KEY, DEPLOY_KEY, WEBHOOK_SECRET, *signatures]:
        assert secret not in text, secret
    assert token.split(".")[2] not in text  # not even the token's signature


def test_the_process_handler_writes_json_lines(settings: Any) -> None:
    stream = io.StringIO()
    handler = json_log_handler(settings, stream)
    handler.handle(logging.makeLogRecord({"msg": "hello %s", "args": ("you",), "name": "cook.x"}))
    record = json.loads(stream.getvalue())
    assert record["message"] == "hello you"
    assert record["logger"] == "cook.x"
