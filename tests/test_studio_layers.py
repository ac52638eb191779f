"""The studio's layers workflow in Debian's chromium: what an artist does instead of HashLips
and a folder of scripts. Import a generated HashLips ZIP through the page's file input,
reorder it and import it; replace one trait's layer (and see a refusal); preview pictures;
edit the trait tree with live validation and save it; follow a cook's chart live and read it
back from the event log; review its images; see the rarity chart match collectionAnalytics and
open a trait's gallery; export with every option and check the metadata and provenance hash.
Every new view passes axe-core, with no console error or CSP violation (``tests/test_studio``
holds the fixtures and the checks each step makes)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from tests.test_example_layers import script
from tests.test_studio import SCREENSHOTS, Studio, chromium, served, studio_session

__all__ = ["chromium", "served"]  # the fixtures, shared with the main walk

COUNT = 20
COLLECTION = """query($id: ID!) { collection(id: $id) { version
  traitTree { name ... on ManualCategory { traits { name weight } } }
  rules { exclusions { category trait excludedCategory excludes } }
  layers { width styles { category opacity blend } layers { category trait sha256 } } } }"""


@pytest.mark.slow
def test_an_artist_imports_layers_previews_edits_cooks_and_exports_in_the_studio(
    chromium: str, served: tuple[str, str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)

    base, token = served
    with (
        sync_playwright() as p,
        studio_session(p, chromium, base, token, accept_downloads=True) as (studio, outside),
    ):
        studio.step = 20  # after the main walk's screenshots
        try:
            walk(studio, expect, tmp_path)
        finally:
            print("console:", studio.console)  # shown when the walk fails
    assert outside == []
    assert studio.console == [], studio.console


def images_loaded(page: Any, selector: str) -> None:
    """Every image decoded (polled from here: a string wait_for_function needs eval, which
    the page's CSP forbids after a reload)."""
    script = "s => [...document.querySelectorAll(s)].every(i => i.complete && i.naturalWidth > 0)"
    for _ in range(150):
        if page.evaluate(script, selector):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"{selector}: not every image loaded")


def walk(s: Studio, expect: Any, tmp_path: Path) -> None:
    page = s.page
    page.goto(f"{s.base}/studio")
    page.get_by_label("Token").fill(s.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#viewer")).to_be_visible()

    # A new collection whose tree comes from layers: the form picks the layers tool.
    page.get_by_label("Name", exact=True).fill("Cult secretaries")
    page.get_by_label("Total supply").fill("200")
    page.get_by_label("Trait tree from").select_option("layers")
    expect(page.get_by_label("Generator tool")).to_have_value("layers")
    page.get_by_role("button", name="Create collection").click()
    expect(page.get_by_role("heading", name="Cult secretaries")).to_be_visible()
    cid = page.url.rsplit("/", 1)[1]

    # Layers in: the ZIP through the file input; the plan shows what the import will create.
    project = tmp_path / "cult-secretaries-layers.zip"
    project.write_bytes(script().make())
    page.locator("#layers-zip").set_input_files(str(project))
    plan = page.locator("#layers-order tbody tr")
    expect(plan).to_have_count(3)
    assert plan.evaluate_all("rs => rs.map(r => r.dataset.category)") == [
        "Animal",
        "Background",
        "Hat",
    ], "HashLips' default: name order"
    expect(plan.nth(0)).to_contain_text("Cat weight 20, 95.2%")
    expect(plan.nth(0).locator("img.thumb")).to_have_count(2)
    page.get_by_role("button", name="Move Background up").click()
    page.get_by_label("Opacity of Hat").fill("0.9")
    page.get_by_label("Blend of Hat").select_option("MULTIPLY")
    assert plan.evaluate_all("rs => rs.map(r => r.dataset.category)") == [
        "Background",
        "Animal",
        "Hat",
    ]
    s.accessible("layers plan")
    s.shot("layers-plan")
    # (by the keyboard: a mouse click right after a full-page screenshot can land beside it)
    page.get_by_role("button", name="Import layers").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#current-layers summary")).to_contain_text("8 images, 256\u00d7256")
    stored = s.api(COLLECTION, id=cid)["collection"]
    assert [c["name"] for c in stored["traitTree"]] == ["Background", "Animal", "Hat", "id"]
    assert {"category": "Hat", "opacity": 0.9, "blend": "MULTIPLY"} in stored["layers"]["styles"]
    tree_rows = page.locator("table").first.locator("tbody tr")
    expect(tree_rows).to_have_count(4)

    # One trait's layer: a wrong size is refused with the API's message, the right one stored.
    page.locator("#current-layers summary").click()
    small = tmp_path / "crown-small.png"
    Image.new("RGBA", (32, 32), (250, 200, 0, 255)).save(small)
    page.get_by_label("Replace the layer of Hat Crown").set_input_files(str(small))
    expect(page.locator("#error .code")).to_have_text("BAD_USER_INPUT")
    expect(page.locator("#error .message")).to_contain_text(
        "the layer for Hat/Crown is 32x32, but the collection's layers are 256x256"
    )
    crown = tmp_path / "crown.png"
    silver = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    points = [(84, 90), (84, 40), (106, 66), (128, 30), (150, 66), (172, 40), (172, 90)]
    ImageDraw.Draw(silver).polygon(points, (200, 205, 215, 255))
    silver.save(crown)
    page.get_by_label("Replace the layer of Hat Crown").set_input_files(str(crown))
    expect(page.locator("#error")).to_be_hidden()
    wanted = hashlib.sha256(crown.read_bytes()).hexdigest()
    expect(page.locator("#current-layers")).to_contain_text(wanted[:12])
    layers = s.api(COLLECTION, id=cid)["collection"]["layers"]["layers"]
    assert {"category": "Hat", "trait": "Crown", "sha256": wanted} in layers
    s.accessible("collection with layers")

    # Pictures before a cook: the preview composes each drawn piece, storing nothing.
    page.get_by_label("Pieces", exact=True).fill("6")
    page.get_by_label("Seed").first.fill("42")
    page.get_by_role("button", name="Preview").click()
    pictures = page.locator("#preview img.preview-picture")
    expect(pictures).to_have_count(6)
    images_loaded(page, "#preview img")
    shown = s.api(
        "query($id: ID!) { previewLayers(collectionId: $id, count: 6, seed: 42, size: 128) "
        "{ pieces { index traits { category name } } } }",
        id=cid,
    )["previewLayers"]["pieces"]
    for i, piece in enumerate(shown):
        traits = ", ".join(f"{t['category']}: {t['name']}" for t in piece["traits"])
        expect(pictures.nth(i)).to_have_attribute("alt", f"Piece {piece['index']}: {traits}")
    assert (
        s.api("query($c: ID!) { pieces(collectionId: $c) { edges { cursor } } }", c=cid)["pieces"][
            "edges"
        ]
        == []
    )
    s.shot("preview-pictures")

    # The trait tree editor: the API checks each change as it is typed; save with the version.
    page.get_by_role("link", name="Edit the trait tree").click()
    expect(page.locator("#tree-check")).to_contain_text("The API accepts this tree: 4 categories")
    version = s.api(COLLECTION, id=cid)["collection"]["version"]
    page.get_by_label("Animal trait 1 weight").fill("5")
    page.get_by_label("Animal trait 2 name").fill("")
    expect(page.locator("#tree-check")).to_contain_text("BAD_USER_INPUT")
    expect(page.get_by_label("Animal trait 2 name")).to_have_attribute("aria-invalid", "true")
    s.accessible("tree editor (refused)")
    s.shot("tree-refused")
    page.get_by_label("Animal trait 2 name").fill("Owl")
    expect(page.locator("#tree-check")).to_contain_text("The API accepts this tree")
    page.get_by_role("button", name="Add rule").click()
    page.get_by_label("Rule 1: category").fill("Animal")
    page.get_by_label("its trait").fill("Owl")
    page.get_by_label("forbids in category").fill("Hat")
    page.get_by_label("these traits (comma-separated)").fill("Crown, Nope")
    expect(page.locator("#tree-check")).to_contain_text("'Hat' has no trait 'Nope'")
    expect(page.get_by_label("these traits (comma-separated)")).to_have_attribute(
        "aria-invalid", "true"
    )
    page.get_by_label("these traits (comma-separated)").fill("Crown")
    expect(page.locator("#tree-check")).to_contain_text("The API accepts this tree")
    page.get_by_role("button", name="Save trait tree").click()
    expect(page.locator("#tree-check")).to_have_text(f"Saved: version {version + 1}.")
    saved = s.api(COLLECTION, id=cid)["collection"]
    assert saved["version"] == version + 1
    animal = next(c for c in saved["traitTree"] if c["name"] == "Animal")
    assert animal["traits"] == [{"name": "Cat", "weight": 5.0}, {"name": "Owl", "weight": 1.0}]
    assert saved["rules"]["exclusions"] == [
        {"category": "Animal", "trait": "Owl", "excludedCategory": "Hat", "excludes": ["Crown"]}
    ]
    s.accessible("tree editor")

    # Cook, and follow its chart live: record every value the completed line shows.
    page.get_by_role("link", name="← Cult secretaries").click()
    page.get_by_label("Pieces to make").fill(str(COUNT))
    page.get_by_label("At most in flight").fill("1")
    page.locator("input[name=seed]").fill("7")
    page.evaluate(
        """() => { window.__seen = [];
        new MutationObserver(() => {
          const p = document.querySelector('#cook-chart path[data-series=completed]');
          if (p) window.__seen.push(Number(p.dataset.last)); })
        .observe(document.body, {subtree: true, childList: true}); }"""
    )
    page.get_by_role("button", name="Start cook").click()
    expect(page.locator("#chart-source")).to_contain_text("then live from cookProgress")
    expect(page.locator("#cook-status")).to_have_text("completed", timeout=60_000)
    done = page.locator("#cook-chart path[data-series=completed]")
    expect(done).to_have_attribute("data-last", str(COUNT))
    seen = page.evaluate("window.__seen")
    assert any(0 < v < COUNT for v in seen), f"the chart moved while the cook ran: {seen}"
    s.accessible("cook with chart")
    page.reload()
    expect(page.locator("#chart-source")).to_contain_text("From the event log")
    expect(done).to_have_attribute("data-last", str(COUNT))
    expect(page.locator("#cook-chart path[data-series=failed]")).to_have_attribute("data-last", "0")
    s.shot("cook-chart")

    # Review the images: reject the first two, accept the rest.
    page.get_by_role("link", name="Review pieces").click()
    images = page.locator("#gallery img")
    expect(images).to_have_count(COUNT)
    images_loaded(page, "#gallery img")
    s.shot("layers-gallery")
    # Twenty decisions are two full batches: each is saved as it fills (the studio's own
    # test saves a part batch with the button; here a click would race the second batch).
    for key in ["r", "r", *["a"] * (COUNT - 2)]:
        page.keyboard.press(key)
    expect(page.locator("#queue")).to_have_text("Saved 10 decisions.")
    expect(page.get_by_role("button", name="Save decisions now")).to_be_disabled()
    pending = (
        "query($c: ID!) { pieces(collectionId: $c, filter: {review: [PENDING]}, first: 1)"
        " { edges { node { id } } } }"
    )
    for _ in range(100):  # the first batch's answer may come after the second was sent
        if not s.api(pending, c=cid)["pieces"]["edges"]:
            break
        time.sleep(0.05)
    assert not s.api(pending, c=cid)["pieces"]["edges"], "every decision saved"

    # Rarity: the chart and its table show exactly collectionAnalytics' numbers.
    page.goto(f"{s.base}/studio#/collections/{cid}/rarity")
    expect(page.get_by_role("heading", name="Rarity")).to_be_visible()
    analytics = s.api(
        "query($id: ID!) { collectionAnalytics(collectionId: $id) { pieces approvalRate "
        "traits { category name drawn share expectedShare approvalRate } } }",
        id=cid,
    )["collectionAnalytics"]
    assert analytics["pieces"] == COUNT
    for t in analytics["traits"]:
        row = page.locator(f'tr[data-trait="{t["category"]}/{t["name"]}"]')
        expect(row.locator(".drawn")).to_have_text(str(t["drawn"]))
        expect(row.locator(".share")).to_have_text(f"{t['share'] * 100:.1f}%")
        expect(row.locator(".expected")).to_have_text(f"{t['expectedShare'] * 100:.1f}%")
        chart = page.locator(f'section[data-category="{t["category"]}"] svg')
        for series, key in (("drawn share", "share"), ("expected share", "expectedShare")):
            bar = chart.locator(f'rect[data-series="{series}"][data-label="{t["name"]}"]')
            assert float(bar.get_attribute("data-value") or "nan") == pytest.approx(t[key])
    s.accessible("rarity")
    s.shot("rarity")

    # A trait's row opens the gallery filtered to it: exactly the pieces that drew it.
    owl = next(t for t in analytics["traits"] if 0 < t["drawn"] < COUNT)
    page.locator(f'tr[data-trait="{owl["category"]}/{owl["name"]}"] a').click()
    # (within the gallery's filters: until the gallery renders, the rarity section of that
    # category, labelled by its heading, is what the label names)
    filters = page.locator("#trait-filters")
    expect(filters.get_by_label(owl["category"], exact=True)).to_have_value(owl["name"])
    tiles = page.locator("#gallery .tile")
    expect(tiles).to_have_count(owl["drawn"])
    for i in range(owl["drawn"]):
        expect(tiles.nth(i).locator(".traits")).to_contain_text(owl["name"])
    s.accessible("gallery by trait")

    # Export with every option; the metadata and the provenance hash are the API's.
    page.goto(f"{s.base}/studio#/collections/{cid}")
    page.get_by_label("Name template").fill("Secretary {number}")
    page.get_by_label("Description", exact=True).fill("Eighteen secretaries")
    page.get_by_label("Image base URI").fill("ipfs://bafytest/")
    page.get_by_label("Shuffle numbers").check()
    page.get_by_label("Shuffle seed").fill("99")
    page.get_by_role("button", name="Export accepted pieces").click()
    download = page.get_by_role("button", name="Download ZIP")
    expect(download).to_be_visible(timeout=30_000)
    job = s.api(
        "query($id: ID!) { exports(collectionId: $id, first: 1) { edges { node { provenanceHash "
        "options { shuffleSeed imageBaseUri } } } } }",
        id=cid,
    )["exports"]["edges"][0]["node"]
    assert job["options"] == {"shuffleSeed": 99, "imageBaseUri": "ipfs://bafytest/"}
    expect(page.locator("code.provenance").first).to_have_text(job["provenanceHash"])
    with page.expect_download() as info:
        download.click()
    archive = tmp_path / "export.zip"
    info.value.save_as(archive)
    with zipfile.ZipFile(io.BytesIO(archive.read_bytes())) as z:
        manifest = json.loads(z.read("manifest.json"))
        assert manifest["provenance"]["hash"] == job["provenanceHash"]
        assert len(manifest["items"]) == COUNT - 2
        for item in manifest["items"]:
            meta = json.loads(z.read(item["metadata"]))
            assert meta["name"] == f"Secretary {item['number']}"
            assert meta["description"] == "Eighteen secretaries"
            assert re.fullmatch(r"ipfs://bafytest/\d{4}\.png", meta["image"]), meta["image"]
    s.shot("export-options")
    assert SCREENSHOTS.is_dir()
