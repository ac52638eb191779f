"""Trusted (persisted) documents: which GraphQL documents a client may run by id, and whether
it may run any other.

A manifest is the map of id -> document that Relay's compiler (``persisted_queries.json``) and
GraphQL Code Generator's client preset (``persisted-documents.json``) emit; Apollo's
``{"format": "apollo-persisted-query-manifest", "operations": [{"id", "body"}]}`` is read too.
Ids are the documents' SHA-256 in hex, with or without a ``sha256:`` prefix. A request names one
with ``{"documentId": ...}`` (GraphQL-over-HTTP) or ``extensions.persistedQuery.sha256Hash``
(automatic persisted queries' shape; only documents already in a manifest are ever run).

Modes (``COOK_TRUSTED_DOCUMENTS``): ``optional`` (ids and arbitrary documents both run),
``required`` (a caller who is not an admin runs only documents of the manifests) and ``record``
(development: every document sent is added to a manifest file). The manifests are read once at
start and never change in memory: they are configuration, not state.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

STUDIO_MANIFEST = Path(__file__).parent / "static" / "studio" / "persisted-documents.json"
NOT_FOUND_CODE = "PERSISTED_QUERY_NOT_FOUND"
NOT_TRUSTED_CODE = "PERSISTED_QUERY_REQUIRED"


class Mode(StrEnum):
    OPTIONAL = "optional"
    REQUIRED = "required"
    RECORD = "record"


class Untrusted(Exception):
    """A request naming an unknown document, or sending one that is not trusted."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def document_id(document: str) -> str:
    """A document's id: ``sha256:`` and the hex SHA-256 of its exact text."""
    return "sha256:" + hashlib.sha256(document.encode()).hexdigest()


def _key(ident: str) -> str:
    return ident.removeprefix("sha256:").lower()


def read_manifest(path: Path) -> dict[str, str]:
    """A manifest file as id -> document; a malformed one stops the start with a clear error."""
    raw: Any = json.loads(path.read_text())
    if isinstance(raw, dict) and raw.get("format") == "apollo-persisted-query-manifest":
        raw = {op["id"]: op["body"] for op in raw.get("operations", [])}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise ValueError(f"{path}: a trusted-documents manifest is a JSON map of id -> document")
    return raw


@dataclass(frozen=True)
class TrustedDocuments:
    mode: Mode = Mode.OPTIONAL
    documents: Mapping[str, str] = field(default_factory=dict)  # sha256 hex -> document
    record_to: Path | None = None

    @classmethod
    def load(
        cls, mode: Mode, manifests: Iterable[Path], record_to: Path | None = None
    ) -> TrustedDocuments:
        documents: dict[str, str] = {}
        for path in manifests:
            for ident, text in read_manifest(path).items():
                documents[_key(ident)] = text
        return cls(mode, documents, record_to)

    def resolve(self, data: dict[str, Any]) -> dict[str, Any]:
        """The request with ``query`` filled in from the manifest when it names a document."""
        extensions = data.get("extensions")
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        ident = data.get("documentId")
        if ident is None and isinstance(persisted, dict):
            ident = persisted.get("sha256Hash")
        if ident is None:
            return data
        if not isinstance(ident, str):
            raise Untrusted(NOT_FOUND_CODE, "a document id must be a string")
        text = self.documents.get(_key(ident))
        if text is None:
            raise Untrusted(NOT_FOUND_CODE, f"no trusted document has the id {ident[:80]!r}")
        return {**{k: v for k, v in data.items() if k != "documentId"}, "query": text}

    def check(self, query: str, *, is_admin: bool) -> None:
        """Refuse a document outside the manifests when they are required (admins excepted);
        in record mode, add it to the recorded manifest."""
        if self.mode is Mode.RECORD:
            self.record(query)
        if self.mode is not Mode.REQUIRED or is_admin:
            return
        if _key(document_id(query)) not in self.documents:
            raise Untrusted(
                NOT_TRUSTED_CODE, "this server runs only trusted documents: send a documentId"
            )

    def record(self, query: str) -> None:
        """Development only: merge the document into the record file (written atomically)."""
        if self.record_to is None:
            return
        ident = document_id(query)
        path = self.record_to
        known = read_manifest(path) if path.exists() else {}
        if ident in known:
            return
        known[ident] = query
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".documents-")
        with os.fdopen(fd, "w") as out:
            json.dump(known, out, indent=2, sort_keys=True)
            out.write("\n")
        os.replace(tmp, path)


def from_settings(settings: Any) -> TrustedDocuments:
    """The studio's manifest, the operator's, and the record file when recording."""
    record_to = settings.trusted_documents_record_file or (
        settings.data_dir / "recorded-documents.json"
    )
    manifests = [STUDIO_MANIFEST]
    if settings.trusted_documents_manifest is not None:
        manifests.append(settings.trusted_documents_manifest)
    loaded = TrustedDocuments.load(Mode(settings.trusted_documents), manifests, record_to)
    # `cook watch` is Cook's own client too: its subscription as gql sends it (printed).
    from graphql import parse, print_ast

    from service.watch import PROGRESS

    watch = print_ast(parse(PROGRESS))
    documents = {_key(document_id(watch)): watch, **loaded.documents}
    return TrustedDocuments(loaded.mode, documents, loaded.record_to)
