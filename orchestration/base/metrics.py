"""The process's Prometheus metrics: every name, and the one-line hooks the code calls.

Invariant: every label value comes from a fixed, small set (statuses, outcomes, error codes,
provider ids from the configuration, route templates, command names): never an id, a user's
name or a free text. Each process counts what it did itself; ``docs/observability.md`` says
how to scrape several. Counters are observations, never read back for a decision.

The webhook deliveries counter (``webhook_deliveries``) is declared here for the outbound
webhooks: ``metrics.webhook_deliveries.labels(outcome="delivered").inc()`` and
``metrics.webhook_delivery_seconds.observe(seconds)``.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from orchestration.base import clock

# Seconds: a GraphQL operation or a database command (fast) up to a provider call (slow).
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SLOW_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

http_requests = Counter(
    "cook_http_requests", "HTTP requests answered, by route template", ["method", "route", "status"]
)
http_request_seconds = Histogram(
    "cook_http_request_seconds", "HTTP request duration", ["method", "route"], buckets=FAST_BUCKETS
)
graphql_operations = Counter(
    "cook_graphql_operations",
    "GraphQL operations by name (known names only) and outcome (ok or the first error code)",
    ["operation", "outcome"],
)
graphql_operation_seconds = Histogram(
    "cook_graphql_operation_seconds",
    "GraphQL operation duration",
    ["operation"],
    buckets=FAST_BUCKETS,
)
cooks_by_status = Gauge(
    "cook_cooks", "Cooks in the database by status (read at scrape)", ["status"]
)
slots_in_use = Gauge("cook_slots_in_use", "Pieces running now (read at scrape)")
slots_available = Gauge(
    "cook_slots_available", "maxConcurrent summed over running cooks (read at scrape)"
)
pieces_settled = Counter(
    "cook_pieces",
    "Attempt outcomes applied by this process: completed, failed, retried",
    ["outcome"],
)
piece_attempt_seconds = Histogram(
    "cook_piece_attempt_seconds",
    "From an attempt's start to its applied outcome",
    ["outcome"],
    buckets=SLOW_BUCKETS,
)
piece_queue_seconds = Histogram(
    "cook_piece_queue_wait_seconds",
    "From a piece's creation to its first attempt's start",
    buckets=SLOW_BUCKETS,
)
provider_calls = Counter(
    "cook_provider_calls", "Requests to generation providers", ["provider", "outcome"]
)
provider_call_seconds = Histogram(
    "cook_provider_call_seconds", "Provider request duration", ["provider"], buckets=SLOW_BUCKETS
)
rate_limit_refusals = Counter(
    "cook_rate_limit_refusals", "Requests refused by a rate limit", ["scope"]
)
relay_lag_seconds = Histogram(
    "cook_event_relay_lag_seconds",
    "From an event's recording to its numbering in the cook's log",
    buckets=FAST_BUCKETS,
)
media_bytes_stored = Counter("cook_media_stored_bytes", "Bytes written to the media store")
media_bytes_served = Counter("cook_media_served_bytes", "Bytes of stored files sent to callers")
db_command_seconds = Histogram(
    "cook_db_command_seconds",
    "Database command duration (PyMongo command monitoring)",
    ["command", "outcome"],
    buckets=FAST_BUCKETS,
)
webhook_deliveries = Counter("cook_webhook_deliveries", "Outbound webhook deliveries", ["outcome"])
webhook_delivery_seconds = Histogram(
    "cook_webhook_delivery_seconds", "Outbound webhook delivery duration", buckets=SLOW_BUCKETS
)


def _since(moment: datetime | None) -> float | None:
    return None if moment is None else max(0.0, (clock.now() - moment).total_seconds())


def attempt_started(attempt: int, created_at: datetime) -> None:
    """A piece's attempt begins: its first one's queue wait is observed."""
    if attempt == 1 and (waited := _since(created_at)) is not None:
        piece_queue_seconds.observe(waited)


def attempt_settled(status: str, started_at: datetime | None) -> None:
    """An attempt's outcome was applied; ``status`` is the piece's after it: ``completed``,
    ``failed``, ``retrying`` (counted as ``retried``) or ``cancelled``."""
    outcome = "retried" if status == "retrying" else status
    pieces_settled.labels(outcome=outcome).inc()
    if (took := _since(started_at)) is not None:
        piece_attempt_seconds.labels(outcome=outcome).observe(took)


def provider_call(provider: str, outcome: str, seconds: float) -> None:
    provider_calls.labels(provider=provider, outcome=outcome).inc()
    provider_call_seconds.labels(provider=provider).observe(seconds)


def events_relayed(recorded_at: list[datetime]) -> None:
    now = clock.now()
    for at in recorded_at:
        relay_lag_seconds.observe(max(0.0, (now - at).total_seconds()))
