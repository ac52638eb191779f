"""/metrics: scraped during and after a cook and parsed with prometheus_client's own parser,
its counters agree with the database, its histograms with the operations made, and no label
carries an id. Counters are per process and cumulative, so each check compares the
difference between two scrapes around what the test did."""

from __future__ import annotations

import re
from collections import defaultdict

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from tests.api import Api, pieces_of, start_cook, wait_for_cook, with_test_tool
from tests.conftest import MakeApi

type Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

ID_LIKE = re.compile(r"[0-9a-f]{16,}|^(col|cook|pc|ev|exp)_", re.IGNORECASE)


async def scrape(api: Api) -> tuple[Samples, list[str]]:
    """Every sample by (name, labels), and every label value seen."""
    response = await api.client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = parsed(response.text)
    return samples, [value for _, labels in samples for _, value in labels]


def parsed(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


async def test_piece_counters_and_histograms_agree_with_the_cook_and_carry_no_ids(
    api: Api,
) -> None:
    collection = await api.create_collection(
        **with_test_tool(failureRate=0.3, permanentFailureRate=0.2, duplicates=2, latencyMs=5)
    )
    before, _ = await scrape(api)
    cook = await start_cook(
        api, collection["id"], count=24, maxConcurrent=4, maxFailures=24, seed=7
    )
    during, during_labels = await scrape(api)
    done = await wait_for_cook(api, cook["id"])
    pieces = await pieces_of(api, cook["id"])
    after, labels = await scrape(api)

    numbers = done["numbers"]
    assert done["status"] == "COMPLETED"
    attempts = sum(p["attempt"] for p in pieces)
    assert numbers["failed"] > 0
    assert attempts > len(pieces)
    # Every outcome was delivered twice; each counts once, as in the database.
    assert delta(before, after, "cook_pieces_total", outcome="completed") == numbers["completed"]
    assert delta(before, after, "cook_pieces_total", outcome="failed") == numbers["failed"]
    assert delta(before, after, "cook_pieces_total", outcome="retried") == attempts - len(pieces)
    # One tool call and one settled attempt per attempt; one queue wait per piece.
    assert delta(before, after, "cook_provider_calls_total", provider="test") == attempts
    assert delta(before, after, "cook_provider_call_seconds_count", provider="test") == attempts
    assert delta(before, after, "cook_piece_attempt_seconds_count") == attempts
    assert delta(before, after, "cook_piece_queue_wait_seconds_count") == len(pieces)
    assert delta(before, after, "cook_event_relay_lag_seconds_count") >= len(pieces)
    assert delta(before, after, "cook_db_command_seconds_count", command="find") > 0
    # The gauges read the database at scrape time.
    assert total(during, "cook_cooks", status="running") >= 1
    assert total(after, "cook_cooks", status="completed") >= 1
    assert total(after, "cook_slots_in_use") == 0

    ids = {cook["id"], collection["id"], *(p["id"] for p in pieces)}
    for value in labels + during_labels:
        assert value not in ids, value
        assert not ID_LIKE.search(value), value


async def test_graphql_and_http_histograms_count_each_operation_once_by_bounded_name(
    api: Api,
) -> None:
    token = api.token("alice")
    before, _ = await scrape(api)
    sent: defaultdict[tuple[str, str], int] = defaultdict(int)

    async def send(query: str, name: str, outcome: str) -> None:
        body = {"query": query}
        response = await api.client.post(
            "/graphql", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200
        sent[(name, outcome)] += 1

    for _ in range(3):
        await send(
            "query Collections { collections(first: 1) { pageInfo { hasNextPage } } }",
            "collections",
            "ok",
        )
    await send(
        "query COLLECTIONS { collections(first: 1) { pageInfo { hasNextPage } } }",
        "collections",
        "ok",
    )
    await send("{ collections(first: 1) { pageInfo { hasNextPage } } }", "other", "ok")
    await send(
        "query MyOwnName123 { collections(first: 1) { pageInfo { hasNextPage } } }", "other", "ok"
    )
    await send('query Cook { cook(id: "cook_0000") { id } }', "cook", "BAD_USER_INPUT")
    await send("query Collections { nosuchfield }", "collections", "BAD_USER_INPUT")
    after, labels = await scrape(api)

    for (name, outcome), n in sent.items():
        got = delta(before, after, "cook_graphql_operations_total", operation=name, outcome=outcome)
        assert got == n, (
            name,
            outcome,
            got,
            [k for k in after if k[0] == "cook_graphql_operations_total"],
        )
    posts = sum(sent.values())
    assert delta(before, after, "cook_graphql_operation_seconds_count") == posts
    got = delta(before, after, "cook_http_request_seconds_count", method="POST", route="/graphql")
    assert got == posts
    assert "MyOwnName123" not in labels
    assert "COLLECTIONS" not in labels


async def test_metrics_in_production_need_the_metrics_token(make_api: MakeApi, api: Api) -> None:
    public = api.keys.public_pem.decode()
    guarded = await make_api(
        env="production", jwt_public_key=public, metrics_token=SecretStr("s3cret-m")
    )
    assert (await guarded.client.get("/metrics")).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await guarded.client.get("/metrics", headers=wrong)).status_code == 401
    right = {"Authorization": "Bearer s3cret-m"}
    response = await guarded.client.get("/metrics", headers=right)
    assert response.status_code == 200
    assert "cook_http_requests_total" in response.text
    closed = await make_api(env="production", jwt_public_key=public)
    assert (await closed.client.get("/metrics", headers=right)).status_code == 404


def test_the_docs_page_and_the_dashboard_name_exactly_the_metrics_there_are() -> None:
    from pathlib import Path

    from prometheus_client import REGISTRY

    import orchestration.base.metrics  # noqa: F401 - registers them

    docs = Path(__file__).parent.parent / "docs"
    page = (docs / "observability.md").read_text()
    dashboard = (docs / "grafana-dashboard.json").read_text()
    ours = {
        name
        for collector in list(REGISTRY._collector_to_names)
        for name in REGISTRY._collector_to_names[collector]
        if name.startswith("cook_")
    }
    families = {re.sub(r"_(total|bucket|sum|count|created)$", "", n) for n in ours}
    for name in families:
        assert f"`{name}" in page, name
    used = set(re.findall(r"cook_[a-z_]+", dashboard)) - {"cook_overview"}
    assert used, "the dashboard queries the metrics"
    for name in used:
        assert re.sub(r"_(total|bucket|sum|count)$", "", name) in families, name


async def test_each_rate_limit_refusal_is_counted_once(make_api: MakeApi) -> None:
    api = await make_api(http_rate_limit="3/minute")
    before, _ = await scrape(api)
    answers = [(await api.client.get("/no-such-route")).status_code for _ in range(5)]
    refused, missing = answers.count(429), answers.count(404)
    assert refused >= 2
    assert refused + missing == 5
    after = parsed(generate_latest().decode())  # /metrics itself would be refused now
    assert delta(before, after, "cook_rate_limit_refusals_total", scope="http") == refused
    assert delta(before, after, "cook_http_requests_total", status="429") == refused
    assert delta(before, after, "cook_http_requests_total", route="unmatched") == missing + refused
