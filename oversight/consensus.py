"""The decision core: one pure, vectorised function from an episode's findings to a decision.

The live runtime calls :func:`decide` with one episode (``E = 1``); the recursive-oversight
simulator calls the very same function with ``E = 10^5`` episodes per chunk. There is no second
implementation of the rules to drift.

Arrays are indexed by episode ``E``, candidate ``C`` (0 is the base model's draft, then the
revisions) and principle ``P`` (the order of :attr:`PriorityGraph.principle_ids`).

The rules, in order:

1. A candidate with no violated principle is **acceptable**. If one exists, it is chosen
   (the judge's favourite among several) and nothing conflicted (strategy ``none``).
2. Otherwise, while revision rounds are left, the action is **revise** (the cheapest candidate is
   the one to revise).
3. Otherwise the candidates conflict: they differ in which principles they violate. The resolver
   tries, in DESIGN.md's order:

   a. **priority ordering**: candidate *a* beats *b* when every principle violated only by *a* is
      prevailed over (in the priority graph, with the context's conditional edges) by some
      principle violated only by *b*. A candidate that beats every other wins. Because the
      graph is acyclic this relation is antisymmetric, so the winner is unique.
   b. **weighted scoring**: cost = sum of weight x severity x confidence over violated
      principles; the cheapest wins when it is cheaper than the runner-up by the policy's margin.
   c. **hierarchical review**: the supervising judge's ranking decides when its confidence
      reaches the policy's ``review_confidence``.
   d. **human oversight**: still open, so the case escalates (trigger ``unresolved``).

4. Escalation triggers of the policy then apply to the chosen candidate: disagreement between
   agents on its findings, low confidence (or an ``uncertain`` verdict), a violation at or above
   a principle's severity threshold, an unresolved conflict, and a random audit sample of cases
   that would otherwise be consensus. Any trigger makes the action **escalate**.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_args

import numpy as np

from .messages import Audit, Critique, SafetyAssessment, Strategy, TriggerName

if TYPE_CHECKING:
    from .escalation.policy import EscalationPolicy
    from .priority import PriorityGraph

VERDICT_NONE, VERDICT_SATISFIED, VERDICT_VIOLATED, VERDICT_UNCERTAIN = -1, 0, 1, 2
ACTION_CONSENSUS, ACTION_REVISE, ACTION_ESCALATE = 0, 1, 2
STRATEGY_NONE, STRATEGY_PRIORITY, STRATEGY_WEIGHTED, STRATEGY_REVIEW, STRATEGY_HUMAN = 0, 1, 2, 3, 4
(
    TRIGGER_DISAGREEMENT,
    TRIGGER_LOW_CONFIDENCE,
    TRIGGER_SEVERITY,
    TRIGGER_UNRESOLVED,
    TRIGGER_AUDIT,
) = 1, 2, 4, 8, 16

VERDICT_NAMES = {
    VERDICT_SATISFIED: "satisfied",
    VERDICT_VIOLATED: "violated",
    VERDICT_UNCERTAIN: "uncertain",
}
VERDICT_CODES = {name: code for code, name in VERDICT_NAMES.items()}
ACTION_NAMES = ("consensus", "revise", "escalate")
STRATEGY_NAMES: tuple[str, ...] = get_args(Strategy)
"""Strategy names by code (``STRATEGY_NONE`` = 0 ...), from :data:`oversight.messages.Strategy`."""
TRIGGER_NAMES: dict[int, str] = {1 << i: name for i, name in enumerate(get_args(TriggerName))}
"""Trigger bit -> name, from :data:`oversight.messages.TriggerName` (the one definition)."""
assert STRATEGY_NAMES[STRATEGY_HUMAN] == "human" and TRIGGER_NAMES[TRIGGER_AUDIT] == "audit"


def trigger_names(bits: int) -> tuple[str, ...]:
    """The names of the triggers set in a bit mask, in a fixed order."""
    return tuple(name for bit, name in TRIGGER_NAMES.items() if bits & bit)


def verdict_from_probability(p_yes: Any, band: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Map P("Yes, it violates") to a verdict code and a confidence in [0, 1].

    ``p >= 0.5 + band`` is violated, ``p <= 0.5 - band`` satisfied, anything between uncertain;
    the confidence is ``|2p - 1|`` (0 at a coin flip, 1 at certainty).
    """
    p = np.asarray(p_yes, dtype=np.float32)
    verdict = np.where(
        p >= 0.5 + band,
        VERDICT_VIOLATED,
        np.where(p <= 0.5 - band, VERDICT_SATISFIED, VERDICT_UNCERTAIN),
    ).astype(np.int8)
    confidence = np.abs(2.0 * p - 1.0).astype(np.float32)
    return verdict, confidence


def combine_reports(
    verdict: np.ndarray, severity: np.ndarray, confidence: np.ndarray, level: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merge the reports of ``R`` agents on the same cells into one finding per cell.

    Inputs are ``[E, R, C, P]`` (verdict ``-1`` where an agent did not report) and ``level[R]``,
    each reporter's level in the supervision hierarchy. The highest level that reported decides
    (a supervisor's audit overrides its subject); at the same level a violation outweighs a
    satisfaction. The severity is the highest severity among the deciding violations, the
    confidence the mean confidence of the deciding reporters that agree with the result.
    ``disagreement`` is set where any two reporters, at any level, said violated and satisfied.
    """
    verdict = np.asarray(verdict)
    reported = verdict != VERDICT_NONE
    lv = np.asarray(level, dtype=np.int32)[None, :, None, None]
    top = np.where(reported, lv, -1).max(axis=1, keepdims=True)
    deciding = reported & (lv == top)
    any_v = (deciding & (verdict == VERDICT_VIOLATED)).any(axis=1)
    any_u = (deciding & (verdict == VERDICT_UNCERTAIN)).any(axis=1)
    any_s = (deciding & (verdict == VERDICT_SATISFIED)).any(axis=1)
    final = np.where(
        any_v,
        VERDICT_VIOLATED,
        np.where(any_u, VERDICT_UNCERTAIN, np.where(any_s, VERDICT_SATISFIED, VERDICT_NONE)),
    ).astype(np.int8)
    agree = deciding & (verdict == final[:, None])
    n_agree = agree.sum(axis=1)
    conf = np.where(
        n_agree > 0,
        (np.where(agree, confidence, 0.0).sum(axis=1) / np.maximum(n_agree, 1)),
        0.0,
    ).astype(np.float32)
    sev = np.where(
        final == VERDICT_VIOLATED,
        np.where(deciding & (verdict == VERDICT_VIOLATED), severity, 0.0).max(axis=1),
        0.0,
    ).astype(np.float32)
    disagreement = (reported & (verdict == VERDICT_VIOLATED)).any(axis=1) & (
        reported & (verdict == VERDICT_SATISFIED)
    ).any(axis=1)
    return final, sev, conf, disagreement


@dataclass
class FindingsBatch:
    """The findings of ``E`` episodes, as arrays (see the module docstring)."""

    verdict: np.ndarray
    """int8 ``[E, C, P]``: -1 not assessed, 0 satisfied, 1 violated, 2 uncertain."""
    severity: np.ndarray
    """float32 ``[E, C, P]`` in [0, 1]."""
    confidence: np.ndarray
    """float32 ``[E, C, P]`` in [0, 1]."""
    disagreement: np.ndarray
    """bool ``[E, C, P]``: agents disagreed on this cell."""
    valid: np.ndarray
    """bool ``[E, C]``: the candidate exists."""
    judge_score: np.ndarray
    """float32 ``[E, C]``: the judge's preference for each candidate (NaN where none)."""
    judge_confidence: np.ndarray
    """float32 ``[E]``: the judge's confidence in its top choice (0 where no judge)."""
    context: np.ndarray
    """int32 ``[E]``: index of the episode's context in :attr:`CompiledCore.dominance`."""
    audit_draw: np.ndarray
    """float32 ``[E]``: a uniform draw in [0, 1) deciding random audit sampling."""
    rounds_left: np.ndarray
    """int32 ``[E]``: revision rounds still allowed."""

    @classmethod
    def empty(cls, episodes: int, candidates: int, principles: int) -> FindingsBatch:
        """A batch with nothing assessed, no judge and no rounds left; fill in what you know."""
        shape = (episodes, candidates, principles)
        return cls(
            verdict=np.full(shape, VERDICT_NONE, dtype=np.int8),
            severity=np.zeros(shape, dtype=np.float32),
            confidence=np.zeros(shape, dtype=np.float32),
            disagreement=np.zeros(shape, dtype=bool),
            valid=np.zeros((episodes, candidates), dtype=bool),
            judge_score=np.full((episodes, candidates), np.nan, dtype=np.float32),
            judge_confidence=np.zeros(episodes, dtype=np.float32),
            context=np.zeros(episodes, dtype=np.int32),
            audit_draw=np.ones(episodes, dtype=np.float32),
            rounds_left=np.zeros(episodes, dtype=np.int32),
        )


@dataclass
class Decisions:
    """What :func:`decide` returns, per episode."""

    action: np.ndarray
    """int8 ``[E]``: consensus, revise or escalate."""
    chosen: np.ndarray
    """int16 ``[E]``: the chosen (or proposed, or to-be-revised) candidate."""
    strategy: np.ndarray
    """int8 ``[E]``: the resolution strategy that decided."""
    triggers: np.ndarray
    """int16 ``[E]``: escalation trigger bits."""
    cost: np.ndarray
    """float32 ``[E, C]``: weighted cost of each candidate (inf where invalid)."""
    conflict: np.ndarray
    """bool ``[E]``: no candidate was acceptable and candidates violated different principles."""


@dataclass
class CompiledCore:
    """The priority graph and escalation policy compiled to arrays once."""

    principle_ids: list[str]
    """Principle order of the P axis."""
    weights: np.ndarray
    """float32 ``[P]``: principle weights."""
    severity_threshold: np.ndarray
    """float32 ``[P]``: a violation at or above this severity escalates (inf: never)."""
    dominance: np.ndarray
    """bool ``[K, P, P]``: ``[k, p, q]`` is True when p prevails over q in context k."""
    disagreement: bool = True
    """Escalate when agents disagree on the chosen candidate."""
    low_confidence: float = 0.0
    """Escalate when a finding on the chosen candidate has a lower confidence than this."""
    unresolved: bool = True
    """Escalate when no strategy resolved the conflict (else the cheapest candidate stands)."""
    audit_rate: float = 0.0
    """Share of consensus cases sent to people at random."""
    weighted_margin: float = 0.1
    """Weighted scoring decides only when the runner-up costs at least this much more."""
    review_confidence: float = 0.6
    """Hierarchical review decides only when the judge is at least this confident."""
    graph: Any = None
    """The :class:`PriorityGraph` compiled (for context lookups and explanations)."""
    context_keys: dict[tuple[str, ...], int] = field(default_factory=dict)
    """Applicable conditional-rule ids -> index into :attr:`dominance`."""

    @classmethod
    def from_config(cls, graph: PriorityGraph, policy: EscalationPolicy) -> CompiledCore:
        ids = list(graph.principle_ids)
        triggers = policy.triggers
        thresholds = np.full(len(ids), np.inf, dtype=np.float32)
        for pid, value in triggers.severity.items():
            if pid in ids:
                thresholds[ids.index(pid)] = value
        core = cls(
            principle_ids=ids,
            weights=np.asarray(graph.weights(), dtype=np.float32),
            severity_threshold=thresholds,
            dominance=np.asarray(graph.dominance({}), dtype=bool)[None],
            disagreement=bool(triggers.disagreement),
            low_confidence=float(triggers.low_confidence),
            unresolved=bool(triggers.unresolved),
            audit_rate=float(triggers.audit_rate),
            weighted_margin=float(policy.weighted_margin),
            review_confidence=float(policy.review_confidence),
            graph=graph,
        )
        core.context_keys[tuple(graph.context_key({}))] = 0
        return core

    def context_index(self, context: Mapping[str, str]) -> int:
        """Index of a context's dominance matrix, compiling it on first use."""
        if self.graph is None:
            return 0
        key = tuple(self.graph.context_key(context))
        index = self.context_keys.get(key)
        if index is None:
            matrix = np.asarray(self.graph.dominance(context), dtype=bool)[None]
            self.dominance = np.concatenate([self.dominance, matrix], axis=0)
            index = self.context_keys[key] = len(self.dominance) - 1
        return index

    def principle_index(self, principle_id: str) -> int:
        return self.principle_ids.index(principle_id)


Finding = Critique | SafetyAssessment | Audit
"""A message that reports a verdict on one (candidate, principle) cell."""


def finding_of(payload: Finding, default_severity: float) -> tuple[str, float, float]:
    """``(verdict, severity, confidence)`` of a finding message.

    A critique says all three. A safety assessment's verdict comes from its risk (the default
    uncertainty band of :func:`verdict_from_probability`, as ``SafetyAgent.verdict_of``) and
    its severity is the principle's ``default_severity`` x risk. An audit's severity is the
    principle's default when it finds a violation.
    """
    if isinstance(payload, SafetyAssessment):
        verdicts, _ = verdict_from_probability([payload.risk])
        verdict = VERDICT_NAMES[int(verdicts[0])]
        severity = default_severity * payload.risk if verdict != "satisfied" else 0.0
        return verdict, severity, payload.confidence
    if isinstance(payload, Audit):
        severity = default_severity if payload.verdict == "violated" else 0.0
        return payload.verdict, severity, payload.confidence
    return payload.verdict, payload.severity, payload.confidence


class EpisodeFindings:
    """The findings of one live episode: per (agent, candidate, principle) the latest report,
    and the :class:`FindingsBatch` (``E = 1``) that :func:`decide` takes."""

    def __init__(self, core: CompiledCore, levels: Mapping[str, int]) -> None:
        self.core = core
        self.levels = levels
        """Each agent's level in the supervision hierarchy (a higher level's report decides)."""
        self.cells: dict[tuple[str, str, str], tuple[int, float, float, str]] = {}
        """(agent, candidate, principle) -> (verdict code, severity, confidence, message id)."""
        self._index = {pid: i for i, pid in enumerate(core.principle_ids)}

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
        """Record one report (replacing the agent's earlier report on the same cell)."""
        self.cells[(agent, candidate, principle)] = (
            VERDICT_CODES[verdict],
            severity,
            confidence,
            message_id,
        )

    def of(self, agent: str, candidate: str) -> list[tuple[str, int, str]]:
        """``(principle, verdict code, message id)`` of an agent's reports on a candidate."""
        return [
            (p, v[0], v[3]) for (a, c, p), v in self.cells.items() if a == agent and c == candidate
        ]

    def violations(self, candidate: str) -> tuple[str, ...]:
        """Principles any agent reported violated by the candidate, sorted."""
        return tuple(
            sorted(
                {
                    p
                    for (_, c, p), v in self.cells.items()
                    if c == candidate and v[0] == VERDICT_VIOLATED
                }
            )
        )

    def batch(
        self,
        order: Sequence[str],
        *,
        judge_scores: Mapping[str, float],
        judge_confidence: float,
        context: Mapping[str, str],
        audit_draw: float,
        rounds_left: int,
    ) -> FindingsBatch:
        """The batch of this episode over the candidates ``order``: the reports combined per
        cell (:func:`combine_reports`), the judge's scores, the context and the draws."""
        core = self.core
        agents = sorted({a for (a, _, _) in self.cells})
        n_c, n_p, n_r = len(order), len(core.principle_ids), max(len(agents), 1)
        verdict = np.full((1, n_r, n_c, n_p), -1, dtype=np.int8)
        severity = np.zeros((1, n_r, n_c, n_p), dtype=np.float32)
        confidence = np.zeros((1, n_r, n_c, n_p), dtype=np.float32)
        for (agent, cand, principle), cell in self.cells.items():
            r, c, p = agents.index(agent), order.index(cand), self._index[principle]
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
        batch.judge_confidence[0] = judge_confidence
        batch.context[0] = core.context_index(context)
        batch.audit_draw[0] = audit_draw
        batch.rounds_left[0] = rounds_left
        return batch


def violated_principles(
    batch: FindingsBatch, core: CompiledCore, order: Sequence[str], episode: int = 0
) -> dict[str, tuple[str, ...]]:
    """Candidate id -> the principles the batch finds it violates (principle order)."""
    return {
        cand: tuple(core.principle_ids[p] for p in np.flatnonzero(batch.verdict[episode, c] == 1))
        for c, cand in enumerate(order)
    }


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[e, index[e]]`` for every episode e (values ``[E, C, ...]``)."""
    return values[np.arange(len(values)), index]


def decide(batch: FindingsBatch, core: CompiledCore) -> Decisions:
    """Decide every episode of the batch: consensus, revise or escalate, and why."""
    verdict, valid = batch.verdict, batch.valid
    n_episodes, n_candidates, _ = verdict.shape
    violated = (verdict == VERDICT_VIOLATED) & valid[:, :, None]
    cost = (violated * core.weights * batch.severity * batch.confidence).sum(axis=2)
    cost = np.where(valid, cost, np.inf).astype(np.float32)
    acceptable = valid & ~violated.any(axis=2)
    any_acceptable = acceptable.any(axis=1)

    judge = np.nan_to_num(batch.judge_score, nan=-1.0)
    # 1. acceptable candidates: the judge's favourite, earliest on ties.
    pick_acceptable = np.argmax(np.where(acceptable, judge, -np.inf), axis=1)
    cheapest = np.argmin(cost, axis=1)

    # 3a. priority ordering between candidates' exclusive violation sets.
    dom = core.dominance[batch.context]  # [E, P, P]
    va = violated[:, :, None, :]  # a
    vb = violated[:, None, :, :]  # b
    excl_a = va & ~vb  # [E, C, C, P]: violated by a only
    excl_b = vb & ~va
    n_p = violated.shape[2]
    covered = (
        np.matmul(
            excl_b.reshape(n_episodes, n_candidates * n_candidates, n_p).astype(np.float32),
            dom.astype(np.float32),
        ).reshape(excl_b.shape)
        > 0
    )
    beats = excl_b.any(axis=3) & (~excl_a | covered).all(axis=3)
    pair_valid = valid[:, :, None] & valid[:, None, :]
    eye = np.eye(n_candidates, dtype=bool)[None]
    # Candidates that violate the same principles tie; a winner beats every other candidate
    # except its ties, and beats at least one. Among tied winners the judge's favourite (then
    # the earliest) is chosen.
    same_set = pair_valid & ~(excl_a.any(axis=3) | excl_b.any(axis=3))
    beats_all = (
        ((beats & pair_valid) | same_set | eye | ~valid[:, None, :]).all(axis=2)
        & (beats & pair_valid).any(axis=2)
        & valid
    )
    has_priority_winner = beats_all.any(axis=1)
    priority_winner = np.argmax(np.where(beats_all, judge, -np.inf), axis=1)

    # 3b. weighted scoring with a margin, against the cheapest candidate that violates a
    # different set of principles (candidates with the same set are ties, not rivals).
    best_cost = _take(cost, cheapest)
    rivals = ~_take(same_set | eye, cheapest)
    runner_up = np.where(rivals & valid, cost, np.inf).min(axis=1)
    weighted_ok = np.isfinite(runner_up) & ((runner_up - best_cost) >= core.weighted_margin)

    # 3c. hierarchical review by the judge.
    has_judge = ~np.isnan(np.where(valid, batch.judge_score, np.nan)).all(axis=1)
    review_ok = has_judge & (batch.judge_confidence >= core.review_confidence)
    judge_pick = np.argmax(np.where(valid, judge, -np.inf), axis=1)

    conflict_stage = ~any_acceptable & (batch.rounds_left <= 0)
    strategy = np.full(n_episodes, STRATEGY_NONE, dtype=np.int8)
    chosen = np.where(any_acceptable, pick_acceptable, cheapest)
    s_priority = conflict_stage & has_priority_winner
    s_weighted = conflict_stage & ~s_priority & weighted_ok
    s_review = conflict_stage & ~s_priority & ~s_weighted & review_ok
    s_human = conflict_stage & ~s_priority & ~s_weighted & ~s_review
    strategy[s_priority] = STRATEGY_PRIORITY
    strategy[s_weighted] = STRATEGY_WEIGHTED
    strategy[s_review] = STRATEGY_REVIEW
    strategy[s_human] = STRATEGY_HUMAN
    chosen = np.where(s_priority, priority_winner, chosen)
    chosen = np.where(s_review, judge_pick, chosen)

    distinct_sets = (excl_a.any(axis=3) & pair_valid).any(axis=(1, 2))
    conflict = conflict_stage & distinct_sets

    # 4. escalation triggers on the chosen candidate.
    c_verdict = _take(verdict, chosen)  # [E, P]
    c_conf = _take(batch.confidence, chosen)
    c_sev = _take(batch.severity, chosen)
    c_dis = _take(batch.disagreement, chosen)
    assessed = c_verdict != VERDICT_NONE
    triggers = np.zeros(n_episodes, dtype=np.int16)
    if core.disagreement:
        triggers |= np.where(c_dis.any(axis=1), TRIGGER_DISAGREEMENT, 0).astype(np.int16)
    low = (assessed & (c_conf < core.low_confidence)).any(axis=1) | (
        c_verdict == VERDICT_UNCERTAIN
    ).any(axis=1)
    triggers |= np.where(low, TRIGGER_LOW_CONFIDENCE, 0).astype(np.int16)
    severe = ((c_verdict == VERDICT_VIOLATED) & (c_sev >= core.severity_threshold)).any(axis=1)
    triggers |= np.where(severe, TRIGGER_SEVERITY, 0).astype(np.int16)
    if core.unresolved:
        triggers |= np.where(s_human, TRIGGER_UNRESOLVED, 0).astype(np.int16)
    finishing = any_acceptable | conflict_stage
    audit = finishing & (triggers == 0) & (batch.audit_draw < core.audit_rate)
    triggers |= np.where(audit, TRIGGER_AUDIT, 0).astype(np.int16)

    action = np.full(n_episodes, ACTION_CONSENSUS, dtype=np.int8)
    action[~finishing] = ACTION_REVISE
    action[finishing & (triggers != 0)] = ACTION_ESCALATE
    triggers = np.where(finishing, triggers, 0).astype(np.int16)
    return Decisions(
        action=action,
        chosen=chosen.astype(np.int16),
        strategy=strategy,
        triggers=triggers,
        cost=cost,
        conflict=conflict,
    )


__all__ = [
    "ACTION_CONSENSUS",
    "ACTION_ESCALATE",
    "ACTION_NAMES",
    "ACTION_REVISE",
    "STRATEGY_HUMAN",
    "STRATEGY_NAMES",
    "STRATEGY_NONE",
    "STRATEGY_PRIORITY",
    "STRATEGY_REVIEW",
    "STRATEGY_WEIGHTED",
    "TRIGGER_AUDIT",
    "TRIGGER_DISAGREEMENT",
    "TRIGGER_LOW_CONFIDENCE",
    "TRIGGER_NAMES",
    "TRIGGER_SEVERITY",
    "TRIGGER_UNRESOLVED",
    "VERDICT_NONE",
    "VERDICT_SATISFIED",
    "VERDICT_UNCERTAIN",
    "VERDICT_VIOLATED",
    "CompiledCore",
    "Decisions",
    "EpisodeFindings",
    "Finding",
    "FindingsBatch",
    "combine_reports",
    "decide",
    "finding_of",
    "trigger_names",
    "verdict_from_probability",
    "violated_principles",
]
