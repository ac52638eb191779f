"""Generation providers over real HTTP: synchronous, webhook and polling; media; errors."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from tests.api import (
    OWNER,
    STRANGER,
    Api,
    collection_input,
    pieces_of,
    start_cook,
    wait_for_cook,
)
from tests.fake_providers import SECRET, FakeProvider, png, send_webhook, wait_for_runs


async def cook_with(api: Api, tool: str, template: dict[str, Any], count: int = 1) -> str:
    collection = await api.create_collection(generator={"toolId": tool}, template=template)
    cook = await start_cook(api, collection["id"], count=count, maxConcurrent=count)
    cook_id: str = cook["id"]
    return cook_id


async def stored_pieces(api: Api, cook_id: str) -> list[dict[str, Any]]:
    db = api.app.state.runtime.client[api.settings.db_name]
    return [p async for p in db.pieces.find({"cookId": cook_id}).sort("index")]


# --- synchronous ---------------------------------------------------------------------------


async def test_a_synchronous_provider_completes_each_piece_in_the_call_with_its_cost(
    papi: Api, fake: FakeProvider
) -> None:
    cook_id = await cook_with(papi, "gpt", {"prompt": "[[Animal]] #[[miladyid]]"}, count=3)
    cook = await wait_for_cook(papi, cook_id)
    assert cook["status"] == "COMPLETED"
    pieces = await pieces_of(papi, cook_id)
    assert all(p["output"].startswith("echo: ") for p in pieces)
    # 10 prompt tokens at 2 micro-dollars and 5 completion tokens at 10: 70 each, counted once
    assert {Decimal(p["costUsd"]) for p in pieces} == {Decimal("0.00007")}
    assert Decimal(cook["numbers"]["costUsd"]) == Decimal("0.00021")
    assert fake.chat_calls == 3


async def test_a_template_is_checked_against_the_tools_declared_inputs(papi: Api) -> None:
    error = await papi.error(
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }",
        {"i": collection_input(generator={"toolId": "gpt"}, template={"text": "[[Animal]]"})},
    )
    problems = {p["path"]: p["message"] for p in error["extensions"]["problems"]}
    assert "input.template.prompt" in problems
    assert "input.template.text" in problems
    tools = await papi.data("{ tools { id kind openInputs inputs { name type required } } }")
    gpt = next(t for t in tools["tools"] if t["id"] == "gpt")
    assert gpt["kind"] == "openai"
    assert {"name": "prompt", "type": "STRING", "required": True} in gpt["inputs"]


async def test_transient_provider_errors_are_retried_and_a_permanent_one_fails_the_piece(
    papi: Api, fake: FakeProvider
) -> None:
    fake.chat_failures = [503, 429]
    cook_id = await cook_with(papi, "gpt", {"prompt": "[[Animal]]"})
    await wait_for_cook(papi, cook_id)
    [piece] = await pieces_of(papi, cook_id)
    assert (piece["status"], piece["attempt"]) == ("COMPLETED", 3)

    fake.chat_failures = [400]
    failing = await papi.create_collection(generator={"toolId": "gpt"}, template={"prompt": "x"})
    cook = await start_cook(papi, failing["id"], count=1, maxFailures=1)
    ended = await wait_for_cook(papi, cook["id"])
    piece = (await pieces_of(papi, cook["id"]))[0]
    assert ended["status"] == "FAILED"
    assert (piece["status"], piece["attempt"], piece["lastError"]) == ("FAILED", 1, "gpt: HTTP 400")


# --- webhooks ------------------------------------------------------------------------------


@pytest.mark.parametrize("poll", [False])
async def test_a_webhook_completes_its_piece_once_however_often_it_is_delivered(
    papi: Api, fake: FakeProvider
) -> None:
    cook_id = await cook_with(papi, "deploy", {"prompt": "[[Animal]]"})
    [run_id] = await wait_for_runs(fake, 1, papi)
    assert fake.runs[run_id].webhook == "http://127.0.0.1:8000/webhooks/deploy"
    run = fake.runs[run_id]
    now = int(time.time())
    progress = [
        await send_webhook(
            papi.client, "/webhooks/deploy", SECRET, fake.comfydeploy_body(run, s), timestamp=t
        )
        for s, t in (("queued", now), ("running", now), ("running", now + 1))
    ]
    assert [r.json()["applied"] for r in progress] == [True, True, False]

    fake.finish(run_id)
    body = fake.comfydeploy_body(run)
    stamp = int(time.time())
    first = await send_webhook(papi.client, "/webhooks/deploy", SECRET, body, timestamp=stamp)
    replayed = await send_webhook(papi.client, "/webhooks/deploy", SECRET, body, timestamp=stamp)
    retried = await send_webhook(papi.client, "/webhooks/deploy", SECRET, body, timestamp=stamp + 1)
    assert (first.status_code, first.json()) == (200, {"applied": True})
    assert replayed.status_code == 409
    assert (retried.status_code, retried.json()) == (200, {"applied": False})

    cook = await wait_for_cook(papi, cook_id)
    [piece] = await pieces_of(papi, cook_id)
    assert (piece["status"], piece["runId"]) == ("COMPLETED", run_id)
    assert Decimal(piece["costUsd"]) == Decimal(cook["numbers"]["costUsd"]) == Decimal("0.003")
    [stored] = await stored_pieces(papi, cook_id)
    assert [a["outcome"] for a in stored["attempts"]] == ["completed"]
    events = await papi.data(
        "query($id: ID!) { cook(id: $id) { events { type detail } } }", {"id": cook_id}
    )
    kinds = [e["type"] for e in events["cook"]["events"]]
    assert kinds.count("PIECE_PROGRESS") == 2
    assert kinds.count("PIECE_COMPLETED") == 1


@pytest.mark.parametrize("poll", [False])
async def test_forged_stale_and_replayed_webhooks_are_refused_and_change_nothing(
    papi: Api, fake: FakeProvider
) -> None:
    cook_id = await cook_with(papi, "deploy", {"prompt": "[[Animal]]"})
    [run_id] = await wait_for_runs(fake, 1, papi)
    body = fake.comfydeploy_body(fake.finish(run_id))
    path = "/webhooks/deploy"
    stale = int(time.time()) - 301
    refusals = [
        await send_webhook(papi.client, path, "not-the-secret", body),
        await send_webhook(papi.client, path, SECRET, body, tamper=True),
        await send_webhook(papi.client, path, SECRET, body, timestamp=stale),
        await papi.client.post(path, json=body),  # unsigned
        await send_webhook(papi.client, "/webhooks/gpt", SECRET, body),  # no webhooks there
        await send_webhook(papi.client, "/webhooks/nobody", SECRET, body),
    ]
    assert [r.status_code for r in refusals] == [401, 401, 401, 401, 404, 404]
    [piece] = await pieces_of(papi, cook_id)
    assert (piece["status"], Decimal(piece["costUsd"])) == ("RUNNING", 0)

    accepted = await send_webhook(papi.client, path, SECRET, body)
    assert accepted.json() == {"applied": True}
    await wait_for_cook(papi, cook_id)


@pytest.mark.parametrize("poll", [True])
async def test_a_provider_that_both_calls_the_webhook_and_is_polled_completes_each_piece_once(
    papi: Api, fake: FakeProvider
) -> None:
    cook_id = await cook_with(papi, "deploy", {"prompt": "[[Animal]]"}, count=3)
    runs = await wait_for_runs(fake, 3, papi)
    for run_id in runs:
        fake.finish(run_id)  # the poller can see it now...
        for _ in range(2):  # ...and the webhook says so too, twice
            body = fake.comfydeploy_body(fake.runs[run_id])
            await send_webhook(papi.client, "/webhooks/deploy", SECRET, body)
    cook = await wait_for_cook(papi, cook_id)
    assert cook["numbers"]["completed"] == 3
    assert Decimal(cook["numbers"]["costUsd"]) == Decimal("0.009")
    for stored in await stored_pieces(papi, cook_id):
        assert [a["outcome"] for a in stored["attempts"]] == ["completed"]
        assert stored["costMicros"] == 3000


# --- polling -------------------------------------------------------------------------------


async def test_a_polled_provider_completes_pieces_with_their_images(
    papi: Api, fake: FakeProvider
) -> None:
    fake.auto_finish = True
    cook_id = await cook_with(papi, "comfy", {"seed": "[[miladyid]]"}, count=2)
    cook = await wait_for_cook(papi, cook_id)
    assert cook["status"] == "COMPLETED"
    for piece in await pieces_of(papi, cook_id):
        [image] = piece["media"]
        data = png(f"{piece['runId']}.png")
        assert image["sha256"] == hashlib.sha256(data).hexdigest()
        assert (image["contentType"], image["size"]) == ("image/png", len(data))


@pytest.mark.parametrize("deadline", [0.6])
async def test_a_polling_deadline_fails_the_attempt_and_frees_its_slot(
    papi: Api, fake: FakeProvider
) -> None:
    cook_id = await cook_with(papi, "comfy", {"seed": "[[miladyid]]"})
    await wait_for_runs(fake, 2)  # the first never finishes; its deadline starts attempt 2
    fake.auto_finish = True
    for run_id in list(fake.runs)[1:]:
        fake.finish(run_id)
    cook = await wait_for_cook(papi, cook_id)
    [stored] = await stored_pieces(papi, cook_id)
    assert stored["attempts"][0]["reason"] == "the provider gave no outcome by the deadline"
    assert stored["attempts"][-1]["outcome"] == "completed"
    assert cook["status"] == "COMPLETED"


# --- media ---------------------------------------------------------------------------------


@pytest.mark.parametrize("poll", [False])
async def test_media_are_served_to_the_owner_and_admins_only(papi: Api, fake: FakeProvider) -> None:
    cook_id = await cook_with(papi, "deploy", {"prompt": "[[Animal]]"})
    [run_id] = await wait_for_runs(fake, 1, papi)
    body = fake.comfydeploy_body(fake.finish(run_id))
    await send_webhook(papi.client, "/webhooks/deploy", SECRET, body)
    await wait_for_cook(papi, cook_id)
    [piece] = await pieces_of(papi, cook_id)
    url = piece["media"][0]["url"]

    async def get(who: str | None) -> Any:
        token = papi.token_for(who)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await papi.client.get(url, headers=headers)

    mine, admins, theirs, nobody = [await get(w) for w in (OWNER, "root", STRANGER, None)]
    assert (mine.status_code, mine.headers["content-type"]) == (200, "image/png")
    assert hashlib.sha256(mine.content).hexdigest() == piece["media"][0]["sha256"]
    assert admins.status_code == 200
    assert (theirs.status_code, nobody.status_code) == (404, 401)
    missing = await papi.client.get(
        url.replace("/0", "/7"), headers={"Authorization": f"Bearer {papi.token_for(OWNER)}"}
    )
    assert missing.status_code == 404


@pytest.mark.parametrize("poll", [False])
@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("/page.html", "content type 'text/html'"),
        ("/huge.png", "larger than"),
        ("/missing.png", "HTTP 404"),
    ],
)
async def test_an_output_that_cannot_be_fetched_fails_the_attempt_with_a_reason(
    papi: Api, fake: FakeProvider, image: str, reason: str
) -> None:
    fake.image_path = image
    collection = await papi.create_collection(
        generator={"toolId": "deploy"}, template={"prompt": "x"}
    )
    cook = await start_cook(papi, collection["id"], count=1, maxFailures=1)
    [run_id] = await wait_for_runs(fake, 1, papi)
    body = fake.comfydeploy_body(fake.finish(run_id))
    answer = await send_webhook(papi.client, "/webhooks/deploy", SECRET, body)
    assert answer.json() == {"applied": True}
    await wait_for_cook(papi, cook["id"])
    piece = (await pieces_of(papi, cook["id"]))[0]
    assert piece["status"] == "FAILED"
    assert reason in piece["lastError"]


# --- hardening ---------------------------------------------------------------------------


@pytest.mark.parametrize("poll", [False])
async def test_a_webhook_for_a_run_not_yet_recorded_is_refused_without_being_remembered(
    papi: Api, fake: FakeProvider
) -> None:
    """A fast provider may call back before the run is recorded: its retry must get in."""
    body = {"run_id": "run-from-the-future", "status": "running"}
    stamp = int(time.time())
    first = await send_webhook(papi.client, "/webhooks/deploy", SECRET, body, timestamp=stamp)
    again = await send_webhook(papi.client, "/webhooks/deploy", SECRET, body, timestamp=stamp)
    assert (first.status_code, again.status_code) == (404, 404)


@pytest.mark.parametrize("poll", [False])
async def test_webhooks_with_hostile_headers_or_bodies_get_a_4xx_never_a_500(papi: Api) -> None:
    async def huge() -> AsyncIterator[bytes]:  # chunked, with no Content-Length
        for _ in range(20):
            yield b"x" * 65536

    answers = [
        await papi.client.post(
            "/webhooks/deploy",
            content=b"{}",
            headers={"X-Cook-Timestamp": "1", "X-Cook-Signature": b"sha256=\xe9"},
        ),
        await papi.client.post(
            "/webhooks/deploy",
            content=b"{}",
            headers={
                "X-Cook-Timestamp": "\u00b2".encode("latin-1"),
                "X-Cook-Signature": "sha256=00",
            },
        ),
        await papi.client.post("/webhooks/deploy", content=huge()),
        await send_webhook(papi.client, "/webhooks/deploy", SECRET, {"status": "success"}),
    ]
    assert [a.status_code for a in answers] == [401, 401, 413, 400]


@pytest.mark.parametrize("poll", [False])
@pytest.mark.parametrize(
    ("outputs", "reason"),
    [
        (None, "no image or text"),
        ([{"data": {"images": None, "text": 5}}], "no image or text"),
        ([{"data": {"images": [{"url": "http://10.1.2.3/x.png"}]}}], "must use https"),
        ([{"data": {"images": [{"url": "https://127.0.0.2/x.png"}]}}], "not a public address"),
    ],
)
async def test_odd_or_internal_outputs_fail_the_attempt_with_a_reason(
    papi: Api, fake: FakeProvider, outputs: Any, reason: str
) -> None:
    collection = await papi.create_collection(
        generator={"toolId": "deploy"}, template={"prompt": "x"}
    )
    cook = await start_cook(papi, collection["id"], count=1, maxFailures=1)
    [run_id] = await wait_for_runs(fake, 1, papi)
    body = {"run_id": run_id, "status": "success", "outputs": outputs}
    answer = await send_webhook(papi.client, "/webhooks/deploy", SECRET, body)
    assert answer.json() == {"applied": True}
    await wait_for_cook(papi, cook["id"])
    piece = (await pieces_of(papi, cook["id"]))[0]
    assert piece["status"] == "FAILED"
    assert reason in piece["lastError"]


@pytest.mark.parametrize("poll", [False])
async def test_an_output_not_fetchable_for_now_is_fetched_when_the_provider_delivers_again(
    papi: Api, fake: FakeProvider
) -> None:
    fake.image_path, fake.flaky_failures = "/flaky.png", 1
    cook_id = await cook_with(papi, "deploy", {"prompt": "[[Animal]]"})
    [run_id] = await wait_for_runs(fake, 1, papi)
    body = fake.comfydeploy_body(fake.finish(run_id))
    stamp = int(time.time())
    later = await send_webhook(papi.client, "/webhooks/deploy", SECRET, body, timestamp=stamp)
    retried = await send_webhook(papi.client, "/webhooks/deploy", SECRET, body, timestamp=stamp)
    assert (later.status_code, retried.status_code) == (503, 200)
    cook = await wait_for_cook(papi, cook_id)
    assert cook["status"] == "COMPLETED"
    [stored] = await stored_pieces(papi, cook_id)
    assert [a["outcome"] for a in stored["attempts"]] == ["completed"]


@pytest.mark.parametrize("poll", [False])
async def test_a_run_resolved_by_a_process_that_died_before_completing_its_piece_is_applied(
    papi: Api, fake: FakeProvider
) -> None:
    from orchestration.cooking.pieces import Success
    from orchestration.cooking.runs import run_key

    cook_id = await cook_with(papi, "deploy", {"prompt": "[[Animal]]"})
    [run_id] = await wait_for_runs(fake, 1, papi)
    runs = papi.app.state.runtime.services.orchestrator.runs
    # what report_run does first, and then nothing: the process "dies" here
    assert await runs.resolve(run_key("deploy", run_id), Success("late", 42)) is not None
    cook = await wait_for_cook(papi, cook_id)
    assert cook["status"] == "COMPLETED"
    [piece] = await pieces_of(papi, cook_id)
    assert (piece["output"], Decimal(piece["costUsd"])) == ("late", Decimal("0.000042"))
