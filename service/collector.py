"""The cyclic garbage collector of Cook's long-running processes: rarer, and blind to startup.

CPython frees an object as soon as its last reference goes; the cyclic collector only finds
objects that refer to each other. By default it runs a young collection every 2,000 net
allocations of container objects, and every hundredth one is a *full* collection, which walks
every tracked object of the process: the modules, the schema, and every open connection's
handler, task and context. Measured on ``cook serve`` with 1,000 ``cookProgress`` subscribers
(bench section 3, 75 pieces): two full collections per run, of 100-230 ms each, during which
no event went out to anyone, and 0.7 s of collector time in all; the gallery page's run had a
107 ms one; the embedded server five of up to 53 ms.

``tune()``, called once the process has built what it keeps (after the app or the engine is
made), does two things:

- ``gc.freeze()``: everything alive then (imports, the app, the schema, the engine) moves to
  the permanent generation, which no collection walks again;
- thresholds of ``THRESHOLDS``: a young collection every 20,000 net allocations, a middle one
  every 50 of those, a full one every 100 middle ones (and then only when CPython's own rule
  finds the long-lived objects grown by a quarter). Measured on the same run: no full
  collection, 25 young ones, 0.14 s of collector time in all; in two interleaved pairs the
  delivery p99 was 0.78 and 0.93 s against 2.2 and 2.6 s.

Memory: garbage without cycles is freed at once as before; garbage in cycles lives up to ten
times longer before a young collection frees it, which is a few megabytes at most. A process
that must not keep startup objects walkable for debugging (``gc.get_objects`` still sees
them) loses nothing: frozen objects are still counted and freed by reference counting.
"""

from __future__ import annotations

import gc

THRESHOLDS = (20_000, 50, 100)


def tune() -> None:
    """Freeze what is alive now and make collections rarer (module docstring)."""
    gc.collect()  # what startup left in cycles is freed, not frozen for good
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
