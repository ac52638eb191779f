"""The studio's webhooks view in Debian's chromium: add an endpoint (its secret shown once),
send a test event that a real receiver verifies with that secret, see the delivery, rotate."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.processes import api_process
from tests.test_cook_processes import bearer
from tests.test_studio import chromium, studio_session  # noqa: F401 (the fixture)
from tests.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.slow


def test_an_owner_adds_an_endpoint_tests_it_and_sees_its_delivery_in_the_studio(
    chromium: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    env = {"COOK_TICK_SECONDS": "0.1", "COOK_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32"}
    data = tmp_path / "data"
    token = bearer(data)
    with (
        webhook_receiver() as receiver,
        api_process(env, data, tmp_path / "serve.log") as base,
        sync_playwright() as p,
        studio_session(p, chromium, base, token) as (studio, outside),
    ):
        page = studio.page
        page.goto(f"{base}/studio")
        page.get_by_label("Token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("link", name="Webhooks").click()
        expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
        expect(page.locator("#no-endpoints")).to_be_visible()
        page.get_by_label("URL").fill(receiver.url)
        page.get_by_label("cook.failed").check()
        page.get_by_role("button", name="Add endpoint").click()
        secret = studio.text("#webhook-secret code")
        assert secret.startswith("whsec_")
        expect(page.locator("article.endpoint h3")).to_have_text(receiver.url)
        studio.accessible("webhooks")
        events = studio.api("{ webhookEndpoints { edges { node { events } } } }")
        [edge] = events["webhookEndpoints"]["edges"]
        assert edge["node"]["events"] == ["cook.completed", "cook.failed", "export.completed"]
        page.get_by_role("button", name="Send a test event").click()
        [request] = receiver.wait_for(1)
        assert request.verifies_with(secret)
        deadline = time.monotonic() + 15
        while "delivered" not in page.locator("article.endpoint table").inner_text():
            assert time.monotonic() < deadline
            page.get_by_role("button", name="Recent deliveries").click()
            time.sleep(0.2)
        page.get_by_role("button", name="Rotate secret").click()
        expect(page.locator("#webhook-secret code")).not_to_have_text(secret)
        expect(page.locator("article.endpoint")).to_contain_text("previous secret signs")
    assert outside == []
    assert studio.console == [], studio.console
