"""Who am I, and what can I use."""

from __future__ import annotations

from orchestration.tools import TOOLS
from schema.context import Info
from schema.types import Tool, Viewer


def viewer(info: Info) -> Viewer:
    """The caller, as their verified token says."""
    return Viewer.from_principal(info.context.require_principal())


def tools() -> list[Tool]:
    """The generator tools a collection can name."""
    return [Tool.from_domain(spec) for spec in TOOLS.values()]
