"""Spells: owned chains of tool steps; each piece attempt runs them as one cast."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.api import STRANGER, Api, collection_input, pieces_of, start_cook, wait_for_cook
from tests.fake_providers import SECRET, FakeProvider, send_webhook, wait_for_runs

SPELL_FIELDS = "id ownerId name description version steps { toolId params }"
CREATE = f"mutation($i: SpellInput!) {{ createSpell(input: $i) {{ {SPELL_FIELDS} }} }}"


def spell_input(*steps: tuple[str, dict[str, Any]], name: str = "Describe and draw") -> Any:
    return {"name": name, "steps": [{"toolId": t, "params": p} for t, p in steps]}


async def create_spell(api: Api, *steps: tuple[str, dict[str, Any]], as_: str = "alice") -> Any:
    made = await api.data(CREATE, {"i": spell_input(*steps)}, as_=as_)
    return made["createSpell"]


async def test_a_spell_is_created_read_updated_and_listed_by_its_owner_only(api: Api) -> None:
    spell = await create_spell(api, ("prompt", {"text": "[[Animal]]"}))
    assert (spell["version"], spell["steps"][0]["toolId"]) == (1, "prompt")
    changed = await api.data(
        "mutation($id: ID!, $i: SpellInput!, $v: Int) "
        f"{{ updateSpell(id: $id, input: $i, expectedVersion: $v) {{ {SPELL_FIELDS} }} }}",
        {"id": spell["id"], "i": spell_input(("prompt", {"t": "[[Animal]]!"})), "v": 1},
    )
    assert changed["updateSpell"]["version"] == 2
    stale = await api.error(
        "mutation($id: ID!, $i: SpellInput!) "
        "{ updateSpell(id: $id, input: $i, expectedVersion: 1) { id } }",
        {"id": spell["id"], "i": spell_input(("prompt", {"t": "x"}))},
    )
    assert stale["extensions"]["code"] == "CONFLICT"
    listed = await api.data("{ spells { edges { node { id } } } }")
    assert [e["node"]["id"] for e in listed["spells"]["edges"]] == [spell["id"]]
    theirs = await api.data("{ spells { edges { node { id } } } }", as_=STRANGER)
    assert theirs["spells"]["edges"] == []
    hidden = await api.error(
        "query($id: ID!) { spell(id: $id) { id } }", {"id": spell["id"]}, as_=STRANGER
    )
    assert hidden["extensions"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("steps", "path"),
    [
        ([], "input.steps"),
        ([("nope", {})], "input.steps[0].toolId"),
        ([("prompt", {"a": "[[step:1]]"})], "input.steps[0].params"),
        ([("prompt", {"a": "x"}), ("prompt", {"a": "[[step:3]]"})], "input.steps[1].params"),
        ([("test", {"latencyMs": "slow"})], "input.steps[0].params.latencyMs"),
    ],
)
async def test_an_invalid_spell_is_refused_with_its_path_and_nothing_is_written(
    api: Api, steps: list[tuple[str, dict[str, Any]]], path: str
) -> None:
    error = await api.error(CREATE, {"i": spell_input(*steps)})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert path in [p["path"] for p in error["extensions"]["problems"]]
    assert (await api.data("{ spells { edges { node { id } } } }"))["spells"]["edges"] == []


async def test_a_collection_may_use_only_its_owners_spell_whose_categories_it_has(
    api: Api,
) -> None:
    mine = await create_spell(api, ("prompt", {"text": "[[Animal]]"}))
    theirs = await create_spell(api, ("prompt", {"text": "[[Animal]]"}), as_=STRANGER)
    unknown = await create_spell(api, ("prompt", {"text": "[[Hat]]"}))
    created = await api.create_collection(generator={"spellId": mine["id"]})
    assert created["generator"] == {"kind": "SPELL", "id": mine["id"]}
    for spell_id, message in ((theirs["id"], "no spell of yours"), (unknown["id"], "[[Hat]]")):
        error = await api.error(
            "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }",
            {"i": collection_input(generator={"spellId": spell_id})},
        )
        assert message in error["message"]


@pytest.mark.parametrize("poll", [False])
async def test_a_three_step_spell_mixing_all_paths_makes_one_piece_with_its_cast(
    papi: Api,
    fake: FakeProvider,
) -> None:
    spell = await create_spell(
        papi,
        ("gpt", {"prompt": "describe [[Animal]]"}),  # answers at once
        ("deploy", {"prompt": "draw [[step:1]]"}),  # completes by webhook
        ("comfy", {"seed": "[[miladyid]]", "caption": "[[step:1]]"}),  # completes when polled
    )
    collection = await papi.create_collection(generator={"spellId": spell["id"]})
    cook = await start_cook(papi, collection["id"], count=1)
    [deploy_run] = await wait_for_runs(fake, 1, papi)
    assert fake.runs[deploy_run].inputs["prompt"].startswith("draw echo: describe ")
    fake.auto_finish = True  # the ComfyUI step, when it comes
    body = fake.comfydeploy_body(fake.finish(deploy_run))
    assert (await send_webhook(papi.client, "/webhooks/deploy", SECRET, body)).json() == {
        "applied": True
    }
    done = await wait_for_cook(papi, cook["id"])

    assert (done["status"], done["numbers"]["completed"]) == ("COMPLETED", 1)
    assert Decimal(done["numbers"]["costUsd"]) == Decimal("0.003570")  # 70 + 3000 + 500
    [piece] = await pieces_of(papi, cook["id"])
    assert len(piece["media"]) == 1, "the last step's image is the piece's"
    casts = await papi.data(
        "query($id: ID!) { cook(id: $id) { pieces { casts { attempt status steps "
        "{ toolId status output costUsd durationMs runId mediaCount } } } } }",
        {"id": cook["id"]},
    )
    [cast] = casts["cook"]["pieces"][0]["casts"]
    assert cast["status"] == "COMPLETED"
    steps = cast["steps"]
    assert [s["toolId"] for s in steps] == ["gpt", "deploy", "comfy"]
    assert {s["status"] for s in steps} == {"COMPLETED"}
    assert [Decimal(s["costUsd"]) for s in steps] == [
        Decimal("0.00007"),
        Decimal("0.003"),
        Decimal("0.0005"),
    ]
    assert steps[0]["output"].startswith("echo: describe ")
    assert (steps[1]["runId"], steps[1]["mediaCount"]) == (deploy_run, 1)
    assert all(s["durationMs"] is not None for s in steps)
    db = papi.app.state.runtime.client[papi.settings.db_name]
    assert await db.pieces.count_documents({}) == 1, "step outputs never count as pieces"


async def test_a_failed_step_fails_the_attempt_and_is_recorded_in_the_cast(api: Api) -> None:
    spell = await create_spell(
        api, ("prompt", {"text": "[[Animal]]"}), ("test", {"permanentFailureRate": 1})
    )
    collection = await api.create_collection(generator={"spellId": spell["id"]})
    cook = await start_cook(api, collection["id"], count=1, maxFailures=1)
    done = await wait_for_cook(api, cook["id"])
    assert done["status"] == "FAILED"
    data = await api.data(
        "query($id: ID!) { cook(id: $id) { pieces { status lastError "
        "casts { status steps { status error } } } } }",
        {"id": cook["id"]},
    )
    piece = data["cook"]["pieces"][0]
    assert piece["status"] == "FAILED"
    assert piece["lastError"] == "step 2 (test): test tool: permanent failure"
    [cast] = piece["casts"]
    assert cast["status"] == "FAILED"
    assert [s["status"] for s in cast["steps"]] == ["COMPLETED", "FAILED"]
