"""The cyclic garbage collector of Cook's long-running processes: blind to startup, and full
collections rare.

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
- thresholds of ``THRESHOLDS``: CPython's own for the young and middle generations (their
  collections stay small: at most 22 ms measured below), and a full collection only every
  1,000 middle ones instead of every 10 (and then only when CPython's own rule finds the
  long-lived objects grown by a quarter).

Measured on ``cook serve`` running a 2,000-piece cook, the gallery page, then 1,000
subscribers twice (gc callbacks timing each collection): no full collection, the longest
pause 22 ms. With the default thresholds and the freeze: four full collections of up to
234 ms. With larger young thresholds (20,000 / 50 / 100, the first choice here) one middle
collection took 507 ms: the middle generation had grown to hundreds of thousands of objects.

Memory: garbage without cycles is freed at once as before, and so are cycles among young
objects. Cycles among objects that lived through two collections wait longer for a full
collection. Frozen objects are still freed by reference counting when nothing refers to them.
"""

from __future__ import annotations

import gc

THRESHOLDS = (2_000, 10, 1_000)


def tune() -> None:
    """Freeze what is alive now and make full collections rare (module docstring)."""
    gc.collect()  # what startup left in cycles is freed, not frozen for good
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
