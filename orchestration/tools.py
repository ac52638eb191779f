"""The registry of generator tools a collection may name.

Only the registry lives here for now; running tools comes with the orchestrator.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ToolSpec:
    id: str
    description: str


TOOLS: dict[str, ToolSpec] = {
    spec.id: spec
    for spec in (ToolSpec("prompt", "Renders the filled template to text; completes at once."),)
}
