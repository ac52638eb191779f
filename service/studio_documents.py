"""The studio's trusted documents: every GraphQL document its source sends, found statically.

A document is a JavaScript string literal (backticks or double quotes) in
``service/static/studio/*.js`` that starts with ``query``, ``mutation`` or ``subscription``.
``${NAME}`` inside it is replaced by the literal of ``const NAME = ...`` in the same file (as
the browser would); an interpolation of anything else must be listed in ``VARIANTS`` with every
value it takes, or extraction fails, so no document the studio can send is silently left out.
The manifest (``persisted-documents.json``, id -> document, as GraphQL Code Generator writes it)
is written by ``bin/studio-manifest`` and checked in; a test fails when it is stale.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from service.trusted_documents import STUDIO_MANIFEST, document_id

STUDIO_DIR = STUDIO_MANIFEST.parent

# (file, interpolated name) -> every value it takes at run time.
VARIANTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("cook.js", "mutation"): ("pauseCook", "resumeCook", "cancelCook"),
}

_LITERAL = re.compile(r'`((?:[^`\\]|\\.)*)`|"((?:[^"\\\n]|\\.)*)"', re.S)
_CONST = re.compile(
    r'\bconst\s+([A-Z_][A-Z0-9_]*)\s*=\s*(`(?:[^`\\]|\\.)*`|"(?:[^"\\\n]|\\.)*")', re.S
)
_INTERPOLATION = re.compile(r"\$\{\s*([A-Za-z_$][\w$]*)\s*\}")
_DOCUMENT = re.compile(r"^\s*(query|mutation|subscription)\b")


class ExtractionError(ValueError):
    pass


def _expand(text: str, file: str, consts: dict[str, str]) -> list[str]:
    match = _INTERPOLATION.search(text)
    if match is None:
        if "${" in text:
            raise ExtractionError(f"{file}: an interpolation that is not a name: {text[:80]!r}")
        return [text]
    name = match.group(1)
    if name in consts:
        values: tuple[str, ...] = (consts[name],)
    elif (file, name) in VARIANTS:
        values = VARIANTS[(file, name)]
    else:
        raise ExtractionError(
            f"{file}: ${{{name}}} in a document is neither a const nor listed in VARIANTS"
        )
    out: list[str] = []
    for value in values:
        out += _expand(text[: match.start()] + value + text[match.end() :], file, consts)
    return out


def documents_of(path: Path) -> list[str]:
    source = path.read_text()
    consts = {m.group(1): m.group(2)[1:-1] for m in _CONST.finditer(source)}
    for name, value in consts.items():  # consts that interpolate consts
        consts[name] = _expand(value, path.name, consts)[0] if "${" in value else value
    found: list[str] = []
    for m in _LITERAL.finditer(source):
        text = m.group(1) if m.group(1) is not None else m.group(2)
        if _DOCUMENT.match(text):
            found += _expand(text, path.name, consts)
    return found


def manifest(directory: Path = STUDIO_DIR) -> dict[str, str]:
    """id -> document for every document of the studio's source, sorted by id."""
    documents = {d for path in sorted(directory.glob("*.js")) for d in documents_of(path)}
    return {document_id(d): d for d in sorted(documents, key=document_id)}


def render(documents: dict[str, str]) -> str:
    return json.dumps(documents, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    wanted = render(manifest())
    if "--check" in argv:
        stale = STUDIO_MANIFEST.read_text() != wanted
        if stale:
            sys.stderr.write(f"{STUDIO_MANIFEST} is stale: run bin/studio-manifest\n")
        return 1 if stale else 0
    STUDIO_MANIFEST.write_text(wanted)
    sys.stderr.write(f"{STUDIO_MANIFEST}: {len(manifest())} documents\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
