"""The ``openai-images`` provider against a fake OpenAI-compatible server: b64 and URL
answers stored as media, the cost per image, retries of 429 and 5xx, and a refusal."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import pytest

from tests.api import Api, collection_input, pieces_of, start_cook, wait_for_cook
from tests.conftest import MakeApi
from tests.fake_providers import FakeProvider, image_providers_json, png


@pytest.fixture
async def iapi(make_api: MakeApi, fake: FakeProvider) -> Api:
    return await make_api(providers=image_providers_json(fake))


async def cook(api: Api, template: dict[str, Any], count: int = 1) -> dict[str, Any]:
    collection = await api.create_collection(generator={"toolId": "pix"}, template=template)
    started = await start_cook(api, collection["id"], count=count, maxConcurrent=count)
    return await wait_for_cook(api, started["id"])


async def media_of(api: Api, piece: dict[str, Any]) -> list[bytes]:
    headers = {"Authorization": f"Bearer {api.token_for('alice')}"}
    found = []
    for output in piece["media"]:
        response = await api.client.get(output["url"], headers=headers)
        assert response.status_code == 200
        found.append(response.content)
    return found


async def test_b64_answers_are_stored_as_the_pieces_images_at_the_cost_per_image(
    iapi: Api, fake: FakeProvider
) -> None:
    done = await cook(iapi, {"prompt": "[[Animal]] in space", "size": "512x512", "n": 2}, 2)
    assert done["status"] == "COMPLETED"
    for piece in await pieces_of(iapi, done["id"]):
        images = await media_of(iapi, piece)
        prompt = piece["output"]
        assert images == [png(f"{prompt}-0"), png(f"{prompt}-1")]
        assert Decimal(piece["costUsd"]) == Decimal("0.08"), "two images at 40,000 micros"
    assert Decimal(done["numbers"]["costUsd"]) == Decimal("0.16")
    sent = fake.image_requests[0]
    assert sent["model"] == "fake-image-1"
    assert (sent["size"], sent["n"]) == ("512x512", 2)
    assert "response_format" not in sent


async def test_url_answers_are_fetched_into_the_media_store(iapi: Api, fake: FakeProvider) -> None:
    fake.image_answer = "url"
    done = await cook(iapi, {"prompt": "[[Animal]]"})
    assert done["status"] == "COMPLETED"
    (piece,) = await pieces_of(iapi, done["id"])
    (image,) = await media_of(iapi, piece)
    assert image == png("/img/1-0.png")
    assert piece["media"][0]["sha256"] == hashlib.sha256(image).hexdigest()


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_rate_limits_and_server_errors_are_retried(
    iapi: Api, fake: FakeProvider, status: int
) -> None:
    fake.image_failures = [status]
    done = await cook(iapi, {"prompt": "[[Animal]]"})
    assert done["status"] == "COMPLETED"
    (piece,) = await pieces_of(iapi, done["id"])
    assert piece["attempt"] == 2
    assert len(fake.image_requests) == 2


async def test_a_refusal_fails_the_piece_with_the_providers_reason_and_no_retry(
    iapi: Api, fake: FakeProvider
) -> None:
    fake.image_failures = [400]
    collection = await iapi.create_collection(
        generator={"toolId": "pix"}, template={"prompt": "[[Animal]]"}
    )
    started = await start_cook(iapi, collection["id"], count=1, maxFailures=3)
    done = await wait_for_cook(iapi, started["id"])
    assert done["status"] == "COMPLETED", "the refused piece's seat went to a replacement"
    db = iapi.app.state.runtime.client[iapi.settings.db_name]
    piece = await db.pieces.find_one({"cookId": done["id"], "index": 0})
    assert piece is not None
    assert piece["status"] == "failed"
    assert piece["attempt"] == 1
    assert piece["lastError"] == "pix: HTTP 400: Your request was rejected by the safety system."
    assert len(fake.image_requests) == 2, "the refusal was not retried; its replacement ran"


async def test_the_template_is_checked_against_the_image_inputs(iapi: Api) -> None:
    template = {"prompt": "x", "seed": 3}
    error = await iapi.error(
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }",
        {"i": collection_input(generator={"toolId": "pix"}, template=template)},
    )
    problems = {p["path"] for p in error["extensions"]["problems"]}
    assert problems == {"input.template.seed"}


def test_a_provider_may_not_take_a_built_in_tools_id() -> None:
    import json

    from pydantic import ValidationError

    from service.settings import Settings

    for taken in ("prompt", "layers"):
        config = [{"id": taken, "kind": "openai-images", "baseUrl": "http://x/v1", "model": "m"}]
        with pytest.raises(ValidationError, match="built-in tools"):
            Settings(providers=json.dumps(config))


async def test_an_image_url_names_its_hash_and_is_cached_as_immutable(iapi: Api) -> None:
    done = await cook(iapi, {"prompt": "[[Animal]]", "size": "512x512", "n": 1})
    [piece] = await pieces_of(iapi, done["id"])
    [image] = piece["media"]
    assert image["url"].endswith(f"?v={image['sha256']}")
    headers = {"Authorization": f"Bearer {iapi.token_for('alice')}"}
    named = await iapi.client.get(image["url"], headers=headers)
    assert named.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert hashlib.sha256(named.content).hexdigest() == image["sha256"]
    bare = await iapi.client.get(image["url"].split("?")[0], headers=headers)
    assert "immutable" not in bare.headers["cache-control"]
