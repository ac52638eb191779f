"""Traces: with a tracer provider (the SDK's in-memory exporter here, OTLP in a deployment) one
``startCook`` is a span tree from the HTTP request through the GraphQL operation and resolver
down to each database command; each piece attempt and provider call is a span with the cook
and piece ids. Without one, no SDK object exists and no span is made."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestration.base import observed
from service import observability
from service.settings import Settings
from tests.api import start_cook, wait_for_cook, with_test_tool
from tests.conftest import running


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    chain = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


async def test_one_start_cook_is_a_span_tree_down_to_the_database_commands(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(observability, "tracer_provider_from_env", lambda: provider)
    async with running(settings) as api:
        collection = await api.create_collection(**with_test_tool())
        exporter.clear()
        cook = await start_cook(api, collection["id"], count=2)
        await wait_for_cook(api, cook["id"])
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}

    resolver = next(s for s in spans if s.name == "GraphQL Resolving: startCook")
    chain = ancestors(resolver, by_id)
    names = [s.name for s in chain]
    assert any(n.startswith("POST /graphql") for n in names), names  # the HTTP request
    assert any(n.startswith("GraphQL") for n in names), names  # the operation
    commands = [s for s in spans if s.attributes and s.attributes.get("db.system") == "mongodb"]
    under = [s for s in commands if resolver in ancestors(s, by_id)]
    assert under, [s.name for s in commands][:20]  # the resolver's database commands
    one_trace = {s.context.trace_id for s in [resolver, *chain, *under]}
    assert len(one_trace) == 1

    attempts = [s for s in spans if s.name == "piece.attempt"]
    assert len(attempts) == 2
    assert {a.attributes["cook.id"] for a in attempts if a.attributes} == {cook["id"]}
    calls = [s for s in spans if s.name == "provider.call"]
    assert {c.parent.span_id for c in calls if c.parent} == {a.context.span_id for a in attempts}
    assert all(c.attributes and c.attributes["provider"] == "test" for c in calls)
    assert observed._tracer is None  # the app's end removed its tracer


def test_without_an_otlp_endpoint_no_tracer_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert observability.tracer_provider_from_env() is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    made = observability.tracer_provider_from_env()
    assert made is not None
    made.shutdown()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert observability.tracer_provider_from_env() is None
