"""Cooks and their pieces, held by the database: cooks (``cooks``), the piece store
(``pieces``, ``piece_model``, ``piece_listing``), the event log with its outboxes and relay
(``events``), the orchestrator's user operations and sweeper (``orchestrator``) over filling
slots (``scheduling``), calling tools (``attempts``), the one completion function
(``completion``), review (``reviewing``), provider runs (``runs``), spell casts (``casts``) and
the live progress feed (``progress``).

Every transition is one conditional update of one document or is refused by a unique index.
May import ``orchestration.catalog`` and every package below it.
"""
