"""The arrows between packages point one way: import-linter's contracts (``.importlinter``) hold,
and a forbidden import breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGES = ("domain", "auth", "orchestration", "schema", "resolvers", "service")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_of_the_tree(to: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, to / package, ignore=shutil.ignore_patterns("static"))
    shutil.copy(ROOT / ".importlinter", to / ".importlinter")
    return to


def test_every_import_contract_is_kept() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_an_import_from_a_higher_concern_breaks_the_contract(tmp_path: Path) -> None:
    tree = copy_of_the_tree(tmp_path)
    draws = tree / "orchestration" / "art" / "engine.py"
    draws.write_text(draws.read_text() + "\nfrom orchestration.cooking import pieces  # noqa\n")
    done = lint_imports(tree)
    assert done.returncode != 0
    assert "orchestration.art.engine -> orchestration.cooking.pieces" in done.stdout


def test_an_import_of_the_api_from_orchestration_breaks_the_contract(tmp_path: Path) -> None:
    tree = copy_of_the_tree(tmp_path)
    module = tree / "orchestration" / "base" / "clock.py"
    module.write_text(module.read_text() + "\nimport schema.errors  # noqa\n")
    done = lint_imports(tree)
    assert done.returncode != 0
    assert "orchestration.base.clock -> schema.errors" in done.stdout
