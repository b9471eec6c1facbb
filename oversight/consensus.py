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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast, get_args

import numpy as np

from .messages import Audit, Critique, SafetyAssessment, Strategy, TriggerName

if TYPE_CHECKING:
    from .escalation.policy import EscalationPolicy
    from .priority import PriorityGraph

_njit: Any
try:  # the compiled kernels; without numba they run as plain Python (correct, much slower)
    from numba import njit as _njit
except ImportError:  # pragma: no cover - numba is a dependency
    _njit = None

_F = TypeVar("_F", bound=Callable[..., Any])
_F32_MAX = float(np.finfo(np.float32).max)


def _jit(function: _F, **options: Any) -> _F:
    """Compile a kernel with numba when it is installed: lazily on first call, GIL released,
    cached on disk (next to the module, else numba's user-wide cache, else ``NUMBA_CACHE_DIR``;
    where no cache directory is writable it compiles once per process instead)."""
    if _njit is None:  # pragma: no cover
        return function
    try:
        return cast(_F, _njit(cache=True, nogil=True, **options)(function))
    except RuntimeError:  # pragma: no cover - "cannot cache ...: no locator available"
        return cast(_F, _njit(nogil=True, **options)(function))


def _jit_inline(function: _F) -> _F:
    """:func:`_jit` for small helpers that compiled callers inline (one cell, one value)."""
    return _jit(function, inline="always")


VERDICT_NONE, VERDICT_SATISFIED, VERDICT_VIOLATED, VERDICT_UNCERTAIN = -1, 0, 1, 2
ACTION_CONSENSUS, ACTION_REVISE, ACTION_ESCALATE = 0, 1, 2
STRATEGY_NONE, STRATEGY_PRIORITY, STRATEGY_WEIGHTED, STRATEGY_REVIEW, STRATEGY_HUMAN = 0, 1, 2, 3, 4
(
    TRIGGER_DISAGREEMENT,
    TRIGGER_LOW_CONFIDENCE,
    TRIGGER_SEVERITY,
    TRIGGER_UNRESOLVED,
    TRIGGER_AUDIT,
    TRIGGER_SAFETY,
) = 1, 2, 4, 8, 16, 32
GATE_NONE, GATE_BLOCK, GATE_ESCALATE = 0, 1, 2
"""The safety agent's say on a candidate (:attr:`FindingsBatch.gate`)."""

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
assert TRIGGER_NAMES[TRIGGER_SAFETY] == "safety"


def trigger_names(bits: int) -> tuple[str, ...]:
    """The names of the triggers set in a bit mask, in a fixed order."""
    return tuple(name for bit, name in TRIGGER_NAMES.items() if bits & bit)


def verdict_from_probability(p_yes: Any, band: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Map P("Yes, it violates") to a verdict code and a confidence in [0, 1].

    ``p >= 0.5 + band`` is violated, ``p <= 0.5 - band`` satisfied, anything between uncertain;
    the confidence is ``|2p - 1|`` (0 at a coin flip, 1 at certainty). Probabilities and both
    thresholds are float32 (:func:`verdict_of`, per value).
    """
    p = np.asarray(p_yes, dtype=np.float32)
    verdict = np.empty(p.shape, dtype=np.int8)
    confidence = np.empty(p.shape, dtype=np.float32)
    high, low = np.float32(0.5 + band), np.float32(0.5 - band)
    _verdict_kernel(p.reshape(-1), high, low, verdict.reshape(-1), confidence.reshape(-1))
    return verdict, confidence


@_jit_inline
def verdict_of(p: np.float32, high: np.float32, low: np.float32) -> tuple[int, np.float32]:
    """One probability's verdict and confidence (compiled; the rule of
    :func:`verdict_from_probability`, also called by the simulator's kernels)."""
    if p >= high:
        verdict = VERDICT_VIOLATED
    elif p <= low:
        verdict = VERDICT_SATISFIED
    else:
        verdict = VERDICT_UNCERTAIN
    return verdict, np.float32(abs(np.float32(2.0) * p - np.float32(1.0)))


@_jit
def _verdict_kernel(
    p: np.ndarray, high: np.float32, low: np.float32, verdict: np.ndarray, confidence: np.ndarray
) -> None:  # pragma: no cover - compiled
    for i in range(len(p)):
        verdict[i], confidence[i] = verdict_of(p[i], high, low)


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

    Any trailing shape after ``[E, R]`` works (the cells are flattened); verdicts are read as
    int8, severities and confidences as float32. One compiled pass over the reports
    (:func:`_combine_kernel`).
    """
    v = np.asarray(verdict)
    n_e, n_r = v.shape[:2]
    cells = v.shape[2:]
    n_x = int(np.prod(cells, dtype=np.int64))
    flat = (n_e, n_r, n_x)
    final = np.empty((n_e, n_x), dtype=np.int8)
    sev = np.empty((n_e, n_x), dtype=np.float32)
    conf = np.empty((n_e, n_x), dtype=np.float32)
    disagreement = np.empty((n_e, n_x), dtype=bool)
    _combine_kernel(
        np.ascontiguousarray(v, dtype=np.int8).reshape(flat),
        np.ascontiguousarray(severity, dtype=np.float32).reshape(flat),
        np.ascontiguousarray(confidence, dtype=np.float32).reshape(flat),
        np.ascontiguousarray(level, dtype=np.int32).reshape(n_r),
        final,
        sev,
        conf,
        disagreement,
    )
    shape = (n_e, *cells)
    return (
        final.reshape(shape),
        sev.reshape(shape),
        conf.reshape(shape),
        disagreement.reshape(shape),
    )


@_jit
def _combine_kernel(
    verdict: np.ndarray,
    severity: np.ndarray,
    confidence: np.ndarray,
    level: np.ndarray,
    final: np.ndarray,
    sev: np.ndarray,
    conf: np.ndarray,
    disagreement: np.ndarray,
) -> None:  # pragma: no cover - compiled (tests run it through combine_reports)
    """:func:`combine_reports` on ``[E, R, X]`` reports, writing ``[E, X]`` findings."""
    n_e, _, n_x = verdict.shape
    for e in range(n_e):
        v, s, c = verdict[e], severity[e], confidence[e]
        for x in range(n_x):
            final[e, x], sev[e, x], conf[e, x], disagreement[e, x] = combine_cell(v, s, c, level, x)


@_jit_inline
def combine_cell(
    verdict: np.ndarray, severity: np.ndarray, confidence: np.ndarray, level: np.ndarray, x: int
) -> tuple[int, np.float32, np.float32, bool]:  # pragma: no cover - compiled
    """:func:`combine_reports` of cell ``x`` from its ``R`` reports ``[R, X]`` (compiled;
    callable from other compiled code, such as the simulator's assessment kernel)."""
    n_r = verdict.shape[0]
    zero = np.float32(0.0)
    # one pass for the top level that reported and the verdicts given there (bit 1 << verdict);
    # an agent that did not report counts as level -1, as numpy's where(reported, level, -1) did
    top = np.int32(-2147483648)
    seen = said = 0
    for r in range(n_r):
        vr = verdict[r, x]
        if vr == VERDICT_NONE:
            if top < -1:
                top, said = np.int32(-1), 0
            continue
        bit = 1 << vr
        seen |= bit
        if level[r] > top:
            top, said = level[r], bit
        elif level[r] == top:
            said |= bit
    if said & (1 << VERDICT_VIOLATED):
        out = VERDICT_VIOLATED
    elif said & (1 << VERDICT_UNCERTAIN):
        out = VERDICT_UNCERTAIN
    elif said & (1 << VERDICT_SATISFIED):
        out = VERDICT_SATISFIED
    else:
        out = VERDICT_NONE
    total = zero
    n_agree = 0
    worst = zero
    for r in range(n_r):
        vr = verdict[r, x]
        deciding = vr != VERDICT_NONE and level[r] == top
        if deciding and vr == out:
            total += confidence[r, x]  # float32, in reporter order (numpy's order)
            n_agree += 1
        s = severity[r, x] if deciding and vr == VERDICT_VIOLATED else zero
        if r == 0 or s > worst:
            worst = s
    # the mean as numpy computed it: float32 sum / int64 count in float64, then float32
    mean = np.float32(np.float64(total) / n_agree) if n_agree > 0 else zero
    both = (1 << VERDICT_VIOLATED) | (1 << VERDICT_SATISFIED)
    return out, (worst if out == VERDICT_VIOLATED else zero), mean, (seen & both) == both


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
    gate: np.ndarray | None = None
    """int8 ``[E, C]`` or None: the safety agent's action on each candidate: ``GATE_BLOCK`` (a
    hard block: the candidate goes along with a high-risk request and may not become consensus),
    ``GATE_ESCALATE`` (send to people if chosen), ``GATE_NONE``."""

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
            gate=np.zeros((episodes, candidates), dtype=np.int8),
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
        self.gate: dict[str, int] = {}
        """Candidate -> the safety agent's gate (``GATE_*``), from its latest assessment."""

    def note_safety(self, candidate: str, action: str) -> None:
        """Record the safety agent's action on a candidate: ``refuse`` blocks it, ``escalate``
        sends the episode to people if it is chosen; anything else leaves the findings to decide."""
        self.gate[candidate] = {"refuse": GATE_BLOCK, "escalate": GATE_ESCALATE}.get(
            action, GATE_NONE
        )

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
            assert batch.gate is not None
            batch.gate[0, c] = self.gate.get(cand, GATE_NONE)
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


def decide(
    batch: FindingsBatch,
    core: CompiledCore,
    *,
    rows: np.ndarray | None = None,
    candidates: int | None = None,
) -> Decisions:
    """Decide every episode of the batch: consensus, revise or escalate, and why.

    ``rows`` (episode indices) and ``candidates`` decide only those episodes over their first
    ``candidates`` candidates: the same decisions as for the sliced batch, without copying it
    (the simulator decides the episodes still open this way).

    The rules are the module docstring's, applied per episode in one compiled pass
    (:func:`_decide_kernel`): violation sets as bit masks, the priority graph as one bit mask
    per principle (:func:`dominance_bits`), no ``[E, C, C, P]`` intermediates. Thresholds
    compare in float32, as the documented float32 inputs did under numpy's casting rules.
    """
    verdict = np.ascontiguousarray(batch.verdict, dtype=np.int8)
    n_all, n_candidates, _ = verdict.shape
    if candidates is not None:
        n_candidates = min(int(candidates), n_candidates)
    index = np.arange(n_all) if rows is None else np.asarray(rows, dtype=np.intp)
    valid = np.ascontiguousarray(batch.valid, dtype=bool)
    out = _run_kernel(batch, core, verdict, valid, index, n_candidates)
    gate = batch.gate
    if gate is not None and bool(np.any(gate)):
        out = _apply_gate(batch, core, verdict, valid, index, n_candidates, gate, out)
    return out


def _apply_gate(
    batch: FindingsBatch,
    core: CompiledCore,
    verdict: np.ndarray,
    valid: np.ndarray,
    index: np.ndarray,
    n_candidates: int,
    gate: np.ndarray,
    out: Decisions,
) -> Decisions:
    """Safety decides. An episode whose chosen candidate the safety agent blocked is decided
    again without the blocked candidates, when any other is left (the rules stay the same, a
    blocked candidate just cannot be chosen). A finishing episode whose choice is still blocked
    (every candidate was) or that the safety agent flagged for people escalates with the
    ``safety`` trigger."""
    blocked = (gate == GATE_BLOCK) & valid
    says = gate[index, out.chosen.astype(np.intp)]
    open_left = (valid & ~blocked).any(axis=1)[index]
    again = (says == GATE_BLOCK) & open_left
    if again.any():
        rows = index[again]
        redo = _run_kernel(
            batch, core, verdict, np.ascontiguousarray(valid & ~blocked), rows, n_candidates
        )
        for name in ("action", "chosen", "strategy", "triggers", "cost", "conflict"):
            getattr(out, name)[again] = getattr(redo, name)
        says = gate[index, out.chosen.astype(np.intp)]
    hit = (out.action != ACTION_REVISE) & (says != GATE_NONE)
    out.triggers[hit] |= TRIGGER_SAFETY
    out.action[hit] = ACTION_ESCALATE
    return out


def _run_kernel(
    batch: FindingsBatch,
    core: CompiledCore,
    verdict: np.ndarray,
    valid: np.ndarray,
    index: np.ndarray,
    n_candidates: int,
) -> Decisions:
    n_episodes = len(index)
    action = np.empty(n_episodes, dtype=np.int8)
    chosen = np.empty(n_episodes, dtype=np.int16)
    strategy = np.empty(n_episodes, dtype=np.int8)
    triggers = np.empty(n_episodes, dtype=np.int16)
    cost = np.empty((n_episodes, n_candidates), dtype=np.float32)
    conflict = np.empty(n_episodes, dtype=bool)
    f32 = np.float32
    _decide_kernel(
        verdict,
        np.ascontiguousarray(batch.severity, dtype=np.float32),
        np.ascontiguousarray(batch.confidence, dtype=np.float32),
        np.ascontiguousarray(batch.disagreement, dtype=bool),
        valid,
        np.ascontiguousarray(batch.judge_score, dtype=np.float32),
        np.ascontiguousarray(batch.judge_confidence, dtype=np.float32),
        np.ascontiguousarray(batch.context, dtype=np.intp),
        np.ascontiguousarray(batch.audit_draw, dtype=np.float32),
        np.ascontiguousarray(batch.rounds_left, dtype=np.int64),
        np.ascontiguousarray(core.weights, dtype=np.float32),
        np.ascontiguousarray(core.severity_threshold, dtype=np.float32),
        dominance_bits(core.dominance),
        bool(core.disagreement),
        f32(core.low_confidence),
        bool(core.unresolved),
        f32(core.audit_rate),
        f32(core.weighted_margin),
        f32(core.review_confidence),
        index,
        n_candidates,
        action,
        chosen,
        strategy,
        triggers,
        cost,
        conflict,
    )
    return Decisions(
        action=action,
        chosen=chosen,
        strategy=strategy,
        triggers=triggers,
        cost=cost,
        conflict=conflict,
    )


def dominance_bits(dominance: np.ndarray) -> np.ndarray:
    """``[K, P, W]`` uint64 bit masks of ``dominance[K, P, P]``: bit q of word ``q // 64`` of
    ``[k, p]`` is set when p prevails over q in context k (``W = ceil(P / 64)``)."""
    dom = np.asarray(dominance, dtype=bool)
    n_k, n_p = dom.shape[0], dom.shape[-1]
    n_w = max(1, (n_p + 63) // 64)
    padded = np.zeros((n_k, n_p, n_w * 64), dtype=np.uint64)
    padded[:, :, :n_p] = dom
    shifts = np.arange(64, dtype=np.uint64)
    return (padded.reshape(n_k, n_p, n_w, 64) << shifts).sum(axis=3, dtype=np.uint64)


@_jit
def _block_sum(values: np.ndarray, start: int, n: int) -> np.float32:  # pragma: no cover
    """numpy's float32 pairwise sum of a block of at most 128 values (8 accumulators)."""
    if n < 8:
        res = np.float32(0.0)
        for i in range(start, start + n):
            res += values[i]
        return res
    r0, r1, r2, r3 = values[start], values[start + 1], values[start + 2], values[start + 3]
    r4, r5, r6, r7 = values[start + 4], values[start + 5], values[start + 6], values[start + 7]
    i = 8
    while i < n - (n % 8):
        j = start + i
        r0 += values[j]
        r1 += values[j + 1]
        r2 += values[j + 2]
        r3 += values[j + 3]
        r4 += values[j + 4]
        r5 += values[j + 5]
        r6 += values[j + 6]
        r7 += values[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += values[start + i]
        i += 1
    return res


@_jit
def _pairwise_sum(values: np.ndarray, n: int) -> np.float32:  # pragma: no cover - compiled
    """numpy's float32 pairwise summation of ``values[:n]``, bit for bit (the order
    ``ndarray.sum`` uses along a contiguous axis), so costs equal ``(...).sum(axis=2)``.

    Blocks of up to 128 values are summed with 8 accumulators; longer runs split in two halves
    (a multiple of 8 first), evaluated here with an explicit stack instead of recursion.
    """
    if n <= 128:
        return _block_sum(values, 0, n)
    starts = np.empty(64, dtype=np.int64)
    sizes = np.empty(64, dtype=np.int64)
    phase = np.zeros(64, dtype=np.int64)
    partial = np.empty(64, dtype=np.float32)
    top, done = 0, 0
    starts[0], sizes[0], phase[0] = 0, n, 0
    while top >= 0:
        s, m = starts[top], sizes[top]
        if m <= 128:
            partial[done] = _block_sum(values, s, m)
            done += 1
            top -= 1
            continue
        half = m // 2
        half -= half % 8
        if phase[top] == 0:
            phase[top] = 1
            top += 1
            starts[top], sizes[top], phase[top] = s, half, 0
        elif phase[top] == 1:
            phase[top] = 2
            top += 1
            starts[top], sizes[top], phase[top] = s + half, m - half, 0
        else:
            done -= 1
            partial[done - 1] = partial[done - 1] + partial[done]
            top -= 1
    return partial[0]


@_jit
def _first_max(values: np.ndarray) -> int:  # pragma: no cover - compiled
    """``np.argmax``: the first index of the maximum."""
    best, index = values[0], 0
    for i in range(1, len(values)):
        if values[i] > best:
            best, index = values[i], i
    return index


@_jit
def _decide_kernel(
    verdict: np.ndarray,
    severity: np.ndarray,
    confidence: np.ndarray,
    disagreement: np.ndarray,
    valid: np.ndarray,
    judge_score: np.ndarray,
    judge_confidence: np.ndarray,
    context: np.ndarray,
    audit_draw: np.ndarray,
    rounds_left: np.ndarray,
    weights: np.ndarray,
    severity_threshold: np.ndarray,
    dom_bits: np.ndarray,
    use_disagreement: bool,
    low_confidence: np.float32,
    use_unresolved: bool,
    audit_rate: np.float32,
    weighted_margin: np.float32,
    review_confidence: np.float32,
    rows: np.ndarray,
    n_c: int,
    action: np.ndarray,
    chosen: np.ndarray,
    strategy: np.ndarray,
    triggers: np.ndarray,
    cost: np.ndarray,
    conflict: np.ndarray,
) -> None:  # pragma: no cover - compiled (tests run it through decide)
    """:func:`decide`, one episode at a time (see the module docstring for the rules)."""
    n_p = verdict.shape[2]
    n_w = dom_bits.shape[2]
    one = np.uint64(1)
    viol = np.zeros((n_c, n_w), dtype=np.uint64)
    cover = np.zeros(n_w, dtype=np.uint64)
    terms = np.zeros(max(n_p, 1), dtype=np.float32)
    acceptable = np.zeros(n_c, dtype=np.bool_)
    judge = np.zeros(n_c, dtype=np.float32)
    pick = np.zeros(n_c, dtype=np.float32)
    neg_inf = np.float32(-np.inf)
    big = np.float32(_F32_MAX)
    for i in range(len(rows)):
        e = rows[i]
        k = context[e]
        any_acceptable = False
        has_judge = False
        for c in range(n_c):
            for w in range(n_w):
                viol[c, w] = 0
            if valid[e, c]:
                for p in range(n_p):
                    if verdict[e, c, p] == VERDICT_VIOLATED:
                        viol[c, p >> 6] |= one << np.uint64(p & 63)
                        terms[p] = weights[p] * severity[e, c, p] * confidence[e, c, p]
                    else:
                        terms[p] = 0.0
                cost[i, c] = _pairwise_sum(terms, n_p)
                clean = True
                for w in range(n_w):
                    clean &= viol[c, w] == 0
                acceptable[c] = clean
                any_acceptable |= clean
            else:
                cost[i, c] = np.inf
                acceptable[c] = False
            s = judge_score[e, c]
            has_judge |= valid[e, c] and not np.isnan(s)
            if np.isnan(s):
                judge[c] = -1.0  # np.nan_to_num(nan=-1.0), with its +-inf clipping
            elif s == np.inf:
                judge[c] = big
            elif s == -np.inf:
                judge[c] = -big
            else:
                judge[c] = s

        # 1. acceptable candidates: the judge's favourite, earliest on ties.
        for c in range(n_c):
            pick[c] = judge[c] if acceptable[c] else neg_inf
        pick_acceptable = _first_max(pick) if n_c else 0
        cheapest = 0
        for c in range(1, n_c):
            if cost[i, c] < cost[i, cheapest]:
                cheapest = c
        conflict_stage = not any_acceptable and rounds_left[e] <= 0
        chosen_e = pick_acceptable if any_acceptable else cheapest
        strategy_e = STRATEGY_NONE
        distinct_sets = False
        if conflict_stage:  # 3. only then do the strategies matter
            # 3a. priority ordering between candidates' exclusive violation sets; a winner beats
            # every valid candidate with a different set, and at least one.
            has_priority_winner = False
            for a in range(n_c):
                wins = False
                if valid[e, a]:
                    wins = True
                    beat_one = False
                    for b in range(n_c):
                        if b == a or not valid[e, b]:
                            continue
                        same = True
                        for w in range(n_w):
                            same &= viol[a, w] == viol[b, w]
                        if same:
                            continue
                        distinct_sets = True
                        for w in range(n_w):
                            cover[w] = 0
                        excl_b_any = False
                        for p in range(n_p):
                            bit = one << np.uint64(p & 63)
                            word = p >> 6
                            if (viol[b, word] & bit) != 0 and (viol[a, word] & bit) == 0:
                                excl_b_any = True
                                for w in range(n_w):
                                    cover[w] |= dom_bits[k, p, w]
                        beats = excl_b_any
                        for w in range(n_w):
                            beats &= (viol[a, w] & ~viol[b, w] & ~cover[w]) == 0
                        if beats:
                            beat_one = True
                        else:
                            wins = False
                    wins &= beat_one
                pick[a] = judge[a] if wins else neg_inf
                has_priority_winner |= wins
            priority_winner = _first_max(pick) if n_c else 0

            # 3b. weighted scoring with a margin, against the cheapest candidate that violates a
            # different set of principles (candidates with the same set are ties, not rivals).
            best_cost = cost[i, cheapest] if n_c else np.float32(np.inf)
            runner_up = np.float32(np.inf)
            for c in range(n_c):
                if c == cheapest or not valid[e, c]:
                    continue
                if valid[e, cheapest]:
                    same = True
                    for w in range(n_w):
                        same &= viol[c, w] == viol[cheapest, w]
                    if same:
                        continue
                if cost[i, c] < runner_up:
                    runner_up = cost[i, c]
            weighted_ok = np.isfinite(runner_up) and (
                np.float32(runner_up - best_cost) >= weighted_margin
            )

            # 3c. hierarchical review by the judge.
            review_ok = has_judge and judge_confidence[e] >= review_confidence
            for c in range(n_c):
                pick[c] = judge[c] if valid[e, c] else neg_inf
            judge_pick = _first_max(pick) if n_c else 0
            if has_priority_winner:
                strategy_e = STRATEGY_PRIORITY
                chosen_e = priority_winner
            elif weighted_ok:
                strategy_e = STRATEGY_WEIGHTED
            elif review_ok:
                strategy_e = STRATEGY_REVIEW
                chosen_e = judge_pick
            else:
                strategy_e = STRATEGY_HUMAN
        conflict[i] = conflict_stage and distinct_sets

        # 4. escalation triggers on the chosen candidate.
        bits = 0
        for p in range(n_p):
            v = verdict[e, chosen_e, p]
            if use_disagreement and disagreement[e, chosen_e, p]:
                bits |= TRIGGER_DISAGREEMENT
            if v == VERDICT_UNCERTAIN or (
                v != VERDICT_NONE and confidence[e, chosen_e, p] < low_confidence
            ):
                bits |= TRIGGER_LOW_CONFIDENCE
            if v == VERDICT_VIOLATED and severity[e, chosen_e, p] >= severity_threshold[p]:
                bits |= TRIGGER_SEVERITY
        if use_unresolved and strategy_e == STRATEGY_HUMAN:
            bits |= TRIGGER_UNRESOLVED
        finishing = any_acceptable or conflict_stage
        if finishing and bits == 0 and audit_draw[e] < audit_rate:
            bits |= TRIGGER_AUDIT
        if not finishing:
            action[i] = ACTION_REVISE
            bits = 0
        elif bits != 0:
            action[i] = ACTION_ESCALATE
        else:
            action[i] = ACTION_CONSENSUS
        chosen[i] = chosen_e
        strategy[i] = strategy_e
        triggers[i] = bits


__all__ = [
    "ACTION_CONSENSUS",
    "ACTION_ESCALATE",
    "ACTION_NAMES",
    "ACTION_REVISE",
    "GATE_BLOCK",
    "GATE_ESCALATE",
    "GATE_NONE",
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
    "TRIGGER_SAFETY",
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
