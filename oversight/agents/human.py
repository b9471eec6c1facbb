"""People at the top of a hierarchy: their work arrives through the escalation queue."""

from __future__ import annotations

from ._base import Agent, register_role


@register_role("human")
class HumanAgent(Agent):
    """A placeholder for the reviewers behind the queue (options: ``reviewers_per_case``)."""
