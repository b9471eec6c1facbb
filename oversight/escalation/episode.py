"""From an escalated episode to a case for the human queue.

The runtime decides that an episode escalates; this module turns what the episode produced (the
conversation, the candidates, the agents' reasoning, the decision) into the
:class:`~oversight.escalation.CaseSubmission` that reviewers see.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..messages import Envelope, Prompt
from .queue import CaseSubmission

DETAIL_KEYS: dict[str, str] = {
    "critique": "critiques",
    "safety_assessment": "safety",
    "audit": "audits",
    "judgment": "judgment",
    "conflict": "conflict",
    "resolution": "resolution",
    "verification": "verifications",
    "uncertainty_note": "uncertainty",
}
"""Kinds of internal reasoning shown to reviewers in a case, and their key in its details."""


def escalation_reason(triggers: Iterable[str], proposed: str) -> str:
    """The sentence a reviewer reads first: why the case escalated and what agents proposed."""
    return f"{', '.join(triggers)}; agents proposed {proposed}"


def case_from_episode(
    *,
    run: str,
    episode: str,
    prompt: Prompt,
    candidates: Mapping[str, str],
    sources: Mapping[str, str],
    order: Sequence[str],
    proposed: str,
    triggers: Sequence[str],
    violations: Mapping[str, Sequence[str]],
    strategy: str,
    published: Iterable[Envelope],
    message_ids: Sequence[str],
    policy: Any,
) -> CaseSubmission:
    """The case of an escalated episode.

    ``candidates`` maps candidate id -> text and ``sources`` where it came from; ``order`` is
    the order shown to reviewers; ``proposed`` the candidate the agents chose; ``violations``
    candidate id -> principles violated; ``published`` the episode's envelopes so far (their
    internal reasoning goes into the case's details, grouped by :data:`DETAIL_KEYS`);
    ``message_ids`` the audit chain behind the case. ``policy`` (an
    :class:`~oversight.escalation.EscalationPolicy`) gives the priority and the number of
    reviewers.
    """
    reasoning: dict[str, Any] = {}
    for env in published:
        if env.payload.kind == "constitution":  # which constitution and overlays decided
            reasoning["constitution"] = env.payload.model_dump(mode="json", exclude={"kind"})
            continue
        key = DETAIL_KEYS.get(env.payload.kind)
        if key is not None:
            reasoning.setdefault(key, []).append(env.model_dump(mode="json"))
    return CaseSubmission(
        run=run,
        episode=episode,
        prompt_id=prompt.prompt_id,
        reason=escalation_reason(triggers, proposed),
        prompt=[t.model_dump() for t in prompt.messages],
        candidates=[{"id": c, "text": candidates[c], "source": sources[c]} for c in order],
        proposed=proposed,
        triggers=list(triggers),
        principles=sorted({p for v in violations.values() for p in v}),
        priority=policy.case_priority(triggers)
        if hasattr(policy, "case_priority")
        else len(triggers),
        reviewers_required=int(getattr(policy, "reviewers_per_case", 1)),
        details={
            **reasoning,
            "strategy": strategy,
            "violations": {k: list(v) for k, v in violations.items()},
            "prompt_id": prompt.prompt_id,
            "context": dict(prompt.context),
        },
        message_ids=list(message_ids),
    )


__all__ = ["DETAIL_KEYS", "case_from_episode", "escalation_reason"]
