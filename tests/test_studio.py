"""The studio in a real browser: Debian's chromium, driven by Playwright, against `cook serve`.

One walk through what an artist does (sign in with the token the banner's command mints,
create a collection from a trait tree file, preview, cook, watch it live, review with the
keyboard, export and download), checking what the page shows against the API at each step,
with a screenshot of each step in ``test-output/screenshots`` (``COOK_SCREENSHOTS`` to
change it) and an axe-core accessibility check of each main view. Without chromium the test
skips locally and fails in CI (``CI=true``): ``bin/setup`` installs it where it can.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fake_providers import fake_provider, providers_json
from tests.processes import api_process, gql

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("COOK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("COOK_SCREENSHOTS", ROOT / "test-output" / "screenshots"))
AXE = ROOT / "tests" / "vendor" / "axe.min.js"
SERIOUS = {"serious", "critical"}

TREE_FILE = {
    "categories": [
        {
            "name": "Animal",
            "mode": "manual",
            "traits": [
                {"name": "Cat", "prompt": "a cute cat", "rarity": 2},
                {"name": "Owl", "prompt": "a wise owl", "rarity": 1},
            ],
        },
        {"name": "Hat", "traits": [{"name": "Beret"}, {"name": "Top hat", "weight": 3}]},
        {"name": "id", "generator": {"start": 1, "end": 999, "zeroPad": 3}},
    ]
}
TEMPLATE = {"prompt": "[[Animal]] in a [[Hat]], #[[id]]", "latencyMs": 300, "costMicros": 1250}
COUNT = 12


@pytest.fixture
def chromium() -> str:
    """Debian's chromium; checked before anything starts."""
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    reason = f"no chromium at {CHROMIUM} (apt-get install -y chromium; bin/test does, as root)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the browser test: {reason}")
    pytest.skip(reason)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`cook serve` with a data directory of its own and the fake providers (for images), and
    the token its banner's command mints."""
    log = tmp_path / "serve.log"
    with fake_provider() as fake:
        fake.auto_finish = True
        env = {"COOK_TICK_SECONDS": "0.1", "COOK_PROVIDERS": providers_json(fake)}
        with api_process(env, tmp_path / "data", log) as base:
            yield base, _minted(log, tmp_path)


def _minted(log: Path, tmp_path: Path) -> str:
    """Run the banner's token command verbatim, from another directory, with no COOK_ settings."""
    banner = log.read_text()
    command = re.search(r"A token:\s+(.+?)\s{3}\(add --admin", banner)
    assert command, banner
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    minted = subprocess.run(
        ["bash", "-c", command.group(1)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("COOK_")},
    )
    assert not (elsewhere / ".cook-data").exists()
    return minted.stdout.strip()


class Studio:
    """The page, with the checks every step makes."""

    def __init__(self, page: Any, base: str, token: str) -> None:
        self.page, self.base, self.token = page, base, token
        self.console: list[str] = []
        self.step = 0
        page.on(
            "console",
            lambda m: self.console.append(m.text) if m.type in ("error", "warning") else None,
        )
        page.on("pageerror", lambda e: self.console.append(f"page error: {e}"))
        page.on(
            "response",
            lambda r: self.console.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )

    def api(self, query: str, **variables: Any) -> Any:
        return gql(self.base, self.token, query, variables)

    def shot(self, name: str) -> None:
        self.step += 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{self.step:02d}-{name}.png"), full_page=True)

    def accessible(self, view: str) -> None:
        """axe-core (WCAG 2 A and AA, best practices) finds nothing serious or critical.
        `evaluate` runs outside the page's CSP, which forbids injected scripts."""
        if not self.page.evaluate("typeof window.axe !== 'undefined'"):
            self.page.evaluate(AXE.read_text())
        result = self.page.evaluate(
            "axe.run(document, {runOnly: {type: 'tag', values: "
            "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
        )
        positive = self.page.evaluate(
            "[...document.querySelectorAll('[tabindex]')].filter(e => e.tabIndex > 0).length"
        )
        assert positive == 0, f"{view}: focus order follows the document, no positive tabindex"
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
            for v in result["violations"]
            if v["impact"] in SERIOUS
        ]
        assert not bad, f"{view}: {bad}"

    def text(self, selector: str) -> str:
        text: str = self.page.locator(selector).inner_text()
        return text.strip()


@contextmanager
def studio_session(
    p: Any, chromium: str, base: str, token: str, **options: Any
) -> Iterator[tuple[Studio, list[str]]]:
    """A page of Debian's chromium on Cook's studio, closed after; every request to anywhere
    but Cook is refused and listed (the CSP forbids them too)."""
    browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
    context = browser.new_context(viewport={"width": 1100, "height": 800}, **options)
    outside: list[str] = []

    def refuse(route: Any) -> None:
        outside.append(route.request.url)
        route.abort()

    context.route(lambda url: not url.startswith(f"{base}/"), refuse)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield Studio(page, base, token), outside
    finally:
        context.close()
        browser.close()


@pytest.mark.slow
def test_an_artist_signs_in_creates_previews_cooks_reviews_and_exports_in_the_studio(
    chromium: str, served: tuple[str, str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    base, token = served
    with (
        sync_playwright() as p,
        studio_session(p, chromium, base, token, accept_downloads=True) as (studio, outside),
    ):
        walk(studio, expect, tmp_path)
    assert outside == [], "the studio and GraphiQL need no network beyond Cook"
    assert studio.console == [], studio.console


def walk(s: Studio, expect: Any, tmp_path: Path) -> None:
    page = s.page
    # Sign in: a bad token shows the API's message and code, the real one signs in.
    page.goto(f"{s.base}/studio")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    s.accessible("sign-in")
    focused = []
    for _ in range(6):
        page.keyboard.press("Tab")
        focused.append(
            page.evaluate("document.activeElement.textContent || document.activeElement.name")
        )
    assert focused == [
        "Skip to content",
        "Cook studio",
        "Collections",
        "GraphiQL",
        "token",
        "Sign in",
    ], focused
    page.get_by_label("Token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#error .code")).to_have_text("UNAUTHENTICATED")
    s.shot("sign-in-refused")
    page.get_by_label("Token").fill(s.token)
    page.get_by_role("button", name="Sign in").click()
    viewer = s.api("{ viewer { id } }")["viewer"]["id"]
    expect(page.locator("#viewer")).to_have_text(viewer)
    expect(page.locator("#no-collections")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('cook.token')") == s.token
    assert page.evaluate("localStorage.length") == 0
    s.accessible("collections")
    s.shot("collections")

    # Create a collection from a trait tree file, with the test tool's settings in its template.
    page.get_by_label("Name", exact=True).fill("Studio animals")
    page.get_by_label("Total supply").fill("50")
    page.get_by_label("Generator tool").select_option("test")
    page.get_by_label("Trait tree file", exact=True).fill(json.dumps(TREE_FILE))
    page.get_by_label("Template (JSON)").fill(json.dumps(TEMPLATE))
    page.get_by_role("button", name="Create collection").click()
    expect(page.get_by_role("heading", name="Studio animals")).to_be_visible()
    collection_id = page.url.rsplit("/", 1)[1]
    stored = s.api(
        "query($id: ID!) { collection(id: $id) { name traitTreeFile template } }", id=collection_id
    )["collection"]
    assert stored["name"] == "Studio animals"
    assert [c["name"] for c in stored["traitTreeFile"]["categories"]] == ["Animal", "Hat", "id"]
    assert stored["template"] == TEMPLATE
    rows = page.locator("table").first.locator("tbody tr")
    expect(rows).to_have_count(3)
    s.accessible("collection")

    # Preview with a seed: the page shows exactly what the API draws.
    page.get_by_label("Pieces", exact=True).fill("4")
    page.get_by_label("Seed").first.fill("42")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-seed")).to_have_text("42")
    preview = s.api(
        "query($id: ID!) { previewPieces(collectionId: $id, count: 4, seed: 42) "
        "{ pieces { index traits { category name } } } }",
        id=collection_id,
    )["previewPieces"]["pieces"]
    shown = page.locator("#preview tbody tr")
    expect(shown).to_have_count(4)
    for i, piece in enumerate(preview):
        traits = ", ".join(f"{t['category']}: {t['name']}" for t in piece["traits"])
        expect(shown.nth(i).locator("td").nth(1)).to_have_text(traits)
    s.shot("preview")

    # Start a cook and follow it live, dropping the connection once on the way.
    page.get_by_label("Pieces to make").fill(str(COUNT))
    page.get_by_label("At most in flight").fill("3")
    page.locator("input[name=seed]").fill("7")
    page.get_by_role("button", name="Start cook").click()
    expect(page.locator("#link-state")).to_have_text("live")
    cook_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#events li").first).to_be_visible()
    page.get_by_role("button", name="Reconnect").click()
    expect(page.locator("#resumed")).to_contain_text("Resumed 1 time, last resumed after seq")
    s.shot("cook-running")
    expect(page.locator("#cook-status")).to_have_text("completed", timeout=60_000)
    expect(page.locator("#link-state")).to_contain_text("ended")
    cook = s.api(
        "query($id: ID!) { cook(id: $id) { status lastSeq numbers { completed rejected failed "
        "inFlight costUsd } events(afterSeq: 0, first: 500) { seq } } }",
        id=cook_id,
    )["cook"]
    n = cook["numbers"]
    assert cook["status"] == "COMPLETED"
    assert s.text("#n-done") == str(n["completed"] - n["rejected"]) == str(COUNT)
    assert s.text("#n-inFlight") == str(n["inFlight"]) == "0"
    assert s.text("#n-failed") == str(n["failed"])
    assert s.text("#n-costUsd") == f"${n['costUsd']}"
    assert re.fullmatch(r"\d+\.\d pieces/(s|min)", s.text("#n-rate")), s.text("#n-rate")
    assert page.locator("#cook-bar").get_attribute("value") == str(COUNT)
    # Every event after the first snapshot, once each, in order, across the reconnection.
    seqs = [int(x) for x in page.locator("#events li").evaluate_all("l => l.map(e => e.value)")]
    assert seqs == list(range(seqs[0], cook["lastSeq"] + 1)), seqs
    assert seqs[-1] == cook["events"][-1]["seq"]
    s.accessible("cook")
    s.shot("cook-completed")

    # Review with the keyboard: accept, reject, skip, accept, back, accept; then the rest.
    page.get_by_role("link", name="Review pieces").click()
    tiles = page.locator("#gallery .tile")
    expect(tiles).to_have_count(COUNT)
    for key in ["a", "r", "ArrowRight", "a", "ArrowLeft", "ArrowLeft", "a"]:
        page.keyboard.press(key)
    expect(page.locator("#queue")).to_contain_text("4 decisions not saved")
    s.shot("review-keyboard")
    expect(page.locator("#queue")).to_have_text("Saved 4 decisions.")
    pieces = review_states(s, collection_id, cook_id)
    assert pieces[:5] == ["ACCEPTED", "REJECTED", "ACCEPTED", "ACCEPTED", "PENDING"]
    page.keyboard.press("ArrowRight")
    hold_timers(page)  # the queue's idle flush must not beat the button on a slow machine
    for _ in range(COUNT - 4):
        page.keyboard.press("a")
    page.get_by_role("button", name="Save decisions now").click()
    page.clock.resume()
    expect(page.locator("#queue")).to_contain_text("Saved")
    assert review_states(s, collection_id, cook_id) == ["ACCEPTED", "REJECTED"] + ["ACCEPTED"] * (
        COUNT - 2
    )
    expect(tiles.nth(1).locator(".state")).to_have_text("rejected")
    expect(tiles.nth(1)).to_contain_text("in a")  # a text piece shows its text
    # Paged: 8 per page, by index, the accepted ones only.
    page.get_by_label("Per page").select_option("8")
    page.get_by_label("Review").select_option("ACCEPTED")
    expect(page.locator("#page-label")).to_have_text("Page 1: pieces #0 to #8")
    expect(tiles).to_have_count(8)
    page.get_by_role("button", name="Next page").click()
    expect(page.locator("#page-label")).to_have_text("Page 2: pieces #9 to #11")
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    page.get_by_role("button", name="Previous page").click()
    expect(page.locator("#page-label")).to_have_text("Page 1: pieces #0 to #8")
    page.get_by_label("Review").select_option("REJECTED")
    expect(tiles).to_have_count(1)
    s.accessible("review")
    s.shot("review-rejected-filter")

    # The collections list shows what the API lists.
    page.get_by_role("link", name="Collections", exact=True).click()
    listed = s.api("{ collections { edges { node { name totalSupply } } } }")["collections"]
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(len(listed["edges"]))
    for i, edge in enumerate(listed["edges"]):
        expect(rows.nth(i).locator("td").nth(0)).to_have_text(edge["node"]["name"])
        expect(rows.nth(i).locator("td").nth(1)).to_have_text(str(edge["node"]["totalSupply"]))

    # Export the accepted pieces, watch it finish, download it with the Bearer token.
    page.get_by_role("link", name="Studio animals").click()
    page.get_by_role("button", name="Export accepted pieces").click()
    download_button = page.get_by_role("button", name="Download ZIP")
    expect(download_button).to_be_visible(timeout=30_000)
    s.shot("export-completed")
    with page.expect_download() as info:
        download_button.click()
    archive = tmp_path / "download.zip"
    info.value.save_as(archive)
    export = s.api(
        "query($id: ID!) { exports(collectionId: $id, first: 1) { edges { node { total } } } }",
        id=collection_id,
    )["exports"]["edges"][0]["node"]
    with zipfile.ZipFile(io.BytesIO(archive.read_bytes())) as z:
        manifest = json.loads(z.read("manifest.json"))
    accepted = [
        e["node"]["id"]
        for e in s.api(
            "query($c: ID!) { pieces(collectionId: $c, filter: {review: [ACCEPTED]}, order: INDEX,"
            " first: 100) { edges { node { id } } } }",
            c=collection_id,
        )["pieces"]["edges"]
    ]
    assert export["total"] == manifest["count"] == len(accepted) == COUNT - 1
    assert [item["pieceId"] for item in manifest["items"]] == accepted

    # An API refusal shows the API's own message and code.
    page.get_by_label("Pieces to make").fill("100000")
    page.get_by_role("button", name="Start cook").click()
    expect(page.locator("#error .code")).to_have_text("BAD_USER_INPUT")
    refusal = httpx_error(s, collection_id)
    expect(page.locator("#error .message")).to_contain_text(refusal)
    s.shot("error-shown")

    # Pause, resume and cancel a cook from its page; the API agrees at each step.
    page.get_by_label("Pieces to make").fill("6")
    page.get_by_label("At most in flight").fill("1")
    page.get_by_role("button", name="Start cook").click()
    expect(page.locator("#link-state")).to_have_text("live")
    controlled = page.url.rsplit("/", 1)[1]
    for button, status, api_status in [
        ("Pause", "paused", {"PAUSED"}),
        ("Resume", "running", {"RUNNING"}),
        ("Cancel cook", "cancel", {"CANCELLING", "CANCELLED"}),
    ]:
        page.get_by_role("button", name=button).click()
        expect(page.locator("#cook-status")).to_contain_text(status)
        now = s.api("query($id: ID!) { cook(id: $id) { status } }", id=controlled)["cook"]
        assert now["status"] in api_status, (button, now)
    expect(page.locator("#cook-status")).to_have_text("cancelled", timeout=30_000)
    expect(page.locator("#events li").last).to_have_text("cook_cancelled: cancelled by alice")
    expect(page.locator("#link-state")).to_contain_text("ended")
    for button in ("Pause", "Resume", "Cancel cook"):
        expect(page.get_by_role("button", name=button)).to_be_disabled()
    s.shot("cook-cancelled")

    # Images come through the authenticated media route, shown from blob URLs.
    images = s.api(
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }",
        i={
            "name": "Studio images",
            "totalSupply": 10,
            "generator": {"toolId": "comfy"},
            "traitTreeFile": TREE_FILE,
            "template": {"seed": "[[id]]"},
        },
    )["createCollection"]["id"]
    image_cook = s.api(
        "mutation($c: ID!) { startCook(collectionId: $c, count: 3) { id } }", c=images
    )["startCook"]["id"]
    page.goto(f"{s.base}/studio#/cooks/{image_cook}")
    expect(page.locator("#cook-status")).to_have_text("completed", timeout=60_000)
    page.get_by_role("link", name="Review pieces").click()
    shown_images = page.locator("#gallery img")
    expect(shown_images).to_have_count(3)
    for i in range(3):
        expect(shown_images.nth(i)).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function(
        "[...document.querySelectorAll('#gallery img')].every(i => i.complete && i.naturalWidth)"
    )
    urls = [
        o["url"]
        for e in s.api(
            "query($c: ID!) { pieces(collectionId: $c, first: 10) "
            "{ edges { node { outputs { url } } } } }",
            c=images,
        )["pieces"]["edges"]
        for o in e["node"]["outputs"]
        if o["url"]
    ]
    assert len(urls) == 3
    assert all(re.fullmatch(r"/media/pc_[0-9a-f]{32}/0\?v=[0-9a-f]{64}", u) for u in urls), urls
    s.shot("review-images")

    # GraphiQL (development) works offline and loads the schema for this ordinary token.
    page.goto(f"{s.base}/graphql")
    page.locator(".graphiql-execute-button").click()
    expect(page.locator(".result-window")).to_contain_text(
        f'"id": "{s.api("{ viewer { id } }")["viewer"]["id"]}"'
    )
    s.shot("graphiql")


def hold_timers(page: Any) -> None:
    """Stop the page's clock: timers set from now on fire only once ``page.clock.resume()``."""
    page.clock.install()
    page.clock.pause_at(datetime.now(UTC) + timedelta(seconds=1))


def review_states(s: Studio, collection_id: str, cook_id: str) -> list[str]:
    data = s.api(
        "query($c: ID!, $k: ID!) { pieces(collectionId: $c, cookId: $k, order: INDEX, first: 100)"
        " { edges { node { review } } } }",
        c=collection_id,
        k=cook_id,
    )
    return [e["node"]["review"] for e in data["pieces"]["edges"]]


def httpx_error(s: Studio, collection_id: str) -> str:
    import httpx

    body = httpx.post(
        f"{s.base}/graphql",
        json={
            "query": "mutation($id: ID!) { startCook(collectionId: $id, count: 100000) { id } }",
            "variables": {"id": collection_id},
        },
        headers={"Authorization": f"Bearer {s.token}"},
    ).json()
    message: str = body["errors"][0]["message"]
    return message
