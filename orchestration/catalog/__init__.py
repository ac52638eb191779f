"""What an artist defines: collections (``collections``), their layer sets (``layer_assets``)
and the built-in ``layers`` tool that draws with them (``layer_tool``).

Every write is a conditional update on the collection's ``version``. May import
``orchestration.generators``, ``orchestration.storage``, ``orchestration.art``,
``orchestration.base`` and ``domain``.
"""
