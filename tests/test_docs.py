"""The README starts fast and stays true, and the documentation site builds with no broken link."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.processes import api_process

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_the_readme_is_short_and_gives_its_two_commands_first() -> None:
    lines = README.splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; reference belongs in docs/"
    first = "\n".join(lines[:30])
    assert "bin/serve" in first
    assert "bin/test" in first


def test_the_documentation_site_builds_strictly(tmp_path: Path) -> None:
    """``mkdocs build --strict``: a broken link, a missing anchor or a page left out of the
    navigation fails the build, so it fails this test."""
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "mkdocs"),
            "build",
            "--strict",
            "--quiet",
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "search" / "search_index.json").is_file()


def test_the_readmes_first_cook_makes_an_exported_collection_of_images(tmp_path: Path) -> None:
    """The five minutes the README walks: ``examples/first_cook.py`` against ``cook serve``."""
    data = tmp_path / "data"
    with api_process({}, data, tmp_path / "serve.log") as base:
        cook = str(Path(sys.executable).parent / "cook")
        env = {**os.environ, "COOK_DATA_DIR": str(data)}
        token = subprocess.run(
            [cook, "token", "--sub", "alice"], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        archive = tmp_path / "first-cook.zip"
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "first_cook.py")],
            env={
                **os.environ,
                "COOK_URL": base,
                "COOK_TOKEN": token,
                "COOK_FIRST_COOK_OUT": str(archive),
            },
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cook completed" in done.stdout
    names = zipfile.ZipFile(archive).namelist()
    assert sum(n.startswith("images/") for n in names) == 20
    assert sum(n.startswith("metadata/") and n.endswith(".json") for n in names) == 20
