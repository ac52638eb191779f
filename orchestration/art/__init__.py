"""The art, with no database: trait trees and their validation (``traits``), templates and
``[[Category]]`` filling (``template``), reproducible draws (``engine``), HashLips layer
compositing (``layers``), the pool of worker processes it runs in (``compositing``), previews
composed in memory (``layer_preview``) and reading HashLips ZIPs (``layer_import``).

The same traits and seed always make the same piece. May import ``orchestration.base`` and
``domain``.
"""
