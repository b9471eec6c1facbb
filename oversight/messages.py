"""Typed messages: every payload that crosses the bus, and the envelope around it.

Payloads are frozen pydantic v2 models tagged by ``kind`` and validated through one
discriminated union (:data:`Payload`). An :class:`Envelope` adds identity (ids, run, episode),
the causal chain (``parents``), the sender and topic, a timestamp and a visibility.

``visibility="internal"`` marks reasoning (critiques, safety analyses, judgments) that must never
reach a user-facing answer; only :class:`Draft`, :class:`Revision`, :class:`Consensus` and
:class:`Adjudication` text may become a training target.

The JSON of an envelope is the journal format; ``oversight schema`` prints its JSON Schema.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

SCHEMA_VERSION = 4
"""Version of the envelope format; bumped when a message kind changes incompatibly.

2: every episode journals the :class:`ConstitutionApplied` that decides it, and an
:class:`Escalation` names the candidate the agents proposed (``oversight replay`` needs both).
3: a conversation may hold tool calls and tool results (:class:`ToolCall`, ``role: tool``) and a
safety assessment may carry the ``tool_injection`` signal; journals of versions 2 and 1 still
load (every new field has a default), older readers cannot read a tool turn.
4: a draft and a revision say how the model's text ended (``finish``: ``stop``, ``length`` when
the token limit cut it, ``repetition`` when it was stopped looping); older journals load with
``finish`` empty."""

Visibility: TypeAlias = Literal["public", "internal"]
Verdict: TypeAlias = Literal["violated", "satisfied", "uncertain"]
JailbreakSignal: TypeAlias = Literal[
    "injection",
    "roleplay",
    "encoding",
    "multi_turn",
    "tool_misuse",
    "obfuscation",
    "tool_injection",
]
"""``tool_injection``: instructions planted inside a tool result (untrusted data) that try to
steer the assistant (:mod:`oversight.safety.tools`)."""
SafetyAction: TypeAlias = Literal["allow", "revise", "refuse", "escalate"]
Strategy: TypeAlias = Literal["none", "priority", "weighted", "review", "human"]
TargetSource: TypeAlias = Literal[
    "draft", "model", "few_shot", "best_of_n", "guided", "template", "human"
]
CritiqueMethod: TypeAlias = Literal["model", "classifier", "rule"]
"""Who wrote a critique's text: a generating model from the constitution's critique prompt, a
classifier's evidence rendered as a structured critique, or a rule (a fallback)."""
RecommendedResponse: TypeAlias = Literal["comply", "redirect", "refuse"]
TriggerName: TypeAlias = Literal[
    "disagreement", "low_confidence", "severity", "unresolved", "audit", "safety"
]
"""Why a case escalates, in the bit order of :mod:`oversight.consensus` (1, 2, 4, 8, 16): the
one definition of the trigger names. ``safety`` (32): the safety agent blocked every candidate
or asked for people (jailbreak framing around a request of moderate harm)."""
ClaimStatus: TypeAlias = Literal["supported", "contradicted", "unsupported"]
"""What the evidence says about a claim (:mod:`oversight.evidence`)."""
UncertaintyAction: TypeAlias = Literal["note", "hedge", "escalate"]
"""What low agreement does, by the hierarchy's policy: only a note, a hedged revision, or an
escalation trigger."""
Capability: TypeAlias = Literal["draft", "assess", "audit", "rank", "revise"]
"""What an agent can be asked to do (:mod:`oversight.agents` has one protocol per capability)."""

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


def new_id() -> str:
    """A fresh message / episode / case id: 32 hex characters, 128 random bits (so any prefix,
    e.g. the 8 characters reviewers see, is as random as the whole)."""
    return os.urandom(16).hex()


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ToolCall(_Message):
    """A tool the assistant asked to run, inside an assistant turn."""

    id: str = ""
    """The call's id; the tool turn that answers it names it in ``tool_call_id``."""
    name: str = Field(min_length=1)
    """The tool's name (``search``, ``send_email``, ...)."""
    arguments: dict[str, Any] = Field(default_factory=dict)
    """The arguments, a JSON object (prompt files may give it as a JSON string)."""


class Turn(_Message):
    """One turn of a conversation.

    A ``tool`` turn is a tool's result: untrusted data, never instructions (the safety agent
    looks inside it for injected ones). An ``assistant`` turn may carry ``tool_calls``."""

    role: Literal["system", "user", "assistant", "tool"]
    """Who speaks: ``tool`` for a tool's result."""
    content: str
    """What was said (a tool result as text; JSON results as their JSON text)."""
    tool_calls: tuple[ToolCall, ...] = ()
    """Tools the assistant called in this turn (assistant turns only)."""
    tool_call_id: str = ""
    """The call a tool turn answers (tool turns only; empty when the caller gave no ids)."""
    name: str = ""
    """The tool that produced a tool turn (tool turns only)."""

    @model_validator(mode="after")
    def _tool_fields_fit_the_role(self) -> Turn:
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"only an assistant turn may carry tool_calls, not a {self.role} turn")
        if (self.tool_call_id or self.name) and self.role != "tool":
            raise ValueError(f"tool_call_id and name belong to tool turns, not a {self.role} turn")
        return self

    def chat(self) -> dict[str, Any]:
        """The turn as a chat message (OpenAI's shape): ``role`` and ``content``, plus
        ``tool_calls`` (arguments as JSON text) or ``tool_call_id`` / ``name`` when set."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in self.tool_calls
            ]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.name:
            out["name"] = self.name
        return out


class Prompt(_Message):
    """The request an episode answers: a whole conversation whose last turn is the user's."""

    kind: Literal["prompt"] = "prompt"
    prompt_id: str
    """Stable id of the prompt within its prompt set (used for resume and de-duplication)."""
    messages: tuple[Turn, ...] = Field(min_length=1)
    """The conversation; multi-turn prompts carry every earlier turn."""
    context: dict[str, str] = Field(default_factory=dict)
    """Facts about the situation (e.g. ``domain: medical``, ``region: eu``) that conditional
    priority rules read."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Ground-truth labels when known (e.g. ``harm: harmful``); used by the simulated backend and
    by evaluation, never shown to agents built on real models."""


class ConstitutionApplied(_Message):
    """Which constitution decides an episode: published by the runtime right after the prompt.

    A hierarchy may select overlays (or another constitution) per request from the prompt's
    context (region, user profile, product surface), so one run can apply several; this record
    is what every decision, export row and ``oversight explain`` of the episode cites."""

    kind: Literal["constitution"] = "constitution"
    name: str
    """The constitution's name (``default``)."""
    version: str
    """The constitution's version."""
    overlays: tuple[str, ...] = ()
    """Overlays applied, in order (the hierarchy's own, then the selected ones)."""
    selected_by: tuple[str, ...] = ()
    """Ids of the hierarchy's ``select`` entries whose ``when`` matched the prompt's context."""
    principles: dict[str, str] = Field(default_factory=dict)
    """Principle id -> version, for every principle of the constitution in force."""
    conditional_rules: tuple[str, ...] = ()
    """Conditional rules of that constitution that apply to the prompt's context."""
    digest: str = ""
    """A hash of everything that decides (principles' versions, weights and severities, edges,
    rules): two episodes with the same digest were decided under the same constitution."""


class Draft(_Message):
    """The base model's first answer."""

    kind: Literal["draft"] = "draft"
    candidate_id: str
    """Id of this candidate answer within the episode (``c0`` for the draft)."""
    text: str
    """The answer as the user would see it."""
    model: str
    """Name of the model that wrote it."""
    finish: str = ""
    """How the model's text ended (:data:`oversight.backends.Finish`; empty: not reported). A
    text cut by the token limit (``length``) or stopped looping (``repetition``) is kept only
    up to its last whole sentence."""


class Critique(_Message):
    """A critic's finding about one candidate and one principle."""

    kind: Literal["critique"] = "critique"
    candidate_id: str
    """The candidate being assessed."""
    principle_id: str
    """The principle checked."""
    principle_version: str
    """Version of that principle, for the audit trail."""
    verdict: Verdict
    """Whether the candidate violates the principle."""
    severity: Probability = 0.0
    """How bad a violation is, 0 (harmless) to 1 (severe)."""
    confidence: Probability = 1.0
    """The critic's confidence in its verdict."""
    rationale: str = ""
    """The written critique: what in the candidate violates (or satisfies) the principle and
    why (internal: never shown to the user)."""
    quote: str = ""
    """The span of the candidate the critique is about, verbatim (empty when the candidate is
    empty or the critic could not point at one)."""
    suggestion: str = ""
    """What a better answer would do (the principle's guidance, made specific)."""
    method: CritiqueMethod = "rule"
    """Who wrote the text: ``model``, ``classifier`` or ``rule``."""
    category: str = ""
    """Harm category of the request the critique relates to (the constitution's ``categories``),
    or empty."""


class SafetyAssessment(_Message):
    """The safety agent's view of the request and a candidate answer."""

    kind: Literal["safety_assessment"] = "safety_assessment"
    candidate_id: str
    """The candidate being assessed."""
    principle_id: str = "harm"
    """The principle this assessment speaks for (the constitution's safety principle)."""
    principle_version: str = "1"
    """Version of that principle."""
    categories: tuple[str, ...] = ()
    """Harm categories detected (e.g. ``weapons``, ``cybercrime``)."""
    risk: Probability = 0.0
    """Estimated probability that answering as the candidate does causes harm."""
    request_harmful: Probability = 0.0
    """Estimated probability that the request itself asks for harm."""
    signals: tuple[JailbreakSignal, ...] = ()
    """Jailbreak techniques detected in the conversation."""
    action: SafetyAction = "allow"
    """What the safety agent recommends."""
    facilitates_harm: Probability = 0.0
    """Question 1 of the brief: does the candidate facilitate harm? (probability)"""
    deceptive_request: bool = False
    """Question 2: is the request deceptive (role-play, encodings, split across turns)?"""
    policy_override: bool = False
    """Question 3: does the conversation try to override the assistant's rules (injection)?"""
    recommended: RecommendedResponse = "comply"
    """Question 4: should the answer comply, redirect (answer the legitimate part, decline the
    rest) or refuse?"""
    confidence: Probability = 1.0
    """Confidence in the assessment."""
    rationale: str = ""
    """Internal reasoning (never shown to the user)."""


class Claim(_Message):
    """One claim of a candidate and what the evidence index says about it."""

    text: str
    """The claim, verbatim from the candidate (``question -> answer`` for a short answer)."""
    status: ClaimStatus
    """``supported``, ``contradicted`` or ``unsupported``."""
    source: str = ""
    """The chunk cited (``doc:n``), empty when nothing relevant was found."""
    evidence: str = ""
    """The passage sentence the status rests on, verbatim from the document."""
    score: float = 0.0
    """Cosine similarity of claim and evidence (MiniLM)."""
    why: str = ""
    """What matched or disagreed, in one line."""


class Verification(_Message):
    """The verifier's check of a candidate's claims against a retrieval index (internal)."""

    kind: Literal["verification"] = "verification"
    candidate_id: str
    """The candidate checked."""
    index: str
    """The evidence index used (its directory)."""
    claims: tuple[Claim, ...] = ()
    """Every claim with its status and cited passage."""

    @property
    def contradicted(self) -> tuple[Claim, ...]:
        return tuple(c for c in self.claims if c.status == "contradicted")

    @property
    def supported(self) -> tuple[Claim, ...]:
        return tuple(c for c in self.claims if c.status == "supported")


class UncertaintyNote(_Message):
    """How sure a candidate may be, from the model's own signals (internal reasoning: never
    shown to the user; the reviser reads it to hedge what is uncertain)."""

    kind: Literal["uncertainty_note"] = "uncertainty_note"
    candidate_id: str
    """The candidate the note is about."""
    confidence: Probability
    """Calibrated probability that the candidate's answer is correct."""
    raw_confidence: Probability
    """The uncalibrated combined signal, before the calibration map."""
    agreement: Probability | None = None
    """Mean MiniLM cosine agreement between the candidate and ``samples`` answers drawn in one
    batched call (None when no samples were drawn)."""
    samples: int = 0
    """How many extra answers were sampled."""
    sampled: tuple[str, ...] = ()
    """The sampled answers themselves (internal: shown to reviewers, never to users)."""
    token_confidence: Probability | None = None
    """P("Yes") when the model is asked whether its answer is true (its own token
    probabilities), None when the backend cannot score."""
    uncertain_spans: tuple[str, ...] = ()
    """Sentences of the candidate the samples disagree with most (verbatim)."""
    action: UncertaintyAction = "note"
    """What the hierarchy's policy did with the note."""
    calibration: str = ""
    """Which calibration map turned ``raw_confidence`` into ``confidence``."""
    rationale: str = ""
    """A line a reviewer reads (internal)."""


class Revision(_Message):
    """A revised candidate answer."""

    kind: Literal["revision"] = "revision"
    candidate_id: str
    """Id of the new candidate (``c1``, ``c2``, ...)."""
    revises: str
    """Candidate id this revision started from."""
    round: int = Field(ge=1)
    """Revision round, starting at 1."""
    text: str
    """The revised answer as the user would see it."""
    principle_ids: tuple[str, ...] = ()
    """Principles the revision addresses."""
    source: TargetSource = "model"
    """Where the text came from: the reviser model, a few-shot guided generation, best-of-n,
    ``guided`` (the constitution's per-category decline-and-redirect guidance composed with the
    request's own words) or ``template`` (the principle's single refusal sentence, the last
    fallback)."""
    finish: str = ""
    """How the model's text ended, as for :attr:`Draft.finish` (empty for guided and template
    revisions, which no model wrote)."""


class Audit(_Message):
    """A supervisor's finding about a subordinate's message (e.g. a judge checking a critique).

    An audit enters the same resolution as any other finding: when it disagrees, the
    supervisor's verdict is used for that principle and candidate, and the disagreement is
    recorded (a possible escalation trigger).
    """

    kind: Literal["audit"] = "audit"
    subject_message: str
    """Id of the message reviewed."""
    subject_agent: str
    """Name of the agent whose output was reviewed."""
    candidate_id: str
    """Candidate the reviewed finding was about."""
    principle_id: str
    """Principle the reviewed finding was about."""
    agrees: bool
    """Whether the supervisor agrees with the finding."""
    verdict: Verdict
    """The supervisor's own verdict on the same question."""
    confidence: Probability = 1.0
    """Confidence of the supervisor."""
    rationale: str = ""
    """Internal reasoning."""


class Judgment(_Message):
    """The judge's ranking of candidates (compared in both orders to cancel position bias)."""

    kind: Literal["judgment"] = "judgment"
    ranking: tuple[str, ...]
    """Candidate ids, best first."""
    scores: dict[str, float] = Field(default_factory=dict)
    """Mean preference score per candidate, in [0, 1]."""
    confidence: Probability = 1.0
    """Margin-based confidence of the top choice."""
    rationale: str = ""
    """Internal reasoning."""


class Conflict(_Message):
    """No candidate satisfies every principle: candidates differ in what they violate."""

    kind: Literal["conflict"] = "conflict"
    principles: tuple[str, ...]
    """Principles in tension."""
    candidates: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Per candidate id, the principles it violates."""
    findings: tuple[str, ...] = ()
    """Ids of the messages that established the conflict."""


class Resolution(_Message):
    """How a conflict was settled, and why."""

    kind: Literal["resolution"] = "resolution"
    strategy: Strategy
    """Which strategy decided: priority ordering, weighted scoring, hierarchical review, human,
    or none (there was no conflict)."""
    winner: str | None = None
    """The candidate chosen, if one was."""
    path: tuple[str, ...] = ()
    """The priority-graph path (principle ids) or the score comparison that decided."""
    conditional_rules: tuple[str, ...] = ()
    """Conditional rules that applied to this case's context."""
    scores: dict[str, float] = Field(default_factory=dict)
    """Weighted cost per candidate when weighted scoring ran."""
    rationale: str = ""
    """A sentence a person can read."""


class Escalation(_Message):
    """The case goes to people."""

    kind: Literal["escalation"] = "escalation"
    case_id: str
    """Id of the case in the human queue."""
    triggers: tuple[str, ...]
    """Why: ``disagreement``, ``low_confidence``, ``severity``, ``unresolved``, ``audit``."""
    candidates: tuple[str, ...] = ()
    """Candidate ids offered to reviewers."""
    proposed: str | None = None
    """The candidate the agents proposed (schema 2; None in older journals)."""
    reason: str = ""
    """A sentence for the reviewer."""


class Adjudication(_Message):
    """A person's decision on an escalated case."""

    kind: Literal["adjudication"] = "adjudication"
    case_id: str
    """The case decided."""
    reviewer: str
    """Who decided."""
    choice: str | None = None
    """Chosen candidate id, or None when ``edited_text`` is given."""
    edited_text: str | None = None
    """An answer written or edited by the reviewer."""
    rationale: str = ""
    """Why (kept for the audit trail; not a training target)."""
    principle_tags: tuple[str, ...] = ()
    """Principles the reviewer cites."""


class Consensus(_Message):
    """The agents agree on a final answer; it becomes an SFT target."""

    kind: Literal["consensus"] = "consensus"
    candidate_id: str
    """The chosen candidate."""
    text: str
    """The chosen answer as the user sees it."""
    rejected: tuple[str, ...] = ()
    """Candidates judged worse (DPO rejected sides)."""
    strategy: Strategy = "none"
    """The resolution strategy that decided, ``none`` when nothing conflicted."""
    source: TargetSource = "draft"
    """Where the chosen text came from."""


class Failure(_Message):
    """An episode (or one stage of it) failed; the run goes on."""

    kind: Literal["failure"] = "failure"
    stage: str
    """Where it failed (``draft``, ``critique``, ``judge``, ...)."""
    error_type: str
    """The exception class name."""
    message: str
    """The error message."""
    agent: str | None = None
    """The agent that failed, when one did."""


class DraftRequest(_Message):
    """Asks the agent that drafts for the episode's first answer."""

    kind: Literal["draft_request"] = "draft_request"


class AssessRequest(_Message):
    """Asks assessors (critics, safety, ...) for their findings about one candidate: one
    request to all of them, each answers with its own reply."""

    kind: Literal["assess_request"] = "assess_request"
    candidate_id: str
    """The candidate to assess."""
    agents: tuple[str, ...] = Field(min_length=1)
    """The assessors asked (the others that see the request ignore it)."""


class AuditRequest(_Message):
    """Asks a supervisor to re-check a subordinate's finding."""

    kind: Literal["audit_request"] = "audit_request"
    subject_message: str
    """Id of the finding reviewed."""
    subject_agent: str
    """Name of the agent that reported it."""
    candidate_id: str
    """Candidate the finding is about."""
    principle_id: str
    """Principle the finding is about."""
    subject_verdict: Verdict
    """The subordinate's verdict."""


class RankRequest(_Message):
    """Asks the judge to rank candidates."""

    kind: Literal["rank_request"] = "rank_request"
    candidate_ids: tuple[str, ...]
    """The candidates, in the order the episode produced them."""


class ReviseRequest(_Message):
    """Asks the reviser to revise a candidate so that it satisfies some principles."""

    kind: Literal["revise_request"] = "revise_request"
    candidate_id: str
    """The candidate to revise."""
    principle_ids: tuple[str, ...]
    """The principles it violates."""
    round: int = Field(ge=1)
    """Revision round, starting at 1."""
    first_id: int = Field(ge=1)
    """Number of the first new candidate id (``c<first_id>``, then upwards)."""


class Reply(_Message):
    """An agent's answer to a request: the envelopes it published, or why it failed.

    Requests and replies are the bus's transport between the episode coordinator and the agent
    services; the journal records the envelopes a reply carries (as the agent published them),
    not the request or the reply themselves.
    """

    kind: Literal["reply"] = "reply"
    capability: Capability
    """The capability that was asked for."""
    messages: tuple[Envelope, ...] = ()
    """The envelopes the agent published in answer, as delivered (after interceptors)."""
    failure: Failure | None = None
    """Set when the agent raised: the episode fails with this."""


Payload: TypeAlias = Annotated[
    Prompt
    | ConstitutionApplied
    | Draft
    | Critique
    | SafetyAssessment
    | Revision
    | Verification
    | UncertaintyNote
    | Audit
    | Judgment
    | Conflict
    | Resolution
    | Escalation
    | Adjudication
    | Consensus
    | Failure
    | DraftRequest
    | AssessRequest
    | AuditRequest
    | RankRequest
    | ReviseRequest
    | Reply,
    Field(discriminator="kind"),
]
"""Every message kind, discriminated by its ``kind`` tag."""

INTERNAL_KINDS: frozenset[str] = frozenset(
    {
        "critique",
        "safety_assessment",
        "audit",
        "judgment",
        "conflict",
        "resolution",
        "verification",
        "uncertainty_note",
    }
)
"""Kinds whose text is internal reasoning by default."""

TRANSPORT_KINDS: frozenset[str] = frozenset(
    {"draft_request", "assess_request", "audit_request", "rank_request", "revise_request", "reply"}
)
"""Requests to agent services and their replies: bus transport, always internal and not
journaled (the journal records the messages a reply carries when the agent publishes them)."""


def _now() -> datetime:
    return datetime.now(UTC)


class Envelope(_Message):
    """A payload with identity, causality, sender, topic, time and visibility."""

    schema_version: int = SCHEMA_VERSION
    """Envelope format version."""
    id: str = Field(default_factory=new_id)
    """Unique message id."""
    run: str
    """Run this message belongs to."""
    episode: str
    """Episode id (one prompt's oversight)."""
    sender: str
    """Name of the agent (or ``runtime``, or a reviewer) that sent it."""
    topic: str
    """Bus topic it was published on."""
    parents: tuple[str, ...] = ()
    """Ids of the messages this one responds to: the audit chain."""
    created_at: datetime = Field(default_factory=_now)
    """When it was created (UTC)."""
    visibility: Visibility = "public"
    """``internal`` for reasoning that must never reach a user-facing answer."""
    payload: Payload
    """The message itself."""

    @property
    def kind(self) -> str:
        return self.payload.kind


Reply.model_rebuild()
ENVELOPE_ADAPTER: TypeAdapter[Envelope] = TypeAdapter(Envelope)
PAYLOAD_ADAPTER: TypeAdapter[Any] = TypeAdapter(Payload)


def envelope(
    payload: Any,
    *,
    run: str,
    episode: str,
    sender: str,
    topic: str,
    parents: tuple[str, ...] | list[str] = (),
    visibility: Visibility | None = None,
) -> Envelope:
    """Wrap a payload; visibility defaults to ``internal`` for reasoning kinds."""
    if visibility is None:
        kind = payload.kind
        visibility = "internal" if kind in INTERNAL_KINDS or kind in TRANSPORT_KINDS else "public"
    return Envelope(
        run=run,
        episode=episode,
        sender=sender,
        topic=topic,
        parents=tuple(parents),
        visibility=visibility,
        payload=payload,
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema of an envelope (the journal's line format)."""
    schema = ENVELOPE_ADAPTER.json_schema()
    ref = schema.pop("$ref", None)
    if ref is not None:  # a Reply holds envelopes, so the envelope is a definition: inline it
        schema = {**schema["$defs"][ref.rsplit("/", 1)[-1]], **schema}
    return schema


__all__ = [
    "ENVELOPE_ADAPTER",
    "INTERNAL_KINDS",
    "PAYLOAD_ADAPTER",
    "SCHEMA_VERSION",
    "TRANSPORT_KINDS",
    "Adjudication",
    "AssessRequest",
    "Audit",
    "AuditRequest",
    "Capability",
    "Claim",
    "ClaimStatus",
    "Conflict",
    "Consensus",
    "ConstitutionApplied",
    "Critique",
    "Draft",
    "DraftRequest",
    "Envelope",
    "Escalation",
    "Failure",
    "Judgment",
    "Payload",
    "Prompt",
    "RankRequest",
    "Reply",
    "Resolution",
    "ReviseRequest",
    "Revision",
    "SafetyAssessment",
    "ToolCall",
    "TriggerName",
    "Turn",
    "UncertaintyAction",
    "UncertaintyNote",
    "Verification",
    "envelope",
    "json_schema",
    "new_id",
]
