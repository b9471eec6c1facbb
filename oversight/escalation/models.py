"""The queue's data: what a case is, what a reviewer decides, and what stands in the end.

Frozen pydantic v2 models, every field documented: ``CaseSubmission`` (what the runtime sends
when an episode escalates) and its ``Candidate`` answers; ``Case`` as stored, with its
``Lease`` claims and ``DecisionRecord`` decisions; a reviewer's ``Decision``; the
``FinalDecision`` that stands for a decided case (:func:`final_decision`), ready to become a
training row; ``QueueCounts`` and ``QueueEvent``. The queue manager that stores and changes them
is :class:`oversight.escalation.queue.HumanQueue`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import EscalationError
from ..messages import Adjudication, Turn

CaseStatus: TypeAlias = Literal["open", "decided", "tie", "withdrawn"]
"""``open``: waiting for reviewers; ``decided``: final; ``tie``: reviewers disagree with no
majority, an admin must break the tie; ``withdrawn``: taken back by the submitter."""

EventKind: TypeAlias = Literal["submit", "claim", "release", "decide", "withdraw"]

CASE_STATUSES: tuple[CaseStatus, ...] = ("open", "decided", "tie", "withdrawn")
TERMINAL_STATUSES: frozenset[str] = frozenset({"decided", "withdrawn"})

_NAME = Field(min_length=1, max_length=200)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Candidate(_Model):
    """One answer offered to reviewers."""

    id: str = _NAME
    """Candidate id within the episode (``c0`` for the draft, ``c1``... for revisions)."""
    text: str
    """The answer as the user would see it."""
    source: str = "model"
    """Where it came from (``draft``, ``model``, ``few_shot``, ``template``, ...)."""


class CaseSubmission(_Model):
    """What the runtime sends to the queue when an episode escalates."""

    run: str = _NAME
    """Run the episode belongs to."""
    episode: str = _NAME
    """Episode id; ``(run, episode)`` identifies a case, so submitting again is a no-op."""
    prompt: tuple[Turn, ...] = Field(min_length=1)
    """The whole conversation (multi-turn prompts carry every earlier turn)."""
    candidates: tuple[Candidate, ...] = Field(min_length=1)
    """The answers reviewers choose between (or edit)."""
    proposed: str | None = None
    """The candidate id the agents proposed, if any."""
    triggers: tuple[str, ...] = ()
    """Why the case escalated (``disagreement``, ``low_confidence``, ``severity``, ...)."""
    principles: tuple[str, ...] = ()
    """Principle ids involved (filterable)."""
    priority: int = 0
    """Higher is more urgent; lists show higher priority first, then older cases first."""
    reviewers_required: int = Field(default=1, ge=1, le=50)
    """How many different reviewers must decide (k); with k > 1, agreement is recorded."""
    details: dict[str, Any] = Field(default_factory=dict)
    """JSON of the critiques, safety assessments, conflict and resolution envelopes: the agents'
    internal reasoning, shown to reviewers and labelled internal, never to end users."""
    message_ids: tuple[str, ...] = ()
    """Ids of the envelopes behind the case (the audit chain)."""
    prompt_id: str | None = None
    """The prompt's id in its prompt set, for provenance."""
    reason: str = ""
    """A sentence for the reviewer explaining the escalation."""

    @field_validator("details")
    @classmethod
    def _json_details(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"details must be JSON (dicts, lists, strings, numbers); {exc}. Dump envelopes "
                "with model_dump(mode='json')"
            ) from exc
        return value

    @model_validator(mode="after")
    def _check_candidates(self) -> CaseSubmission:
        ids = [c.id for c in self.candidates]
        if len(set(ids)) != len(ids):
            raise ValueError(f"candidate ids must be unique, got {ids}")
        if self.proposed is not None and self.proposed not in ids:
            raise ValueError(f"proposed={self.proposed!r} is not one of the candidates {ids}")
        return self


class Decision(_Model):
    """A reviewer's decision: choose a candidate, or write an edited answer."""

    choice: str | None = None
    """The chosen candidate id (leave None when giving ``edited_text``)."""
    edited_text: str | None = None
    """An answer written or edited by the reviewer (leave None when choosing)."""
    rationale: str = ""
    """Why (kept for the audit trail; never a training target)."""
    principle_tags: tuple[str, ...] = ()
    """Principle ids the reviewer cites."""

    @model_validator(mode="after")
    def _one_of(self) -> Decision:
        if (self.choice is None) == (self.edited_text is None):
            raise ValueError("give exactly one of choice (a candidate id) or edited_text")
        if self.edited_text is not None and not self.edited_text.strip():
            raise ValueError("edited_text is empty; write the answer or choose a candidate")
        return self

    @property
    def key(self) -> str:
        """What two decisions must share to agree: the candidate id, or the edited text."""
        if self.choice is not None:
            return f"choice:{self.choice}"
        return f"edit:{(self.edited_text or '').strip()}"


class Lease(_Model):
    """A reviewer's claim on a case, valid until ``expires_at``."""

    case_id: str
    """The case claimed."""
    reviewer: str
    """Who holds the claim."""
    slot: int
    """Which of the case's ``reviewers_required`` places the claim holds (0-based)."""
    claimed_at: datetime
    """When the claim was made or last renewed (UTC)."""
    expires_at: datetime
    """When the case returns to the pool unless decided (UTC)."""


class DecisionRecord(_Model):
    """A decision as stored."""

    id: str
    """Decision id."""
    case_id: str
    """The case decided."""
    reviewer: str
    """Who decided."""
    choice: str | None
    """Chosen candidate id, or None for an edited answer."""
    edited_text: str | None
    """The reviewer's answer when they wrote one."""
    rationale: str
    """Why."""
    principle_tags: tuple[str, ...]
    """Principles the reviewer cited."""
    request_id: str | None
    """The idempotency key the decision was made with, if any."""
    tie_break: bool
    """True for an admin's tie-break decision."""
    case_status: CaseStatus
    """The case's status right after this decision was applied."""
    created_at: datetime
    """When it was stored (UTC)."""

    @property
    def key(self) -> str:
        """What two decisions must share to agree (see :attr:`Decision.key`)."""
        if self.choice is not None:
            return f"choice:{self.choice}"
        return f"edit:{(self.edited_text or '').strip()}"


class Case(_Model):
    """An escalated case with its current claims and decisions."""

    id: str
    """Case id."""
    run: str
    """Run of the episode."""
    episode: str
    """Episode id."""
    prompt_id: str | None
    """The prompt's id, when the submitter gave it."""
    status: CaseStatus
    """``open``, ``decided``, ``tie`` or ``withdrawn``."""
    priority: int
    """Higher is more urgent."""
    reviewers_required: int
    """How many reviewers must decide."""
    prompt: tuple[Turn, ...]
    """The conversation."""
    candidates: tuple[Candidate, ...]
    """The answers offered."""
    proposed: str | None
    """The agents' proposed candidate id."""
    triggers: tuple[str, ...]
    """Why it escalated."""
    principles: tuple[str, ...]
    """Principles involved."""
    details: dict[str, Any]
    """Agents' internal reasoning (critiques, assessments, conflict, resolution): internal."""
    message_ids: tuple[str, ...]
    """Envelope ids behind the case."""
    reason: str
    """The escalation's explanation for reviewers."""
    created_at: datetime
    """When it was submitted (UTC)."""
    updated_at: datetime
    """Last change (UTC)."""
    decided_at: datetime | None
    """When it became decided."""
    withdrawn_reason: str | None
    """Why it was withdrawn."""
    final_decision_id: str | None
    """Id of the decision that stands (the majority's first, or the tie-break)."""
    leases: tuple[Lease, ...]
    """Unexpired claims by reviewers who have not decided yet."""
    decisions: tuple[DecisionRecord, ...]
    """Every decision, oldest first."""

    def candidate(self, candidate_id: str) -> Candidate:
        """The candidate with that id (``EscalationError`` when none)."""
        for c in self.candidates:
            if c.id == candidate_id:
                return c
        raise EscalationError(
            f"case {self.id} has no candidate {candidate_id!r}; "
            f"choose one of {[c.id for c in self.candidates]}"
        )

    @property
    def open_slots(self) -> int:
        """How many more reviewers may claim the case now."""
        if self.status != "open":
            return 0
        reviews = sum(1 for d in self.decisions if not d.tie_break)
        return max(0, self.reviewers_required - reviews - len(self.leases))


class FinalDecision(_Model):
    """The decision that stands for a decided case, ready to become a training row."""

    case_id: str
    """The case."""
    run: str
    """Its run."""
    episode: str
    """Its episode."""
    prompt_id: str | None
    """The prompt's id, when known."""
    prompt: tuple[Turn, ...]
    """The conversation the answer continues."""
    choice: str | None
    """The chosen candidate id, or None when the answer was written by a reviewer."""
    edited_text: str | None
    """The reviewer's own answer, when one was written."""
    text: str
    """The final answer: the chosen candidate's text or the edited text."""
    rejected: tuple[str, ...]
    """Candidate ids not chosen (DPO rejected sides); every candidate when the answer was
    edited."""
    decision_id: str
    """The standing decision's id."""
    reviewer: str
    """Who made the standing decision."""
    reviewers: tuple[str, ...]
    """Everyone who decided the case (the tie-breaker last)."""
    rationale: str
    """The standing decision's rationale."""
    principle_tags: tuple[str, ...]
    """Principles cited by the standing decision."""
    tie_break: bool
    """Whether an admin broke a tie."""
    agreement: float
    """Fraction of the (non tie-break) reviewers whose decision matches the standing one."""
    decided_at: datetime
    """When the case was decided (UTC)."""
    message_ids: tuple[str, ...]
    """Envelope ids behind the case (for provenance)."""
    source: Literal["human"] = "human"
    """Provenance source of rows built from this decision."""

    def to_adjudication(self) -> Adjudication:
        """The ``Adjudication`` payload to journal for this decision."""
        return Adjudication(
            case_id=self.case_id,
            reviewer=self.reviewer,
            choice=self.choice,
            edited_text=self.edited_text,
            rationale=self.rationale,
            principle_tags=self.principle_tags,
        )


class QueueCounts(_Model):
    """How many cases are in each state."""

    open: int = 0
    """Cases waiting for reviewers (including claimed ones)."""
    claimed: int = 0
    """Open cases with at least one unexpired claim."""
    decided: int = 0
    """Decided cases."""
    tie: int = 0
    """Cases waiting for an admin tie-break."""
    withdrawn: int = 0
    """Withdrawn cases."""
    total: int = 0
    """All cases."""


class QueueEvent(_Model):
    """An in-process notification sent to ``on_change`` callbacks after a commit."""

    kind: EventKind
    """What happened."""
    case_id: str
    """The case it happened to."""
    status: CaseStatus
    """The case's status afterwards."""
    reviewer: str | None = None
    """The reviewer who acted, if any."""


def final_decision(case: Case) -> FinalDecision | None:
    """The decision that stands for ``case``, or None when it is not decided."""
    if case.status != "decided" or case.final_decision_id is None:
        return None
    chosen = next(d for d in case.decisions if d.id == case.final_decision_id)
    reviews = [d for d in case.decisions if not d.tie_break]
    agree = sum(1 for d in reviews if d.key == chosen.key)
    text = case.candidate(chosen.choice).text if chosen.choice is not None else chosen.edited_text
    return FinalDecision(
        case_id=case.id,
        run=case.run,
        episode=case.episode,
        prompt_id=case.prompt_id,
        prompt=case.prompt,
        choice=chosen.choice,
        edited_text=chosen.edited_text,
        text=text or "",
        rejected=tuple(c.id for c in case.candidates if c.id != chosen.choice),
        decision_id=chosen.id,
        reviewer=chosen.reviewer,
        reviewers=tuple(d.reviewer for d in case.decisions),
        rationale=chosen.rationale,
        principle_tags=chosen.principle_tags,
        tie_break=chosen.tie_break,
        agreement=agree / len(reviews) if reviews else 1.0,
        decided_at=case.decided_at or chosen.created_at,
        message_ids=case.message_ids,
    )


__all__ = [
    "CASE_STATUSES",
    "TERMINAL_STATUSES",
    "Candidate",
    "Case",
    "CaseStatus",
    "CaseSubmission",
    "Decision",
    "DecisionRecord",
    "EventKind",
    "FinalDecision",
    "Lease",
    "QueueCounts",
    "QueueEvent",
    "final_decision",
]
