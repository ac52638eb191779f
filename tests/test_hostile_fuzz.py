"""Properties: hostile HTTP requests, tokens and WebSocket messages never get a 500 or an
``INTERNAL``, always get the documented error shape, and a refused one writes nothing.

HTTP: bodies of every JSON type, deep nesting, wrong content types, invalid UTF-8 and escaped
surrogates, huge strings, NaN and Infinity, and operations whose variables have the wrong types.
Tokens: validly signed, with every registered claim given every wrong JSON type. WebSocket
(graphql-transport-ws, through Starlette's TestClient with the app's lifespan): sequences of
malformed messages, hostile ``connection_init`` payloads and malformed ``subscribe`` payloads;
the socket either answers in the protocol, with typed errors, or closes with a 44xx code.
Each property runs ``5 * COOK_FUZZ_EXAMPLES`` examples (default 6, or 60 with ``COOK_SOAK=1``):
the default keeps the suite fast.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import MongoClient
from starlette.websockets import WebSocketDisconnect

from service.app import create_app
from service.boundary import MAX_BODY_BYTES
from service.settings import Settings
from tests.api import OWNER, Api, collection_input
from tests.conftest import MakeApi
from tests.hostile import (
    COLLECTIONS,
    CREATE,
    CREATE_SPELL,
    TYPED,
    documented_errors,
    dumps,
    hostile_token,
    raw_post,
    snapshot,
)

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; httpx (which the suite has) still works.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

SOAK = os.environ.get("COOK_SOAK") == "1"
EXAMPLES = int(os.environ.get("COOK_FUZZ_EXAMPLES", "60" if SOAK else "6"))
FUZZ = settings(
    max_examples=EXAMPLES * 5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REGISTERED_CLAIMS = ("exp", "iat", "nbf", "sub", "iss", "aud", "jti")
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
STRINGS = st.one_of(
    st.text(max_size=20),
    st.text(SURROGATES, min_size=1, max_size=3),
    st.sampled_from(["", "x" * 1001, "[[Animal]]", "\x00", "\u202e", "ck_" + "0" * 32]),
)
NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, STRINGS)
ANY_JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(STRINGS, inner, max_size=4),
    max_leaves=12,
)
QUERIES = st.sampled_from(
    [
        "{ viewer { id } }",
        CREATE,
        CREATE_SPELL,
        "query($id: ID!) { collection(id: $id) { id template } }",
        "mutation($id: ID!, $f: JSON!) { importTraitTree(id: $id, file: $f) { id } }",
        "query { ...Nope }",
        "{ __schema { types { name } } }",
        "subscription { cookProgress(cookId: 1) { seq } }",
        "{",
        "",
    ]
)


def nested(levels: int, opener: str) -> str:
    closer = {"[": "]", '{"a":': "}"}[opener]
    return opener * levels + "1" + closer * levels


def replaced(valid: Any, path: list[int], new: Any) -> Any:
    """``valid`` with the part at (indexes into its nested keys) ``path`` replaced by ``new``."""
    if not path or not isinstance(valid, dict | list) or not valid:
        return new
    keys = list(valid) if isinstance(valid, dict) else list(range(len(valid)))
    key = keys[path[0] % len(keys)]
    copy = dict(valid) if isinstance(valid, dict) else list(valid)
    copy[key] = replaced(valid[key], path[1:], new)  # type: ignore[index]
    return copy


WRONG_VARIABLES = st.builds(
    lambda query, path, new: (query, {"i": replaced({"i": valid_input(query)}["i"], path, new)}),
    st.sampled_from([CREATE, CREATE_SPELL]),
    st.lists(st.integers(0, 20), max_size=5),
    ANY_JSON,
)


def valid_input(query: str) -> Any:
    if query == CREATE:
        return collection_input()
    return {"name": "s", "steps": [{"toolId": "prompt", "params": {"prompt": "x"}}]}


def operation_body(query: str, variables: Any) -> bytes:
    return dumps({"query": query, "variables": variables}).encode()


BODIES = st.one_of(
    st.binary(max_size=64),
    ANY_JSON.map(lambda v: dumps(v).encode()),
    st.builds(operation_body, QUERIES, ANY_JSON),
    WRONG_VARIABLES.map(lambda qv: operation_body(*qv)),
    st.builds(
        lambda levels, opener: (
            f'{{"query": "{{ viewer {{ id }} }}", "variables": {{"x": {nested(levels, opener)}}}}}'
        ).encode(),
        st.integers(17, 3000),
        st.sampled_from(["[", '{"a":']),
    ),
    st.builds(
        lambda body, at, junk: body[:at] + junk + body[at:],
        st.builds(operation_body, QUERIES, ANY_JSON),
        st.integers(0, 40),
        st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\\ud800"]),
    ),
    st.just(operation_body("{ viewer { id } }", {"x": "a" * MAX_BODY_BYTES})),
    st.just(operation_body(CREATE, {"i": collection_input(name="a" * 2**20)})),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/graphql",
        "multipart/form-data; boundary=x",
        "",
        "application/json, text/html",
    ]
)
WRONG_TYPED = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@pytest.fixture
async def fuzz_api(make_api: MakeApi) -> Api:
    return await make_api(scheduler=False)


@FUZZ
@given(body=BODIES, content_type=CONTENT_TYPES, signed_in=st.booleans())
async def test_hostile_http_requests_get_the_documented_shape_and_write_nothing(
    fuzz_api: Api, body: bytes, content_type: str, signed_in: bool
) -> None:
    api = fuzz_api
    before = await snapshot(api)
    token = api.token(OWNER) if signed_in else None
    response = await raw_post(api, body, token=token, content_type=content_type)
    assert response.status_code in {200, 400, 405, 411, 413, 415}, response.text
    errors = documented_errors(response)
    if errors or response.status_code != 200:
        assert await snapshot(api) == before, (body[:300], errors)


@FUZZ
@given(claim=st.sampled_from(REGISTERED_CLAIMS), value=WRONG_TYPED, mutate=st.booleans())
async def test_tokens_with_every_registered_claim_of_a_wrong_type_are_unauthenticated(
    fuzz_api: Api, claim: str, value: Any, mutate: bool
) -> None:
    api = fuzz_api
    s = api.settings
    token = hostile_token(api.keys, s.jwt_issuer, s.jwt_audience, claim, value)
    query = CREATE if mutate else "{ viewer { id } }"
    before = await snapshot(api)
    response = await raw_post(api, operation_body(query, {"i": collection_input()}), token=token)
    errors = documented_errors(response)
    if not right_type(claim, value):
        assert {e["extensions"]["code"] for e in errors} == {"UNAUTHENTICATED"}, errors
    if errors:
        assert await snapshot(api) == before


def right_type(claim: str, value: Any) -> bool:
    """Whether ``value`` has the claim's JSON type (RFC 7519 4.1); it may still be refused."""
    if claim in {"exp", "iat", "nbf"}:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if claim == "aud":
        return isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
    return isinstance(value, str)


# --- WebSocket ---------------------------------------------------------------------------------

PROTOCOL = "graphql-transport-ws"
CLOSE_CODES = {1000, 4400, 4401, 4403, 4406, 4409, 4429}


@pytest.fixture
def ws_client(settings: Settings) -> Iterator[tuple[TestClient, Settings]]:
    app = create_app(settings.model_copy(update={"scheduler": False}))
    with TestClient(app) as client:
        yield client, settings


def sync_snapshot(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    with MongoClient(settings.mongodb_uri) as client:
        db = client[settings.db_name]
        return {name: list(db[name].find({}).sort("_id")) for name in COLLECTIONS}


def init(payload: Any) -> str:
    return dumps({"type": "connection_init", "payload": payload})


def subscribe(ident: Any, payload: Any) -> str:
    return dumps({"id": ident, "type": "subscribe", "payload": payload})


WS_OPERATIONS = st.one_of(
    st.builds(lambda q, v: {"query": q, "variables": v}, QUERIES, ANY_JSON),
    WRONG_VARIABLES.map(lambda qv: {"query": qv[0], "variables": qv[1]}),
    ANY_JSON,
)
MESSAGES = st.one_of(
    st.text(max_size=40),
    ANY_JSON.map(dumps),
    st.integers(17, 3000).map(lambda n: nested(n, "[")),
    st.builds(subscribe, st.one_of(st.text(max_size=5), ANY_JSON), WS_OPERATIONS),
    st.sampled_from(['{"type": "ping"}', '{"type": "pong"}', '{"type": "complete", "id": 1}']),
)
INIT_PAYLOADS = st.one_of(
    st.just({}),
    st.just("@valid"),
    ANY_JSON,
    st.builds(lambda v: {"authorization": v}, ANY_JSON),
    st.builds(lambda c, v: ("@claim", c, v), st.sampled_from(REGISTERED_CLAIMS), WRONG_TYPED),
)


def resolve_init(payload: Any, settings: Settings, keys: Any) -> Any:
    if payload == "@valid":
        payload = ("@claim", "sub", OWNER)
    if isinstance(payload, tuple):
        _, claim, value = payload
        token = hostile_token(keys, settings.jwt_issuer, settings.jwt_audience, claim, value)
        return {"authorization": f"Bearer {token}"}
    return payload


def converse(client: TestClient, sent: list[str]) -> int | None:
    """Send the messages, then a ping; read the answers until the pong. The close code if the
    server closed the socket instead."""
    with client.websocket_connect("/graphql", subprotocols=[PROTOCOL]) as ws:
        try:
            for text in sent:
                ws.send_text(text)
            ws.send_text('{"type": "ping"}')  # the connection's last answer, if still open
            while True:
                message = ws.receive_json()
                assert_protocol_answer(message)
                if message["type"] == "pong":
                    return None
        except WebSocketDisconnect as exc:
            code: int = exc.code
            return code


def assert_protocol_answer(message: dict[str, Any]) -> None:
    assert message.get("type") in {"connection_ack", "next", "error", "complete", "pong", "ping"}
    if message["type"] == "error":
        for error in message["payload"]:
            assert error.get("extensions", {}).get("code") in TYPED, message
    if message["type"] == "next":
        for error in message["payload"].get("errors") or []:
            assert error["extensions"]["code"] in TYPED, message


@settings(
    max_examples=EXAMPLES * 5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payload=INIT_PAYLOADS, messages=st.lists(MESSAGES, max_size=3), send_init=st.booleans())
def test_hostile_websocket_messages_get_protocol_answers_or_a_4xxx_close_and_write_nothing(
    ws_client: tuple[TestClient, Settings], payload: Any, messages: list[str], send_init: bool
) -> None:
    from auth.dev_keys import ensure_dev_keys

    client, s = ws_client
    keys = ensure_dev_keys(s.keys_dir)
    before = sync_snapshot(s)
    sent = ([init(resolve_init(payload, s, keys))] if send_init else []) + messages
    closed = converse(client, sent)
    assert closed is None or closed in CLOSE_CODES, (closed, sent)
    after = sync_snapshot(s)
    for name in ("cooks", "pieces", "cook_events", "exports"):
        assert after[name] == before[name], sent


@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", "4102444800"), ("iat", [1]), ("sub", 7), ("aud", {}), ("nbf", None)],
)
def test_a_wrong_typed_claim_in_connection_init_closes_the_socket_with_4403(
    ws_client: tuple[TestClient, Settings], claim: str, value: Any
) -> None:
    from auth.dev_keys import ensure_dev_keys

    client, s = ws_client
    token = hostile_token(ensure_dev_keys(s.keys_dir), s.jwt_issuer, s.jwt_audience, claim, value)
    assert converse(client, [init({"authorization": f"Bearer {token}"})]) == 4403


def test_malformed_websocket_messages_close_the_socket_with_4400(
    ws_client: tuple[TestClient, Settings],
) -> None:
    client, _ = ws_client
    for text in ("[1]", '"connection_init"', nested(5000, "["), '{"type": 5}', "NaN"):
        assert converse(client, [text]) == 4400, text
    ok = init({})
    for text in (
        subscribe(["x"], {"query": "{ viewer { id } }"}),
        subscribe("1", "{ viewer { id } }"),
        subscribe("1", {"query": "{ viewer { id } }", "variables": [1]}),
        subscribe("1", {"query": 5}),
        '{"type": "subscribe", "id": "1", "payload": {"query": "{ viewer { id } }", "x": NaN}}',
    ):
        assert converse(client, [ok, text]) == 4400, text
