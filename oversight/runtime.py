"""The runtime: owns one task group, builds agents from a hierarchy, runs episodes concurrently.

An episode (DESIGN.md, "Episode semantics"): the base drafts; the agents that supervise the base
(critics, safety) assess the draft; their supervisors audit those findings (``every``,
``sample`` at a rate, or ``on-flag``), level by level; the decision core
(:func:`oversight.consensus.decide`) returns consensus, revise or escalate; the reviser revises
while violations remain, up to ``max_revision_rounds``; the judge ranks the candidates (both
orders). The final decision is a :class:`~oversight.messages.Consensus` or an
:class:`~oversight.messages.Escalation` into the human queue; an agent that raises or a backend
that hangs past ``episode_timeout`` becomes a :class:`~oversight.messages.Failure` for that
episode only.

Every message goes through the bus, whose interceptors journal it (and may replace or drop it);
many episodes run at once (``concurrency``), so model calls from different episodes meet in
the backends and batch.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from .agents import (
    Agent,
    AuditMixin,
    BaseAgent,
    CriticAgent,
    EpisodeContext,
    JudgeAgent,
    ReviserAgent,
    SafetyAgent,
    create_agent,
)
from .backends import ModelBackend, create_backend
from .bus import Bus, JournalInterceptor
from .consensus import (
    ACTION_ESCALATE,
    ACTION_REVISE,
    STRATEGY_NAMES,
    VERDICT_CODES,
    CompiledCore,
    FindingsBatch,
    combine_reports,
    decide,
    trigger_names,
)
from .journal import Journal
from .messages import (
    Conflict,
    Consensus,
    Critique,
    Envelope,
    Escalation,
    Failure,
    Prompt,
    Resolution,
    Revision,
    SafetyAssessment,
    envelope,
)
from .priority import PriorityGraph
from .prompts import PromptProblem

_DETAIL_KEYS = {
    "critique": "critiques",
    "safety_assessment": "safety",
    "audit": "audits",
    "judgment": "judgment",
    "conflict": "conflict",
    "resolution": "resolution",
}
"""Kinds of internal reasoning shown to reviewers in a case, and their key in its details."""


def episode_id(run: str, prompt_id: str) -> str:
    """Episode ids are fixed by run and prompt, so a resumed run reuses them (and the queue's
    idempotent submit never duplicates a case)."""
    return hashlib.blake2b(f"{run}\x00{prompt_id}".encode(), digest_size=12).hexdigest()


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
    """Whether the final (or proposed) answer is a refusal, by the scripted refusal check."""
    rounds: int = 0
    draft_violations: tuple[str, ...] = ()
    case_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class RunResult:
    """What :meth:`Runtime.run` returns."""

    run: str
    outcomes: list[EpisodeOutcome]
    skipped: int
    """Episodes already finished in the journal (resume)."""
    wall_seconds: float
    messages: int

    def counts(self) -> dict[str, Any]:
        status = Counter(o.status for o in self.outcomes)
        violations = Counter(p for o in self.outcomes for p in o.draft_violations)
        strategies = Counter(o.strategy for o in self.outcomes if o.status != "failed")
        triggers = Counter(t for o in self.outcomes for t in o.triggers)
        sources = Counter(o.source for o in self.outcomes if o.status == "consensus")
        done = len(self.outcomes)
        return {
            "episodes": done,
            "consensus": status.get("consensus", 0),
            "escalated": status.get("escalated", 0),
            "failed": status.get("failed", 0),
            "skipped_finished": self.skipped,
            "violations_per_principle": dict(sorted(violations.items())),
            "resolutions_per_strategy": dict(sorted(strategies.items())),
            "escalation_triggers": dict(sorted(triggers.items())),
            "targets_per_source": dict(sorted(sources.items())),
            "wall_seconds": round(self.wall_seconds, 3),
            "episodes_per_second": round(done / self.wall_seconds, 2) if self.wall_seconds else 0,
            "messages": self.messages,
        }


class _Reports:
    """Findings of one episode: per (agent, candidate, principle) the latest report."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str, str], tuple[int, float, float, str]] = {}

    def add(
        self,
        agent: str,
        candidate: str,
        principle: str,
        verdict: str,
        severity: float,
        confidence: float,
        message_id: str,
    ) -> None:
        self.cells[(agent, candidate, principle)] = (
            VERDICT_CODES[verdict],
            severity,
            confidence,
            message_id,
        )

    def of(self, agent: str, candidate: str) -> list[tuple[str, int, str]]:
        return [
            (p, v[0], v[3]) for (a, c, p), v in self.cells.items() if a == agent and c == candidate
        ]


class Runtime:
    """Runs a hierarchy over prompts. Build it, then ``await runtime.run(prompts)``."""

    def __init__(
        self,
        spec: Any,
        *,
        run_name: str,
        run_dir: str | Path,
        queue: Any | None = None,
        concurrency: int | None = None,
        episode_timeout: float = 300.0,
        backends: dict[str, ModelBackend] | None = None,
    ) -> None:
        self.spec = spec
        self.run_name = run_name
        self.run_dir = Path(run_dir)
        self.queue = queue
        self.concurrency = int(concurrency or getattr(spec.settings, "concurrency", 8) or 8)
        self.episode_timeout = episode_timeout
        self.constitution = spec.constitution
        self.settings = spec.settings
        self.graph = PriorityGraph(self.constitution)
        self.core = CompiledCore.from_config(self.graph, spec.policy)
        self.backends = dict(backends or {})
        for name, model in spec.models.items():
            if name not in self.backends:
                self.backends[name] = create_backend(model.backend, **dict(model.options))
        self.agents: dict[str, Agent] = {}
        for agent_spec in spec.agents:
            options = dict(agent_spec.options)
            if agent_spec.principles:
                options["principles"] = list(agent_spec.principles)
            backend = self.backends.get(agent_spec.model) if agent_spec.model else None
            self.agents[agent_spec.name] = create_agent(
                agent_spec.role, agent_spec.name, backend, options
            )
        self.levels: dict[str, int] = dict(spec.levels())
        self.edges = list(spec.supervision)
        base = [a for a in self.agents.values() if isinstance(a, BaseAgent)]
        self.base = base[0]
        revisers = [a for a in self.agents.values() if isinstance(a, ReviserAgent)]
        self.reviser = revisers[0] if revisers else None
        judges = [a for a in self.agents.values() if isinstance(a, JudgeAgent)]
        self.judge = judges[0] if judges else None
        self.pid_index = {pid: i for i, pid in enumerate(self.core.principle_ids)}
        self.on_outcome: list[Callable[[EpisodeOutcome], None]] = []

    # -- plumbing ------------------------------------------------------------------------------
    def _assessors(self) -> list[tuple[Agent, Any]]:
        """Agents that review the base model's output directly, with their edge."""
        out: list[tuple[Agent, Any]] = []
        for edge in self.edges:
            agent = self.agents[edge.supervisor]
            if edge.subject == self.base.name and isinstance(agent, CriticAgent | SafetyAgent):
                out.append((agent, edge))
        return out

    def _auditors_of(self, subject: str) -> list[tuple[AuditMixin, Any]]:
        out: list[tuple[AuditMixin, Any]] = []
        for edge in self.edges:
            agent = self.agents[edge.supervisor]
            if edge.subject == subject and isinstance(agent, AuditMixin):
                out.append((agent, edge))
        return out

    @staticmethod
    def _selected(ctx: EpisodeContext, edge: Any, flagged: bool, *keys: object) -> bool:
        mode = getattr(edge, "mode", "every")
        if mode == "every":
            return True
        if mode == "on-flag":
            return flagged
        return ctx.draw("sample", edge.supervisor, edge.subject, *keys) < float(edge.rate)

    # -- one episode ---------------------------------------------------------------------------
    async def _episode(self, bus: Bus, prompt: Prompt, journal: Journal) -> EpisodeOutcome:
        ep = episode_id(self.run_name, prompt.prompt_id)
        ctx = EpisodeContext(
            run=self.run_name,
            episode=ep,
            prompt=prompt,
            constitution=self.constitution,
            settings=self.settings,
        )

        async def publish(payload: Any, sender: str, parents: Sequence[str]) -> Envelope | None:
            env = envelope(
                payload,
                run=self.run_name,
                episode=ep,
                sender=sender,
                topic=f"episode.{payload.kind}",
                parents=tuple(parents),
            )
            delivered = await bus.publish(env)
            if delivered is not None:
                ctx.published.append(delivered)
            return delivered

        prompt_env = await publish(prompt, "runtime", ())
        assert prompt_env is not None
        outcome = EpisodeOutcome(prompt.prompt_id, ep, "failed", labels=dict(prompt.labels))
        try:
            with anyio.fail_after(self.episode_timeout):
                outcome = await self._oversee(ctx, publish, prompt_env, outcome)
        except TimeoutError:
            await publish(
                Failure(
                    stage=ctx.stage,
                    error_type="TimeoutError",
                    message=f"episode exceeded {self.episode_timeout:g}s",
                ),
                "runtime",
                (prompt_env.id,),
            )
            outcome.status = "failed"
        except Exception as exc:  # an agent that raises fails its episode, not the run
            while isinstance(exc, ExceptionGroup) and exc.exceptions:
                exc = exc.exceptions[0]
            await publish(
                Failure(
                    stage=ctx.stage,
                    error_type=type(exc).__name__,
                    message=str(exc)[:2000],
                    agent=getattr(exc, "agent", None),
                ),
                "runtime",
                (prompt_env.id,),
            )
            outcome.status = "failed"
        journal.flush()
        return outcome

    async def _oversee(
        self,
        ctx: EpisodeContext,
        publish: Any,
        prompt_env: Envelope,
        outcome: EpisodeOutcome,
    ) -> EpisodeOutcome:
        draft = await self.base.draft(ctx)
        draft_env = await publish(draft, self.base.name, (prompt_env.id,))
        ctx.candidates["c0"] = draft_env.payload.text if draft_env else draft.text
        envs: dict[str, Envelope] = {"c0": draft_env} if draft_env else {}
        sources: dict[str, str] = {"c0": "draft"}
        reports = _Reports()
        finding_ids: list[str] = []
        ctx.stage = "assess"
        await self._assess(ctx, "c0", envs["c0"].id, reports, publish, finding_ids)
        outcome.draft_violations = tuple(
            sorted({p for (a, c, p), v in reports.cells.items() if c == "c0" and v[0] == 1})
        )
        max_rounds = int(self.settings.max_revision_rounds) if self.reviser is not None else 0
        rounds = 0
        judgment_env: Envelope | None = None
        judged: list[str] = []
        judge_scores: dict[str, float] = {}
        judge_conf = 0.0
        while True:
            order = list(ctx.candidates)
            if self.judge is not None and len(order) > 1 and order != judged:
                judged = order
                ctx.stage = "judge"
                judgment = await self.judge.rank(ctx, order)
                judgment_env = await publish(
                    judgment, self.judge.name, tuple(envs[c].id for c in order)
                )
                judge_scores, judge_conf = dict(judgment.scores), judgment.confidence
            batch = self._batch(ctx, order, reports, judge_scores, judge_conf, max_rounds - rounds)
            decision = decide(batch, self.core)
            chosen = order[int(decision.chosen[0])]
            if int(decision.action[0]) != ACTION_REVISE or self.reviser is None:
                break  # with no reviser max_rounds is 0, so decide() never asks to revise
            rounds += 1
            violated = [
                self.core.principle_ids[i]
                for i in np.flatnonzero(batch.verdict[0, order.index(chosen)] == 1)
            ]
            first = len(order)
            ctx.stage = "revise"
            revisions: list[Revision] = await self.reviser.revise(
                ctx, chosen, violated, rounds, first
            )
            if rounds == max_rounds:
                fallback = ReviserAgent.template_revision(
                    ctx, chosen, violated, rounds, f"c{first + len(revisions)}"
                )
                if fallback is not None and fallback.text not in {r.text for r in revisions}:
                    revisions.append(fallback)
            ctx.stage = "assess"
            for revision in revisions:
                rev_env = await publish(revision, self.reviser.name, (envs[chosen].id,))
                if rev_env is None:
                    continue
                ctx.candidates[revision.candidate_id] = rev_env.payload.text
                envs[revision.candidate_id] = rev_env
                sources[revision.candidate_id] = revision.source
                await self._assess(
                    ctx, revision.candidate_id, rev_env.id, reports, publish, finding_ids
                )
            if not revisions:  # nothing new to assess: decide with no rounds left
                max_rounds = rounds
        ctx.stage = "finish"
        return await self._finish(
            ctx,
            publish,
            decision,
            batch,
            order,
            envs,
            sources,
            finding_ids,
            judgment_env,
            rounds,
            outcome,
        )

    async def _assess(
        self,
        ctx: EpisodeContext,
        candidate: str,
        candidate_env: str,
        reports: _Reports,
        publish: Any,
        finding_ids: list[str],
    ) -> None:
        """First-level findings in parallel, then audits level by level."""
        assessors = self._assessors()
        results: list[tuple[Agent, list[Any]]] = []

        async def assess_one(agent: Agent) -> None:
            if isinstance(agent, SafetyAgent):
                results.append((agent, [await agent.assess(ctx, candidate)]))
            else:
                assert isinstance(agent, CriticAgent)
                results.append((agent, await agent.assess(ctx, candidate)))

        # Phase 1: every / sampled assessors; phase 2: on-flag assessors, when phase 1 flagged.
        flagged_any = False
        for on_flag in (False, True):
            if on_flag and not flagged_any:
                break
            results.clear()
            async with anyio.create_task_group() as tg:
                for agent, edge in assessors:
                    is_on_flag = getattr(edge, "mode", "every") == "on-flag"
                    if is_on_flag == on_flag and (
                        on_flag or self._selected(ctx, edge, False, candidate)
                    ):
                        tg.start_soon(assess_one, agent)
            results.sort(key=lambda item: item[0].name)  # publish in a fixed order
            for agent, payloads in results:
                for payload in payloads:
                    env = await publish(payload, agent.name, (candidate_env,))
                    if env is None:
                        continue
                    finding_ids.append(env.id)
                    verdict, severity, confidence = self._finding(payload)
                    flagged_any |= verdict != "satisfied"
                    reports.add(
                        agent.name,
                        candidate,
                        payload.principle_id,
                        verdict,
                        severity,
                        confidence,
                        env.id,
                    )
        # Audits: supervisors of reporting agents re-check their cells, level by level.
        frontier = {agent.name for agent, _ in assessors}
        seen = set(frontier)
        while frontier:
            next_frontier: set[str] = set()
            for subject in sorted(frontier, key=lambda n: self.levels.get(n, 0)):
                for auditor, edge in self._auditors_of(subject):
                    cells = reports.of(subject, candidate)
                    for principle, code, message_id in cells:
                        if not self._selected(ctx, edge, code != 0, candidate, principle):
                            continue
                        audit = await auditor.audit(
                            ctx,
                            subject_message=message_id,
                            subject_agent=subject,
                            candidate_id=candidate,
                            principle_id=principle,
                            subject_verdict=("satisfied", "violated", "uncertain")[code],
                        )
                        env = await publish(audit, auditor.name, (message_id,))
                        if env is None:
                            continue
                        finding_ids.append(env.id)
                        spec = self.constitution.principle(principle)
                        severity = float(spec.severity) if audit.verdict == "violated" else 0.0
                        reports.add(
                            auditor.name,
                            candidate,
                            principle,
                            audit.verdict,
                            severity,
                            audit.confidence,
                            env.id,
                        )
                    if auditor.name not in seen:
                        seen.add(auditor.name)
                        next_frontier.add(auditor.name)
            frontier = next_frontier

    def _finding(self, payload: Critique | SafetyAssessment) -> tuple[str, float, float]:
        if isinstance(payload, SafetyAssessment):
            verdict = SafetyAgent.verdict_of(payload)
            spec = self.constitution.principle(payload.principle_id)
            severity = float(spec.severity) * payload.risk if verdict != "satisfied" else 0.0
            return verdict, severity, payload.confidence
        return payload.verdict, payload.severity, payload.confidence

    def _batch(
        self,
        ctx: EpisodeContext,
        order: list[str],
        reports: _Reports,
        judge_scores: dict[str, float],
        judge_conf: float,
        rounds_left: int,
    ) -> FindingsBatch:
        agents = sorted({a for (a, _, _) in reports.cells})
        n_c, n_p, n_r = len(order), len(self.core.principle_ids), max(len(agents), 1)
        verdict = np.full((1, n_r, n_c, n_p), -1, dtype=np.int8)
        severity = np.zeros((1, n_r, n_c, n_p), dtype=np.float32)
        confidence = np.zeros((1, n_r, n_c, n_p), dtype=np.float32)
        for (agent, cand, principle), cell in reports.cells.items():
            r, c, p = agents.index(agent), order.index(cand), self.pid_index[principle]
            verdict[0, r, c, p], severity[0, r, c, p], confidence[0, r, c, p] = cell[:3]
        level = np.array([self.levels.get(a, 1) for a in agents] or [1])
        combined = combine_reports(verdict, severity, confidence, level)
        batch = FindingsBatch.empty(1, n_c, n_p)
        batch.verdict[:], batch.severity[:], batch.confidence[:] = combined[:3]
        batch.disagreement[:] = combined[3]
        batch.valid[:] = True
        for c, cand in enumerate(order):
            if cand in judge_scores:
                batch.judge_score[0, c] = judge_scores[cand]
        batch.judge_confidence[0] = judge_conf
        batch.context[0] = self.core.context_index(ctx.prompt.context)
        batch.audit_draw[0] = ctx.draw("audit")
        batch.rounds_left[0] = rounds_left
        return batch

    async def _finish(
        self,
        ctx: EpisodeContext,
        publish: Any,
        decision: Any,
        batch: FindingsBatch,
        order: list[str],
        envs: dict[str, Envelope],
        sources: dict[str, str],
        finding_ids: list[str],
        judgment_env: Envelope | None,
        rounds: int,
        outcome: EpisodeOutcome,
    ) -> EpisodeOutcome:
        from .backends.scripted import is_refusal

        chosen_i = int(decision.chosen[0])
        chosen = order[chosen_i]
        strategy = STRATEGY_NAMES[int(decision.strategy[0])]
        triggers = trigger_names(int(decision.triggers[0]))
        violated = {
            cand: tuple(
                self.core.principle_ids[p] for p in np.flatnonzero(batch.verdict[0, c] == 1)
            )
            for c, cand in enumerate(order)
        }
        parents = [envs[chosen].id, *finding_ids]
        if judgment_env is not None:
            parents.append(judgment_env.id)
        if bool(decision.conflict[0]):
            conflict_env = await publish(
                Conflict(
                    principles=tuple(sorted({p for v in violated.values() for p in v})),
                    candidates=violated,
                    findings=tuple(finding_ids),
                ),
                "runtime",
                tuple(finding_ids),
            )
            if conflict_env is not None:
                parents.append(conflict_env.id)
        resolution_env = None
        if strategy != "none":
            resolution_env = await publish(
                self._resolution(ctx, strategy, chosen, violated, decision, order),
                "runtime",
                tuple(parents),
            )
            if resolution_env is not None:
                parents.append(resolution_env.id)
        outcome.strategy, outcome.triggers, outcome.rounds = strategy, triggers, rounds
        outcome.source = sources[chosen]
        outcome.refused = is_refusal(ctx.candidates[chosen])
        cost = decision.cost[0]
        rejected = tuple(
            c
            for i, c in enumerate(order)
            if c != chosen and (violated[c] or cost[i] > cost[chosen_i])
        )
        if int(decision.action[0]) == ACTION_ESCALATE:
            case_id = await self._submit_case(
                ctx, order, chosen, triggers, violated, sources, parents, strategy
            )
            await publish(
                Escalation(
                    case_id=case_id,
                    triggers=triggers,
                    candidates=tuple(order),
                    reason=f"{', '.join(triggers)}; agents proposed {chosen}",
                ),
                "runtime",
                tuple(parents),
            )
            outcome.status, outcome.case_id = "escalated", case_id
        else:
            await publish(
                Consensus(
                    candidate_id=chosen,
                    text=ctx.candidates[chosen],
                    rejected=rejected,
                    strategy=strategy,
                    source=sources[chosen],
                ),
                "runtime",
                tuple(parents),
            )
            outcome.status = "consensus"
        return outcome

    def _resolution(
        self,
        ctx: EpisodeContext,
        strategy: str,
        chosen: str,
        violated: dict[str, tuple[str, ...]],
        decision: Any,
        order: list[str],
    ) -> Resolution:
        rules = tuple(r.id for r in self.graph.rules_for(ctx.prompt.context))
        path: tuple[str, ...] = ()
        rationale = ""
        if strategy == "priority":
            for other in order:
                if other != chosen and not path:
                    path = tuple(
                        self.graph.decisive_path(
                            violated[chosen], violated[other], ctx.prompt.context
                        )
                    )
            rationale = (
                f"{chosen} violates only principles that {' > '.join(path) or 'higher ones'} "
                "outrank"
            )
        elif strategy == "weighted":
            rationale = "weighted cost (weight x severity x confidence) decided with the margin"
        elif strategy == "review":
            rationale = "too close to call; the supervising judge's ranking decided"
        elif strategy == "human":
            rationale = "no strategy could decide; escalated to people"
        scores = {c: round(float(decision.cost[0][i]), 4) for i, c in enumerate(order)}
        return Resolution(
            strategy=strategy,
            winner=None if strategy == "human" else chosen,
            path=path,
            conditional_rules=rules,
            scores=scores,
            rationale=rationale,
        )

    async def _submit_case(
        self,
        ctx: EpisodeContext,
        order: list[str],
        chosen: str,
        triggers: tuple[str, ...],
        violated: dict[str, tuple[str, ...]],
        sources: dict[str, str],
        parents: list[str],
        strategy: str,
    ) -> str:
        if self.queue is None:
            return f"unqueued-{ctx.episode}"
        from .escalation import CaseSubmission

        candidates = [{"id": c, "text": ctx.candidates[c], "source": sources[c]} for c in order]
        reasoning: dict[str, list[Any]] = {}
        for env in ctx.published:
            key = _DETAIL_KEYS.get(env.payload.kind)
            if key is not None:
                reasoning.setdefault(key, []).append(env.model_dump(mode="json"))
        submission = CaseSubmission(
            run=self.run_name,
            episode=ctx.episode,
            prompt_id=ctx.prompt.prompt_id,
            reason=f"{', '.join(triggers)}; agents proposed {chosen}",
            prompt=[t.model_dump() for t in ctx.prompt.messages],
            candidates=candidates,
            proposed=chosen,
            triggers=list(triggers),
            principles=sorted({p for v in violated.values() for p in v}),
            priority=self.spec.policy.case_priority(triggers)
            if hasattr(self.spec.policy, "case_priority")
            else len(triggers),
            reviewers_required=int(getattr(self.spec.policy, "reviewers_per_case", 1)),
            details={
                **reasoning,
                "strategy": strategy,
                "violations": {k: list(v) for k, v in violated.items()},
                "prompt_id": ctx.prompt.prompt_id,
                "context": dict(ctx.prompt.context),
            },
            message_ids=list(parents),
        )
        return await anyio.to_thread.run_sync(self.queue.submit, submission)

    # -- the run -------------------------------------------------------------------------------
    async def run(
        self,
        prompts: Sequence[Prompt | PromptProblem],
        *,
        resume: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> RunResult:
        """Run every prompt not already finished in the journal; return the outcomes."""
        started = time.perf_counter()
        journal, scan = Journal.open(self.run_dir / "journal.jsonl", resume=resume)
        finished = scan.finished_episodes()
        todo = [p for p in prompts if episode_id(self.run_name, p.prompt_id) not in finished]
        skipped = len(prompts) - len(todo)
        outcomes: list[EpisodeOutcome] = []
        done = 0
        try:
            async with Bus(interceptors=[JournalInterceptor(journal.file)]) as bus:
                send, receive = anyio.create_memory_object_stream[Prompt | PromptProblem](
                    self.concurrency
                )

                async def worker(items_stream: Any) -> None:
                    nonlocal done
                    async with items_stream as items:
                        async for item in items:
                            if isinstance(item, PromptProblem):
                                outcome = await self._problem(bus, item, journal)
                            else:
                                outcome = await self._episode(bus, item, journal)
                            outcomes.append(outcome)
                            for callback in self.on_outcome:
                                callback(outcome)
                            done += 1
                            if progress is not None:
                                progress(done, len(todo))

                async with anyio.create_task_group() as tg:
                    with receive:
                        for _ in range(min(self.concurrency, max(len(todo), 1))):
                            tg.start_soon(worker, receive.clone())
                    async with send:
                        for item in todo:
                            await send.send(item)
                messages = bus.statistics().total().published
        finally:
            journal.close()
            for backend in self.backends.values():
                await backend.aclose()
        return RunResult(
            run=self.run_name,
            outcomes=outcomes,
            skipped=skipped,
            wall_seconds=time.perf_counter() - started,
            messages=int(messages or 0),
        )

    async def _problem(self, bus: Bus, problem: PromptProblem, journal: Journal) -> EpisodeOutcome:
        ep = episode_id(self.run_name, problem.prompt_id)
        await bus.publish(
            envelope(
                Failure(stage="input", error_type="InputError", message=problem.message),
                run=self.run_name,
                episode=ep,
                sender="runtime",
                topic="episode.failure",
            )
        )
        journal.flush()
        return EpisodeOutcome(problem.prompt_id, ep, "failed")
