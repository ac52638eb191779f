"""The event log checked against the pieces: what the documents' final states imply."""

from __future__ import annotations

from collections import Counter
from typing import Any

OUTCOME_EVENT = {
    "completed": "piece_completed",
    "retrying": "piece_retrying",
    "failed": "piece_failed",
}
TERMINAL_EVENT = {
    "completed": "cook_completed",
    "failed": "cook_failed",
    "cancelled": "cook_cancelled",
}


def implied_events(cook: dict[str, Any], pieces: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    """The events the documents' final states imply: per piece attempt its submission and its
    settled outcome, a rejection once, the cook's start and, once ended, its terminal event."""
    implied: Counter[tuple[Any, ...]] = Counter({("cook_started", None, None): 1})
    if cook["status"] in TERMINAL_EVENT:
        implied[(TERMINAL_EVENT[cook["status"]], None, None)] += 1
    for p in pieces:
        for attempt in range(1, p["attempt"] + 1):
            implied[("piece_submitted", p["_id"], attempt)] += 1
        for a in p["attempts"]:
            implied[(OUTCOME_EVENT[a["outcome"]], p["_id"], a["attempt"])] += 1
        if p.get("review") == "rejected":
            implied[("piece_rejected", p["_id"], None)] += 1
    return implied


CONTROL_EVENTS = {"cook_paused", "cook_resumed", "cook_cancelling", "piece_progress"}


def log_mismatches(
    cook: dict[str, Any], pieces: list[dict[str, Any]], events: list[dict[str, Any]]
) -> list[str]:
    """How the cook's log differs from what its documents imply (nothing: an empty list)."""
    logged: Counter[tuple[Any, ...]] = Counter(
        (e["type"], e.get("pieceId"), e.get("attempt") if e["type"] != "piece_rejected" else None)
        for e in events
        if e["type"] not in CONTROL_EVENTS
    )
    implied = implied_events(cook, pieces)
    problems = [f"missing {k} x{n}" for k, n in (implied - logged).items()]
    problems += [f"unexpected {k} x{n}" for k, n in (logged - implied).items()]
    ordered = sorted(events, key=lambda e: e["seq"])
    terminal = [e for e in ordered if e["type"] in TERMINAL_EVENT.values()]
    if terminal and any(
        e["type"] in CONTROL_EVENTS - {"piece_progress"}
        for e in ordered
        if e["seq"] > terminal[0]["seq"]
    ):
        problems.append("a cook event after its terminal event")
    return problems
