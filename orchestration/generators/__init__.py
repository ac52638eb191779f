"""What makes a piece's output: generation providers and their three completion paths
(``providers``, ``provider_http``, ``image_provider``), inbound provider webhooks
(``webhooks``), and spells, chains of tools (``spells``).

May import ``orchestration.storage``, ``orchestration.art``, ``orchestration.base`` and
``domain``.
"""
