"""Issue 14's cases, one regression test each: however malformed, a request gets the documented
error shape (a typed ``extensions.code``, the ``X-Request-ID`` header, ``requestId`` on a
refusal outside GraphQL), never a 500 or ``INTERNAL``, and writes nothing."""

from __future__ import annotations

import json
import logging

import pytest

from tests.api import ADMIN, OWNER, Api, collection_input
from tests.conftest import MakeApi
from tests.hostile import (
    CREATE,
    CREATE_SPELL,
    body_of,
    documented_errors,
    hostile_token,
    raw_post,
    snapshot,
)
from tests.test_tokens import signed

VIEWER = "query { viewer { id } }"


def spell_literal(params: str) -> str:
    """createSpell with one step whose params are the GraphQL literal ``params``."""
    step = f'{{toolId: "prompt", params: {params}}}'
    return f'mutation {{ createSpell(input: {{name: "s", steps: [{step}]}}) {{ id }} }}'


def spell(params: object) -> dict[str, object]:
    return {"name": "s", "steps": [{"toolId": "prompt", "params": params}]}


def nested(levels: int) -> object:
    value: object = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize("body", [b"null", b'"a string"', b"42", b'["a", "b"]', b"true"])
async def test_a_json_body_that_is_not_an_object_is_refused_400_in_the_documented_shape(
    api: Api, body: bytes
) -> None:
    response = await raw_post(api, body, token=api.token(OWNER))
    assert response.status_code == 400
    [error] = documented_errors(response)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_json_nested_100000_levels_in_variables_is_refused_400_before_decoding(
    api: Api,
) -> None:
    for levels, why in ((100_000, "more than 100000 arrays"), (50_000, "nests deeper than 64")):
        deep = "[" * levels + "]" * levels
        body = f'{{"query": "{{ viewer {{ id }} }}", "variables": {{"x": {deep}}}}}'.encode()
        response = await raw_post(api, body, token=api.token(OWNER))
        assert response.status_code == 400
        [error] = documented_errors(response)
        assert why in error["message"]


async def test_a_template_nested_deeper_than_the_json_rule_is_bad_user_input_and_not_written(
    api: Api,
) -> None:
    # Within the body's limit: refused by the template's own rule (with its path), or deeper
    # by the rule of every JSON field.
    for levels, why in ((17, "nests deeper than 16 levels"), (60, "nests deeper than 32 levels")):
        variables = {"i": collection_input(template=nested(levels))}
        response = await raw_post(api, body_of(CREATE, variables), token=api.token(OWNER))
        [error] = documented_errors(response)
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert why in error["message"]
    assert await api.count_collections() == 0


@pytest.mark.parametrize(
    ("claim", "value", "reason"),
    [
        ("exp", "4102444800", "'exp' claim must be a number"),
        ("iat", "1700000000", "'iat' claim must be a number"),
        ("nbf", [1], "'nbf' claim must be a number"),
        ("exp", 1e300, "'exp' claim must be a number"),
        ("sub", 7, "'sub' claim must be a string"),
        ("iss", ["cook-dev"], "another issuer"),
        ("aud", {"cook": True}, "audience"),
        ("jti", 5, "'jti' claim must be a string"),
    ],
)
async def test_a_validly_signed_token_whose_claims_have_wrong_types_is_unauthenticated_with_why(
    api: Api, claim: str, value: object, reason: str
) -> None:
    s = api.settings
    token = hostile_token(api.keys, s.jwt_issuer, s.jwt_audience, claim, value)
    for _ in range(2):  # the same kept-alive client keeps working after the refusal
        response = await raw_post(api, body_of(VIEWER), token=token)
        assert response.status_code == 200
        [error] = documented_errors(response)
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        assert reason in error["message"], error
    assert (await api.data(VIEWER))["viewer"]["id"] == OWNER


async def test_a_lone_surrogate_in_a_string_input_is_refused_and_writes_nothing(api: Api) -> None:
    as_variable = body_of(CREATE, {"i": collection_input(name="\ud800")})
    response = await raw_post(api, as_variable, token=api.token(OWNER))
    assert response.status_code == 400
    [error] = documented_errors(response)
    assert "surrogate" in error["message"]
    as_literal = 'mutation { createCollection(input: {name: "\\ud800"}) { id } }'
    response = await raw_post(api, body_of(as_literal), token=api.token(OWNER))
    [error] = documented_errors(response)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert await api.count_collections() == 0


async def test_spell_params_nested_1000_levels_are_bad_user_input_as_literal_or_variable(
    api: Api,
) -> None:
    literal = "{a: " * 1000 + "1" + "}" * 1000
    query = spell_literal(literal)
    response = await raw_post(api, body_of(query), token=api.token(OWNER))
    [error] = documented_errors(response)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    response = await raw_post(
        api, body_of(CREATE_SPELL, {"i": spell(nested(1000))}), token=api.token(OWNER)
    )
    assert response.status_code == 400
    documented_errors(response)
    response = await raw_post(
        api, body_of(CREATE_SPELL, {"i": spell(nested(20))}), token=api.token(OWNER)
    )
    [error] = documented_errors(response)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "nests deeper than 16 levels" in error["message"]
    assert (await snapshot(api))["spells"] == []


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
async def test_nan_and_infinity_are_refused_in_json_fields_as_literals(
    api: Api, literal: str
) -> None:
    query = spell_literal(f'{{prompt: "x", n: {literal}}}')
    response = await raw_post(api, body_of(query), token=api.token(OWNER))
    [error] = documented_errors(response)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert (await snapshot(api))["spells"] == []


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_nan_and_infinity_are_refused_in_variables_with_400(api: Api, constant: str) -> None:
    text = body_of(CREATE_SPELL, {"i": spell({"prompt": "x", "n": 0})}).decode()
    response = await raw_post(
        api, text.replace('"n": 0', f'"n": {constant}').encode(), token=api.token(OWNER)
    )
    assert response.status_code == 400
    documented_errors(response)
    assert (await snapshot(api))["spells"] == []


async def test_an_unknown_fragment_is_bad_user_input_without_internal_text_or_a_traceback(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for query in ("query { ...Nope }", "query { viewer { ...Nope } }", "{ ... on Query { ...N } }"):
        response = await raw_post(api, body_of(query), token=api.token(OWNER))
        [error] = documented_errors(response)
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "Unknown fragment" in error["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_the_depth_limit_counts_introspection_fields(api: Api) -> None:
    chain = "{ ofType " * 15 + "{ name }" + " }" * 15
    query = f'{{ __type(name: "Cook") {{ fields {{ type {chain} }} }} }}'
    response = await raw_post(api, body_of(query), token=api.token(ADMIN, admin=True))
    [error] = documented_errors(response)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "exceeds maximum operation depth" in error["message"]
    assert response.json()["data"] is None


async def test_aliases_of_introspection_fields_count_toward_the_alias_limit(
    make_api: MakeApi,
) -> None:
    api = await make_api(max_query_aliases=2)
    query = "{ " + " ".join(f"a{i}: __schema {{ queryType {{ name }} }}" for i in range(3)) + " }"
    response = await raw_post(api, body_of(query), token=api.token(ADMIN, admin=True))
    [error] = documented_errors(response)
    assert "3 aliases found. Allowed: 2" in error["message"]


async def test_an_invalid_token_is_unauthenticated_even_after_the_anonymous_budget_is_spent(
    make_api: MakeApi,
) -> None:
    api = await make_api(operation_rate_limits={"createCollection": "1/minute"})
    variables = {"i": collection_input()}
    for token in (None, None, None, "not-a-token", signed(api, iss="someone-else")):
        response = await raw_post(api, body_of(CREATE, variables), token=token)
        [error] = documented_errors(response)
        assert error["extensions"]["code"] == "UNAUTHENTICATED", error
    await api.data(CREATE, variables)  # nobody spent alice's budget
    assert await api.count_collections() == 1


async def test_field_suggestions_are_shown_to_admins_in_development_only(
    make_api: MakeApi,
) -> None:
    query = "{ adminCookz { edges { cursor } } }"
    dev = await make_api()
    for who, shown in ((OWNER, False), (None, False), (ADMIN, True)):
        token = dev.token(who, admin=who == ADMIN) if who else None
        [error] = documented_errors(await raw_post(dev, body_of(query), token=token))
        assert ("Did you mean 'adminCooks'" in error["message"]) is shown, (who, error)
    prod = await make_api(env="production", jwt_public_key=dev.keys.public_pem.decode())
    token = dev.token(ADMIN, admin=True)
    [error] = documented_errors(await raw_post(prod, body_of(query), token=token))
    assert "Did you mean" not in error["message"]


async def test_a_one_megabyte_authorization_header_is_unauthenticated_in_the_documented_shape(
    api: Api,
) -> None:
    response = await raw_post(
        api, body_of(VIEWER), headers={"Authorization": "Bearer " + "a" * 2**20}
    )
    [error] = documented_errors(response)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "too long" in error["message"]


@pytest.mark.parametrize(
    ("content_type", "status"),
    [("text/plain", 415), ("application/x-www-form-urlencoded", 415), ("", 415)],
)
async def test_another_content_type_is_refused_in_the_documented_shape(
    api: Api, content_type: str, status: int
) -> None:
    response = await raw_post(
        api, body_of(VIEWER), token=api.token(OWNER), content_type=content_type
    )
    assert response.status_code == status
    documented_errors(response)


async def test_an_oversized_body_is_413_and_one_without_a_length_is_411(api: Api) -> None:
    huge = body_of(VIEWER, {"x": "a" * (4 * 2**20)})
    response = await raw_post(api, huge, token=api.token(OWNER))
    assert response.status_code == 413
    documented_errors(response)

    async def chunks():  # type: ignore[no-untyped-def]
        yield body_of(VIEWER)

    response = await api.client.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 411
    documented_errors(response)


async def test_invalid_utf8_and_non_json_bodies_are_400(api: Api) -> None:
    for body in (
        b"\xff\xfe{}",
        b'{"query": "\xc3"}',
        b"{",
        b"",
        b'{"query": 1}',
        json.dumps({"query": "{ viewer { id } }", "variables": [1]}).encode(),
    ):
        response = await raw_post(api, body, token=api.token(OWNER))
        assert response.status_code == 400, body
        documented_errors(response)


async def test_a_failure_of_the_service_itself_is_a_500_in_the_documented_shape(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(raw: bytes, *_: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("service.boundary.request_data", explode)
    response = await raw_post(api, body_of(VIEWER), token=api.token(OWNER))
    assert response.status_code == 500
    [error] = response.json()["errors"]
    assert error["extensions"] == {
        "code": "INTERNAL",
        "requestId": response.headers["X-Request-ID"],
    }
    assert "secret" not in response.text
    assert any("secret internals" in (r.exc_text or "") for r in caplog.records)


async def test_the_cost_limit_counts_introspection_fields(make_api: MakeApi) -> None:
    from graphql import get_introspection_query

    full = body_of(get_introspection_query())
    api = await make_api()
    answered = await raw_post(api, full, token=api.token(ADMIN, admin=True))
    assert not documented_errors(answered)
    cost = answered.json()["extensions"]["cost"]["requestedQueryCost"]
    assert 10_000 < cost <= api.settings.max_query_cost  # the real sizes, within the default
    tight = await make_api(max_query_cost=cost - 1)
    refused = await raw_post(tight, full, token=tight.token(ADMIN, admin=True))
    [error] = documented_errors(refused)
    assert error["extensions"]["cost"] == cost
    assert refused.json()["data"] is None


async def test_refusals_outside_graphql_routes_have_the_documented_shape(api: Api) -> None:
    for method, path, status in (
        ("PUT", "/graphql", 405),
        ("GET", "/no/such/route", 404),
        ("GET", "/media/pc_x/not-a-number", 400),
    ):
        response = await api.client.request(method, path)
        assert response.status_code == status, (method, path, response.text)
        documented_errors(response)


@pytest.mark.parametrize(
    "operations", ['{"query": "{ viewer { id } }", "variables": {"x": NaN}}', '["not", "one"]']
)
async def test_a_multipart_request_whose_operations_break_the_json_rule_is_refused_400(
    api: Api, operations: str
) -> None:
    """Uploads pass the same boundary: their ``operations`` field keeps to the one JSON rule."""
    response = await api.client.post(
        "/graphql",
        data={"operations": operations, "map": "{}"},
        files={"0": ("layer.png", b"\x89PNG", "image/png")},
        headers={"Authorization": f"Bearer {api.token(OWNER)}"},
    )
    assert response.status_code == 400, response.text
    [error] = documented_errors(response)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
