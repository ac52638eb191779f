"""The ground of orchestration: what every concern above shares, importing nothing above it.

Owns the clock (the one source of time, so tests can move it), owner scoping of filters
(``scope``), cursor pagination, the cook policy numbers, background task supervision,
single-flight calls, the tool protocol (``tools``: what any generator is called with and
answers), the notification marker an ending transition writes (``notify_marker``), the
operator's metrics and log/trace context (``metrics``, ``observed``), rate-limit counting
that is bounded and fails open (``limit_storage``) and the declared shard keys
(``sharding``). May import only ``domain`` and libraries.
"""
