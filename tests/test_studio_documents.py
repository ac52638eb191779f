"""The studio's trusted documents: extracted from its source, checked in, valid for a real
client toolchain (``gql``'s client-side validation against ``schema.graphql``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gql import Client, gql

from service import studio_documents
from service.trusted_documents import STUDIO_MANIFEST, read_manifest

SCHEMA = Path(__file__).parent.parent / "schema.graphql"


def test_the_checked_in_studio_manifest_is_what_its_source_sends() -> None:
    assert STUDIO_MANIFEST.read_text() == studio_documents.render(studio_documents.manifest()), (
        "service/static/studio/persisted-documents.json is stale: run bin/studio-manifest"
    )
    assert studio_documents.main(["--check"]) == 0


def test_every_document_the_studio_sends_validates_against_the_schema_with_gql() -> None:
    client = Client(schema=SCHEMA.read_text())
    documents = read_manifest(STUDIO_MANIFEST)
    assert len(documents) >= 20
    for text in documents.values():
        client.validate(gql(text))  # raises GraphQLError on any invalid document


def test_gql_validation_catches_a_document_the_schema_does_not_have() -> None:
    client = Client(schema=SCHEMA.read_text())
    with pytest.raises(Exception, match="noSuchField"):
        client.validate(gql("query { viewer { noSuchField } }"))


def test_a_studio_document_with_an_unlisted_interpolation_stops_extraction(tmp_path: Path) -> None:
    (tmp_path / "x.js").write_text("const q = `query Q { ${field} }`;\n")
    with pytest.raises(studio_documents.ExtractionError, match="field"):
        studio_documents.manifest(tmp_path)


def test_a_const_is_interpolated_as_the_browser_would(tmp_path: Path) -> None:
    (tmp_path / "x.js").write_text(
        'const F = "id name";\nconst Q = `query Q { viewer { ${F} } }`;\n'
    )
    assert list(studio_documents.manifest(tmp_path).values()) == ["query Q { viewer { id name } }"]
