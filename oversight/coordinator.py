"""The episode coordinator: sends requests to agent services and reacts to their replies.

One episode (DESIGN.md, "Episode semantics"), as requests on the bus:

1. ``draft`` to the base;
2. ``assess`` the candidate to every agent that supervises the base and can assess (``every`` and
   ``sample`` edges at once, then ``on-flag`` edges when something was flagged);
3. ``audit`` each finding to the supervisors of its reporter that can audit, level by level;
4. the decision core (:func:`oversight.consensus.decide`) says consensus, revise or escalate;
   on revise, ``revise`` to the reviser (plus the constitution's template on the last round)
   and back to 2 for each new candidate; when there are several candidates, ``rank`` to the
   judge first;
5. publish the conflict, the resolution and the :class:`~oversight.messages.Consensus` or
   :class:`~oversight.messages.Escalation` (after submitting the case to the queue).

Who does what is found by capability (:class:`Cast`), never by class. Agents publish their own
messages; the coordinator records the envelopes their replies carry and publishes its own
(``sender="runtime"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from .agents import EpisodeContext, ReviserAgent, ask, ask_assessors, capabilities_of
from .bus import Bus
from .consensus import (
    ACTION_ESCALATE,
    ACTION_REVISE,
    STRATEGY_NAMES,
    CompiledCore,
    EpisodeFindings,
    decide,
    finding_of,
    trigger_names,
    violated_principles,
)
from .errors import AgentError, ConfigError
from .escalation.episode import case_from_episode, escalation_reason
from .governance import Variant, digest
from .messages import (
    AuditRequest,
    Capability,
    Conflict,
    Consensus,
    Draft,
    DraftRequest,
    Envelope,
    Escalation,
    Judgment,
    RankRequest,
    Resolution,
    ReviseRequest,
    Revision,
    envelope,
)
from .priority import PriorityGraph
from .safety.refusal import phrase_refusal

FINDING_KINDS = frozenset({"critique", "safety_assessment"})
"""Assessors' messages that carry a verdict; the others they may publish (a
:class:`~oversight.messages.Verification`, an :class:`~oversight.messages.UncertaintyNote`) are
the evidence behind a critique, journaled and shown to reviewers but not counted as findings."""


@dataclass
class EpisodeOutcome:
    """How one episode ended (kept in memory for summaries and the simulator's comparison)."""

    prompt_id: str
    episode: str
    status: str
    """``consensus``, ``escalated`` or ``failed``."""
    strategy: str = "none"
    triggers: tuple[str, ...] = ()
    source: str = "draft"
    """Where the final text came from (draft, model, few_shot, best_of_n, template)."""
    refused: bool | None = None
    """Whether the final (or proposed) answer is a refusal, by
    :func:`oversight.safety.phrase_refusal`."""
    rounds: int = 0
    draft_violations: tuple[str, ...] = ()
    case_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Cast:
    """Who does what in a hierarchy, found by capability: ``(supervisor, edge)`` pairs for the
    assessors of the base and the auditors of each agent."""

    base: str
    assessors: list[Any]
    """Supervision edges whose supervisor assesses the base's output."""
    auditors: dict[str, list[Any]]
    """Agent name -> supervision edges whose supervisor audits that agent's findings."""
    reviser: str | None
    judge: str | None

    @classmethod
    def of(cls, base: str, agents: Mapping[str, object], edges: Sequence[Any]) -> Cast:
        caps = {name: capabilities_of(agent) for name, agent in agents.items()}
        if "draft" not in caps[base]:
            raise ConfigError(
                f"agent {base!r} is the base but cannot draft (its role has no `draft` method); "
                "give the base a role that drafts, e.g. `role: base`"
            )
        auditors: dict[str, list[Any]] = {}
        for edge in edges:
            if "audit" in caps[edge.supervisor]:
                auditors.setdefault(edge.subject, []).append(edge)
        return cls(
            base=base,
            assessors=[e for e in edges if e.subject == base and "assess" in caps[e.supervisor]],
            auditors=auditors,
            reviser=next((n for n, c in caps.items() if "revise" in c), None),
            judge=next((n for n, c in caps.items() if "rank" in c), None),
        )


def _selected(ctx: EpisodeContext, edge: Any, flagged: bool, *keys: object) -> bool:
    """Whether a supervision edge reviews this case: ``every``, ``on-flag`` or ``sample``."""
    mode = getattr(edge, "mode", "every")
    if mode == "every":
        return True
    if mode == "on-flag":
        return flagged
    return ctx.draw("sample", edge.supervisor, edge.subject, *keys) < float(edge.rate)


@dataclass
class _State:
    """What one episode has produced so far."""

    ctx: EpisodeContext
    findings: EpisodeFindings
    variant: Variant
    """The constitution in force for this episode, its graph and compiled core."""
    envs: dict[str, Envelope] = field(default_factory=dict)
    """Candidate id -> its draft or revision envelope."""
    sources: dict[str, str] = field(default_factory=dict)
    finding_ids: list[str] = field(default_factory=list)


class Coordinator:
    """Runs episodes over agent services on ``bus`` (see the module docstring)."""

    def __init__(
        self,
        *,
        bus: Bus,
        cast: Cast,
        core: CompiledCore,
        graph: PriorityGraph,
        levels: Mapping[str, int],
        settings: Any,
        policy: Any,
        queue: Any | None,
        timeout: float,
    ) -> None:
        self.bus, self.cast, self.core, self.graph = bus, cast, core, graph
        self.levels, self.settings, self.policy, self.queue = levels, settings, policy, queue
        self.timeout = timeout
        self.severity = {p.id: float(p.severity) for p in graph.constitution.principles}
        self.default = Variant(
            constitution=graph.constitution,
            graph=graph,
            core=core,
            severity=self.severity,
            digest=digest(graph.constitution),
        )

    async def publish(
        self, ctx: EpisodeContext, payload: Any, parents: Sequence[str]
    ) -> Envelope | None:
        """Publish one of the coordinator's own messages (sender ``runtime``); the envelope as
        delivered, None when an interceptor dropped it."""
        env = await self.bus.publish(
            envelope(
                payload,
                run=ctx.run,
                episode=ctx.episode,
                sender="runtime",
                topic=f"episode.{payload.kind}",
                parents=tuple(parents),
            )
        )
        if env is not None:
            ctx.published.append(env)
        return env

    async def _ask(
        self,
        ctx: EpisodeContext,
        agent: str,
        capability: Capability,
        payload: Any,
        parents: Sequence[str],
    ) -> list[Envelope]:
        envs = await ask(self.bus, ctx, agent, capability, payload, parents, timeout=self.timeout)
        ctx.published.extend(envs)
        return envs

    async def oversee(
        self,
        ctx: EpisodeContext,
        prompt_env: Envelope,
        outcome: EpisodeOutcome,
        variant: Variant | None = None,
    ) -> EpisodeOutcome:
        """Run the episode of ``ctx`` to its decision under ``variant`` (the constitution the
        prompt's context selected; default: the coordinator's); fill in and return ``outcome``."""
        variant = variant or self.default
        state = _State(ctx, EpisodeFindings(variant.core, self.levels), variant)
        drafts = await self._ask(ctx, self.cast.base, "draft", DraftRequest(), (prompt_env.id,))
        if not drafts:
            raise AgentError("the draft was dropped by an interceptor", error_type="BlockedDraft")
        draft = drafts[0].payload
        assert isinstance(draft, Draft), f"{self.cast.base} drafted a {draft.kind}"
        ctx.candidates["c0"] = draft.text
        state.envs["c0"], state.sources["c0"] = drafts[0], "draft"
        ctx.stage = "assess"
        await self._assess(state, "c0")
        outcome.draft_violations = state.findings.violations("c0")
        reviser, judge = self.cast.reviser, self.cast.judge
        max_rounds = int(self.settings.max_revision_rounds) if reviser is not None else 0
        rounds = 0
        judgment_env: Envelope | None = None
        judged: list[str] = []
        judge_scores: dict[str, float] = {}
        judge_conf = 0.0
        while True:
            order = list(ctx.candidates)
            if judge is not None and len(order) > 1 and order != judged:
                judged = order
                ctx.stage = "judge"
                parents = tuple(state.envs[c].id for c in order)
                replies = await self._ask(
                    ctx, judge, "rank", RankRequest(candidate_ids=order), parents
                )
                judgment_env = replies[0] if replies else None
                if judgment_env is not None:
                    judgment = judgment_env.payload
                    assert isinstance(judgment, Judgment), f"{judge} ranked with {judgment.kind}"
                    judge_scores, judge_conf = dict(judgment.scores), judgment.confidence
            batch = state.findings.batch(
                order,
                judge_scores=judge_scores,
                judge_confidence=judge_conf,
                context=ctx.prompt.context,
                audit_draw=ctx.draw("audit"),
                rounds_left=max_rounds - rounds,
            )
            decision = decide(batch, variant.core)
            chosen = order[int(decision.chosen[0])]
            if int(decision.action[0]) != ACTION_REVISE or reviser is None:
                break  # with no reviser max_rounds is 0, so decide() never asks to revise
            rounds += 1
            violated = list(violated_principles(batch, variant.core, order)[chosen])
            first = len(order)
            ctx.stage = "revise"
            ask_revision = ReviseRequest(
                candidate_id=chosen, principle_ids=tuple(violated), round=rounds, first_id=first
            )
            revisions = await self._ask(
                ctx, reviser, "revise", ask_revision, (state.envs[chosen].id,)
            )
            ctx.stage = "assess"
            for rev_env in revisions:
                await self._add_candidate(state, rev_env)
            added = len(revisions)
            if rounds == max_rounds:
                fallback = ReviserAgent.template_revision(
                    ctx, chosen, violated, rounds, f"c{first + len(revisions)}"
                )
                texts = {getattr(e.payload, "text", None) for e in revisions}
                if fallback is not None and fallback.text not in texts:
                    added += 1
                    await self._add_candidate(state, fallback, reviser)
            if not added:  # nothing new to assess: decide with no rounds left
                max_rounds = rounds
        ctx.stage = "finish"
        return await self._finish(state, decision, batch, order, judgment_env, rounds, outcome)

    async def _add_candidate(
        self, state: _State, revision: Envelope | Revision, sender: str | None = None
    ) -> None:
        """A revision becomes a candidate (the template fallback is published here first,
        in the reviser's name), and is assessed."""
        ctx = state.ctx
        if isinstance(revision, Revision):
            env = await self.bus.publish(
                envelope(
                    revision,
                    run=ctx.run,
                    episode=ctx.episode,
                    sender=str(sender),
                    topic="episode.revision",
                    parents=(state.envs[revision.revises].id,),
                )
            )
            if env is None:
                return
            ctx.published.append(env)
        else:
            env = revision
        payload = env.payload
        assert isinstance(payload, Revision)
        ctx.candidates[payload.candidate_id] = payload.text
        state.envs[payload.candidate_id] = env
        state.sources[payload.candidate_id] = payload.source
        await self._assess(state, payload.candidate_id)

    async def _assess(self, state: _State, candidate: str) -> None:
        """First-level findings in parallel, then audits level by level."""
        ctx, findings = state.ctx, state.findings
        candidate_env = state.envs[candidate].id
        # Phase 1: every / sampled assessors; phase 2: on-flag assessors, when phase 1 flagged.
        flagged_any = False
        for on_flag in (False, True):
            if on_flag and not flagged_any:
                break
            asked = [
                edge.supervisor
                for edge in self.cast.assessors
                if (getattr(edge, "mode", "every") == "on-flag") == on_flag
                and (on_flag or _selected(ctx, edge, False, candidate))
            ]
            asked = list(dict.fromkeys(asked))  # each assessor answers once
            if not asked:
                continue
            results = await ask_assessors(  # one request, a reply per assessor, sorted
                self.bus, ctx, asked, candidate, (candidate_env,), timeout=self.timeout
            )
            for agent, envs in results:
                ctx.published.extend(envs)
                for env in envs:
                    payload: Any = env.payload
                    if payload.kind not in FINDING_KINDS:
                        continue  # a verification or an uncertainty note: evidence, no verdict
                    state.finding_ids.append(env.id)
                    verdict, severity, confidence = finding_of(
                        payload, state.variant.severity[payload.principle_id]
                    )
                    flagged_any |= verdict != "satisfied"
                    if payload.kind == "safety_assessment":
                        findings.note_safety(candidate, payload.action)
                    findings.add(
                        agent, candidate, payload.principle_id, verdict, severity, confidence,
                        env.id,
                    )  # fmt: skip
        # Audits: supervisors of reporting agents re-check their cells, level by level.
        frontier = {edge.supervisor for edge in self.cast.assessors}
        seen = set(frontier)
        while frontier:
            next_frontier: set[str] = set()
            for subject in sorted(frontier, key=lambda n: self.levels.get(n, 0)):
                for edge in self.cast.auditors.get(subject, ()):
                    auditor = edge.supervisor
                    for principle, code, message_id in findings.of(subject, candidate):
                        if not _selected(ctx, edge, code != 0, candidate, principle):
                            continue
                        request = AuditRequest(
                            subject_message=message_id,
                            subject_agent=subject,
                            candidate_id=candidate,
                            principle_id=principle,
                            subject_verdict=("satisfied", "violated", "uncertain")[code],
                        )
                        for env in await self._ask(ctx, auditor, "audit", request, (message_id,)):
                            state.finding_ids.append(env.id)
                            audit: Any = env.payload
                            verdict, severity, confidence = finding_of(
                                audit, state.variant.severity[principle]
                            )
                            findings.add(
                                auditor, candidate, principle, verdict, severity, confidence,
                                env.id,
                            )  # fmt: skip
                    if auditor not in seen:
                        seen.add(auditor)
                        next_frontier.add(auditor)
            frontier = next_frontier

    async def _finish(
        self,
        state: _State,
        decision: Any,
        batch: Any,
        order: list[str],
        judgment_env: Envelope | None,
        rounds: int,
        outcome: EpisodeOutcome,
    ) -> EpisodeOutcome:
        ctx = state.ctx
        chosen_i = int(decision.chosen[0])
        chosen = order[chosen_i]
        strategy = STRATEGY_NAMES[int(decision.strategy[0])]
        triggers = trigger_names(int(decision.triggers[0]))
        core, graph = state.variant.core, state.variant.graph
        violated = violated_principles(batch, core, order)
        finding_ids = state.finding_ids
        parents = [state.envs[chosen].id, *finding_ids]
        if judgment_env is not None:
            parents.append(judgment_env.id)
        if bool(decision.conflict[0]):
            conflict = Conflict(
                principles=tuple(sorted({p for v in violated.values() for p in v})),
                candidates=violated,
                findings=tuple(finding_ids),
            )
            conflict_env = await self.publish(ctx, conflict, finding_ids)
            if conflict_env is not None:
                parents.append(conflict_env.id)
        if strategy != "none":
            # the candidates the decision weighed: one the safety agent blocked has no finite
            # cost (inf would be written as null and make the journal unreadable)
            scores = {
                c: round(float(decision.cost[0][i]), 4)
                for i, c in enumerate(order)
                if math.isfinite(float(decision.cost[0][i]))
            }
            path, rationale = graph.explain(
                strategy,
                chosen,
                {c: v for c, v in violated.items() if c in scores},
                scores,
                ctx.prompt.context,
                margin=core.weighted_margin,
            )
            resolution = Resolution(
                strategy=strategy,
                winner=None if strategy == "human" else chosen,
                path=path,
                conditional_rules=graph.context_key(ctx.prompt.context),
                scores=scores,
                rationale=rationale,
            )
            resolution_env = await self.publish(ctx, resolution, parents)
            if resolution_env is not None:
                parents.append(resolution_env.id)
        outcome.strategy, outcome.triggers, outcome.rounds = strategy, triggers, rounds
        outcome.source = state.sources[chosen]
        outcome.refused = phrase_refusal(ctx.candidates[chosen])
        cost = decision.cost[0]
        if int(decision.action[0]) == ACTION_ESCALATE:
            case_id = f"unqueued-{ctx.episode}"
            if self.queue is not None:
                case = case_from_episode(
                    run=ctx.run,
                    episode=ctx.episode,
                    prompt=ctx.prompt,
                    candidates=ctx.candidates,
                    sources=state.sources,
                    order=order,
                    proposed=chosen,
                    triggers=triggers,
                    violations=violated,
                    strategy=strategy,
                    published=ctx.published,
                    message_ids=parents,
                    policy=self.policy,
                )
                case_id = await anyio.to_thread.run_sync(self.queue.submit, case)
            escalation = Escalation(
                case_id=case_id,
                triggers=triggers,
                candidates=tuple(order),
                proposed=chosen,
                reason=escalation_reason(triggers, chosen),
            )
            await self.publish(ctx, escalation, parents)
            outcome.status, outcome.case_id = "escalated", case_id
        else:
            rejected = tuple(
                c
                for i, c in enumerate(order)
                if c != chosen and (violated[c] or cost[i] > cost[chosen_i])
            )
            consensus = Consensus(
                candidate_id=chosen,
                text=ctx.candidates[chosen],
                rejected=rejected,
                strategy=strategy,
                source=state.sources[chosen],
            )
            await self.publish(ctx, consensus, parents)
            outcome.status = "consensus"
        return outcome


__all__ = ["Cast", "Coordinator", "EpisodeOutcome"]
