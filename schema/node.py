"""The Relay ``Node`` interface: every object with a Cook id can be refetched by that id.

Cook's ids are already globally unique (``col_``, ``ck_``, ``pc_``, ``spl_``, ``exp_``,
``whe_`` and 32 hex digits, see ``domain/ids.py``), so they serve as Relay global ids as they
are: no base64 ``GlobalID`` wrapping, and the id a typed field returns is the id ``node(id:)``
takes.
"""

from __future__ import annotations

import strawberry


@strawberry.interface(
    description="An object with a globally unique id, refetchable with `node(id:)` (Relay)."
)
class Node:
    id: strawberry.ID
