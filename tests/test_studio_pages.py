"""How the studio and GraphiQL are served: from Cook alone, under a strict policy, the SDL
only in development, and the banner's token command working as printed."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from auth.tokens import identify
from service.cli import token_command
from service.identity import build_verifier
from service.settings import Settings
from service.studio import STATIC
from tests.api import Api, running_app

ROOT = Path(__file__).resolve().parent.parent
PAGES = [STATIC / "studio" / "index.html", STATIC / "graphiql" / "index.html"]


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.refs += [v for k, v in found.items() if k in ("src", "href") and v]
        if tag == "script" and "src" not in found:
            self.inline.append("a script without src")
        if tag == "style" or "style" in found or any(k.startswith("on") for k in found):
            self.inline.append(f"inline style or handler on <{tag}>")


async def test_the_studio_is_sent_with_a_strict_content_security_policy(api: Api) -> None:
    response = await api.client.get("/studio")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "style-src 'self';" in policy
    assert "connect-src 'self' ws://cook.test wss://cook.test" in policy
    assert "unsafe" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    script = await api.client.get("/studio/assets/studio/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["x-content-type-options"] == "nosniff"


def test_the_pages_load_every_asset_from_cook_and_hold_no_inline_script_or_style() -> None:
    for page in PAGES:
        parser = _Refs()
        parser.feed(page.read_text())
        assert parser.inline == [], page
        assert parser.refs, page
        for ref in parser.refs:
            assert ref.startswith(("/", "#")), (page, ref)
            assert not ref.startswith("//"), (page, ref)
    for own in [*STATIC.glob("studio/*.[jc]s*"), *STATIC.glob("graphiql/*.[jc]s*")]:
        text = own.read_text().replace('"http://www.w3.org/2000/svg"', "")  # a namespace name
        assert not re.search(r"https?://|url\(", text), f"{own} names another origin"
    vendored_css = (STATIC / "vendor" / "graphiql.min.css").read_text()
    data_urls = re.findall(r"url\(['\"]?data:", vendored_css)
    assert len(data_urls) == vendored_css.count("url("), "GraphiQL's fonts and icons are inline"


def test_the_vendored_assets_are_exactly_the_pinned_npm_files() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "vendor-assets"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


async def test_graphiql_and_the_schema_sdl_are_served_in_development(api: Api) -> None:
    page = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "/studio/assets/vendor/graphiql.min.js" in page.text
    assert "script-src 'self';" in page.headers["content-security-policy"]
    sdl = await api.client.get("/graphql/schema.graphql")
    assert sdl.status_code == 200
    assert sdl.text == (ROOT / "schema.graphql").read_text()


async def test_production_serves_the_studio_but_neither_graphiql_nor_the_sdl(
    settings: Settings, tmp_path: Path
) -> None:
    key = generate_private_key(SECP256R1()).public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "pub.pem").write_bytes(pem)
    production = settings.model_copy(
        update={"env": "production", "jwt_public_key_file": tmp_path / "pub.pem"}
    )
    async with running_app(production) as prod:
        assert (await prod.client.get("/studio")).status_code == 200
        ide = await prod.client.get("/graphql", headers={"Accept": "text/html"})
        assert "graphiql" not in ide.text.lower()
        assert (await prod.client.get("/graphql/schema.graphql")).status_code == 404


def test_the_banners_token_command_works_as_printed_from_any_directory(
    settings: Settings, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    custom = settings.model_copy(
        update={"jwt_issuer": "studio-test", "jwt_audience": "cook-studio"}
    )
    minted = subprocess.run(
        ["bash", "-c", token_command(custom)],
        cwd=elsewhere,
        env={k: v for k, v in os.environ.items() if not k.startswith("COOK_")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert not (elsewhere / ".cook-data").exists()
    verifier = build_verifier(custom)
    principal, error = asyncio.run(identify(verifier, f"Bearer {minted.stdout.strip()}"))
    assert error is None
    assert principal is not None
    assert principal.subject == "alice"


async def test_the_docs_test_tool_example_creates_a_collection_from_a_trait_tree_file(
    api: Api,
) -> None:
    readme = (ROOT / "docs" / "generators.md").read_text()
    example = re.search(
        r"```graphql\n(mutation \{\n  createCollection\(input: \{\n    name: \"Slow hats\".*?)```",
        readme,
        re.S,
    )
    assert example, "docs/generators.md shows a test tool example"
    created = (await api.data(example.group(1)))["createCollection"]
    found = await api.data(
        "query($id: ID!) { collection(id: $id) { template traitTree { name } traitTreeFile } }",
        {"id": created["id"]},
    )
    collection = found["collection"]
    assert collection["template"]["latencyMs"] == 300
    assert [c["name"] for c in collection["traitTree"]] == ["Hat"]
    weights = [t["rarity"] for t in collection["traitTreeFile"]["categories"][0]["traits"]]
    assert weights == [0.5, 2], "the file's defaults and aliases, as importTraitTree reads them"


async def test_a_trait_tree_and_a_trait_tree_file_together_are_refused(api: Api) -> None:
    error = await api.error(
        'mutation { createCollection(input: {name: "x", totalSupply: 1, '
        'generator: {toolId: "prompt"}, template: {prompt: "p"}, '
        'traitTree: [{manual: {name: "A", traits: [{name: "a"}]}}], '
        "traitTreeFile: {categories: []}}) { id } }"
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "input.traitTreeFile"
    assert await api.count_collections() == 0
