"""The domain and its data access, with no GraphQL: packages by concern, each importing only
the ones below it (``.importlinter`` states it, ``tests/test_architecture.py`` checks it).

From the top: ``services`` (the composition root), ``notifications`` and ``results``,
``cooking``, ``catalog``, ``generators``, ``storage``, ``art``, ``base``. See
docs/architecture.md.
"""
