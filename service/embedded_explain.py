"""mongoeco 4.11.0's ``explain`` without re-reading its packaged catalog on every call.

11. **The catalog read once.** Every ``explain`` reply carries a reference to mongoeco's
    capability catalog (``build_mongodb_exchange_explain_projection``), and each call loaded
    that catalog again from the package's JSON file and validated it against its JSON Schema
    twice (``cxp``'s ``load_document``): about 140 ms of the server's CPU per ``explain`` of a
    200-document collection, nearly all of it. The file does not change while the process
    runs, and the ``Document`` it makes is immutable (frozen, its content kept as canonical
    bytes, every read a fresh copy), so ``install`` has the explain path load it once
    (``functools.cache`` on the name ``projection`` calls). The reply is the same.

``tests/test_embedded_explain.py`` compares explain replies with and without it, and counts the
catalog loads.
"""

from __future__ import annotations

import functools

from mongoeco.cxp.exchange import documents, projection


def install() -> None:
    """Make the explain path's catalog load cached (idempotent)."""
    cached = functools.cache(documents.load_mongodb_catalog)
    projection.load_mongodb_catalog = cached  # type: ignore[attr-defined]  # (a private name)
