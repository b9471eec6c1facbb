"""Capabilities: what an agent can be asked to do, as small protocols.

The runtime never asks "is this a CriticAgent?" but "who assesses this?": an agent has a
capability when it has the method (``isinstance(agent, Assesses)``), whatever its class. So a
role registered outside the package (``@register_role("my-critic")`` on a class with an
``assess`` method) is served on the bus and runs in a hierarchy with no runtime edit.

=========== ============= ===========================================================
capability  protocol      method
=========== ============= ===========================================================
``draft``   :class:`Drafts`   ``draft(ctx) -> Draft``
``assess``  :class:`Assesses` ``assess(ctx, candidate_id) -> finding(s)``
``audit``   :class:`Audits`   ``audit(ctx, *, subject_message, ...) -> Audit``
``rank``    :class:`Ranks`    ``rank(ctx, candidate_ids) -> Judgment``
``revise``  :class:`Revises`  ``revise(ctx, candidate_id, principles, round_, first_id)``
=========== ============= ===========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..messages import (
        Audit,
        Capability,
        Critique,
        Draft,
        Judgment,
        Revision,
        SafetyAssessment,
        UncertaintyNote,
        Verification,
    )
    from ._base import EpisodeContext


@runtime_checkable
class Drafts(Protocol):
    """Writes the episode's first answer (the base model)."""

    async def draft(self, ctx: EpisodeContext) -> Draft: ...


@runtime_checkable
class Assesses(Protocol):
    """Checks a candidate against principles: one finding or several (one per principle), and
    optionally the evidence behind them (a verification, an uncertainty note)."""

    async def assess(
        self, ctx: EpisodeContext, candidate_id: str
    ) -> (
        Critique
        | SafetyAssessment
        | Sequence[Critique | SafetyAssessment | Verification | UncertaintyNote]
    ): ...


@runtime_checkable
class Audits(Protocol):
    """Re-checks a subordinate's finding on the same candidate and principle."""

    async def audit(
        self,
        ctx: EpisodeContext,
        *,
        subject_message: str,
        subject_agent: str,
        candidate_id: str,
        principle_id: str,
        subject_verdict: str,
    ) -> Audit: ...


@runtime_checkable
class Ranks(Protocol):
    """Ranks candidates (the judge)."""

    async def rank(self, ctx: EpisodeContext, candidate_ids: list[str]) -> Judgment: ...


@runtime_checkable
class Revises(Protocol):
    """Rewrites a candidate so that it follows the principles it violated."""

    async def revise(
        self,
        ctx: EpisodeContext,
        candidate_id: str,
        principles: list[str],
        round_: int,
        first_id: int,
    ) -> list[Revision]: ...


CAPABILITIES: dict[Capability, type] = {
    "draft": Drafts,
    "assess": Assesses,
    "audit": Audits,
    "rank": Ranks,
    "revise": Revises,
}
"""Capability name -> its protocol."""


def capabilities_of(agent: object) -> tuple[Capability, ...]:
    """The capabilities an agent has (by its methods, never by its class), in table order."""
    return tuple(name for name, protocol in CAPABILITIES.items() if isinstance(agent, protocol))


__all__ = [
    "CAPABILITIES",
    "Assesses",
    "Audits",
    "Drafts",
    "Ranks",
    "Revises",
    "capabilities_of",
]
