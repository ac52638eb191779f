"""Who am I, and what can I use."""

from __future__ import annotations

from schema.context import Info
from schema.types import Tool, Viewer


def viewer(info: Info) -> Viewer:
    """The caller, as their verified token says."""
    return Viewer.from_principal(info.context.require_principal())


def tools(info: Info) -> list[Tool]:
    """The generator tools a collection or a spell step can name, with their inputs."""
    return [Tool.from_domain(spec) for spec in info.context.services.toolbox.all()]
