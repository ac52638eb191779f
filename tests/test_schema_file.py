from pathlib import Path

from schema.query_cost import QueryLimits
from schema.schema import build_schema, schema, sdl

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_the_checked_in_schema_file_matches_the_code() -> None:
    expected = schema.as_str() + "\n"
    assert SCHEMA_FILE.read_text() == expected, (
        "schema.graphql is stale: run .venv/bin/cook export-schema > schema.graphql"
    )


def test_every_schema_the_app_builds_prints_the_sdl_the_studio_serves() -> None:
    built = build_schema(QueryLimits(max_depth=3), field_suggestions=False)
    assert built.as_str() + "\n" == sdl() == schema.as_str() + "\n"
