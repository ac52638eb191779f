"""The bottom layer: who is calling (``principal``), the errors a client can see (``errors``)
and identifiers (``ids``). It imports nothing of Cook's, so ``auth/`` and ``orchestration/``
both build on it and neither imports the other's internals for these."""
