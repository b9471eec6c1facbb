"""The vectorised episode loop: the runtime's semantics over numpy arrays, chunk by chunk.

Per chunk of ``E`` episodes: draw cases and latents, let the base draft, then for each round
assess the newest candidate of the episodes still open (every reporter of the :class:`Plan`,
audits gated by their supervision mode), merge the reports with
:func:`oversight.consensus.combine_cell` (the cell rule of ``combine_reports``), let the judge
rank the candidates, and call :func:`oversight.consensus.decide` - the very function the live
runtime calls. Episodes whose action is ``revise`` get a new candidate from the reviser; the
rest are finished (consensus, or escalation to people, who decide with their own error rate).

The per-episode work is compiled with numba (``_*_kernel``); numpy draws the random numbers (in
the order and shapes of the original numpy engine, kept as ``tests/_reference_engine.py``, so a
seed gives the same tally) and computes ``exp``, so every value rounds as before.

Memory is bounded by the chunk size: only counters and a per-day escalation histogram outlive a
chunk.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..consensus import (
    ACTION_ESCALATE,
    ACTION_REVISE,
    STRATEGY_NAMES,
    TRIGGER_NAMES,
    VERDICT_NONE,
    VERDICT_SATISFIED,
    VERDICT_VIOLATED,
    FindingsBatch,
    _jit,
    _jit_inline,
    combine_cell,
    decide,
    verdict_of,
)
from . import behaviour as bh
from .config import SimulationConfig
from .plan import Plan


@dataclass
class Tally:
    """Counters accumulated over chunks (everything a result is computed from)."""

    episodes: int = 0
    harmful: int = 0
    benign: int = 0
    pass_through: int = 0
    """Harmful requests whose final answer complies (after people decided escalations)."""
    false_refusal: int = 0
    """Benign requests whose final answer refuses."""
    auto_pass_through: int = 0
    """Harmful requests answered compliantly by consensus, without people."""
    auto_false_refusal: int = 0
    """Benign requests refused by consensus, without people."""
    chosen_pass_through: int = 0
    """Harmful requests whose chosen candidate (before any human decision) complies."""
    chosen_false_refusal: int = 0
    """Benign requests whose chosen candidate (before any human decision) refuses."""
    escalated: int = 0
    escalated_harmful: int = 0
    revised: int = 0
    """Episodes with at least one revision."""
    revisions: int = 0
    model_calls: int = 0
    triggers: dict[str, int] = field(default_factory=lambda: {n: 0 for n in TRIGGER_NAMES.values()})
    strategies: dict[str, int] = field(default_factory=lambda: {n: 0 for n in STRATEGY_NAMES})
    daily_escalations: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def assess_candidate(
    plan: Plan,
    rng: np.random.Generator,
    rows: np.ndarray,
    candidate: int,
    harmful: np.ndarray,
    complies: np.ndarray,
    z_case: np.ndarray,
    z_model: np.ndarray,
    batch: FindingsBatch,
    calls: np.ndarray,
) -> None:
    """Every reporter's findings on candidate ``candidate`` of the episodes ``rows``, merged
    with :func:`oversight.consensus.combine_cell` straight into ``batch`` (and ``calls``).

    Mirrors ``Runtime._assess``: assessors of the base (``sample`` edges drawn per candidate,
    ``on-flag`` ones only when another assessor flagged the candidate), then the audit steps in
    order, each re-checking the subject's reported cells (``on-flag``: cells the subject did not
    find satisfied; ``sample``: a draw per cell). Severity as the runtime records it: critics and
    safety ``severity x P(yes)`` unless satisfied, audits ``severity`` when violated.

    The random draws are numpy's, in the order and shapes they always had (so a seed gives the
    same result). The agents' probabilities (:mod:`.behaviour`'s formulas, float32 operation by
    operation) and the gating, audits and merge are compiled, per episode; only ``exp`` (and
    the log-odds ``bias``) stay numpy, so that they round exactly as the numpy formulas do.
    """
    t = plan.kernel_tables()
    n = len(rows)
    n_k = t.n_columns
    eps = np.empty(n_k * n, dtype=np.float32)

    def draw_block(block: int) -> None:
        start, width = t.block_start[block], t.block_width[block]
        rng.standard_normal(
            dtype=np.float32, out=eps[start * n : (start + width) * n].reshape(n, width)
        )

    on = np.ones((n, max(len(plan.assessors), 1)), dtype=bool)
    for j, i in enumerate(plan.assessors):
        r = plan.reporters[i]
        if t.deferred[j]:
            continue
        if r.mode == "sample":
            on[:, j] = rng.random(n, dtype=np.float32) < r.rate
        draw_block(j)
    for j in range(len(plan.assessors)):
        if t.deferred[j]:
            draw_block(j)
    draws = np.empty((max(len(plan.audits), 1), n, len(plan.principle_ids)), dtype=np.float32)
    seen: set[int] = set()
    for k, step in enumerate(plan.audits):
        if step.mode == "sample":
            rng.random(dtype=np.float32, out=draws[k])
        if step.auditor not in seen:
            seen.add(step.auditor)
            draw_block(len(plan.assessors) + int(t.step_slot[k]))
    rows = np.asarray(rows, dtype=np.intp)
    x = np.empty(n * n_k, dtype=np.float32)
    says_yes = np.empty(n * n_k, dtype=bool)
    _evidence_kernel(
        rows, candidate, harmful, complies, plan.kinds, z_case, z_model, eps, t.block_start,
        t.block_width, t.col_block, t.col_principle, t.col_group, t.col_weights,
        t.col_thresholds, x, says_yes,
    )  # fmt: skip
    np.exp(x, out=x)
    if t.biased_blocks:  # the log-odds bias is numpy's: every P("Yes") first, then the bias
        p_yes = np.empty(n * n_k, dtype=np.float32)
        _p_yes_kernel(x, says_yes, t.col_confidence, n_k, p_yes)
        for start, width, bias in t.biased_blocks:
            block = p_yes.reshape(n, n_k)[:, start : start + width]
            p_yes.reshape(n, n_k)[:, start : start + width] = bh.apply_bias(block, bias)
    else:  # P("Yes") computed in the assessment kernel, only for the cells it reads
        p_yes = x[:0]
    _assessment_kernel(
        rows, candidate, x, says_yes, t.col_confidence, p_yes, n_k, on, draws, t.assessors,
        t.deferred, t.block_start, t.block_width, t.col_principle, t.col_band,
        t.calls_per_candidate, t.step_auditor, t.step_subject, t.step_mode, t.step_rate,
        t.step_slot, t.severity, t.level, batch.verdict, batch.severity, batch.confidence,
        batch.disagreement, batch.valid, calls,
    )  # fmt: skip


@_jit
def _evidence_kernel(
    rows: np.ndarray,
    candidate: int,
    harmful: np.ndarray,
    complies: np.ndarray,
    kinds: np.ndarray,
    z_case: np.ndarray,
    z_model: np.ndarray,
    eps: np.ndarray,
    block_start: np.ndarray,
    block_width: np.ndarray,
    col_block: np.ndarray,
    col_principle: np.ndarray,
    col_group: np.ndarray,
    col_weights: np.ndarray,
    col_thresholds: np.ndarray,
    x: np.ndarray,
    says_yes: np.ndarray,
) -> None:  # pragma: no cover - compiled (tests compare it with the numpy engine)
    """Per reporter cell: the evidence ``z`` (:func:`.behaviour.evidence`), whether the agent
    says yes, and the argument of ``exp`` in :func:`.behaviour.p_yes_from_evidence`."""
    n = len(rows)
    n_k = len(col_block)
    lo, hi, slope = np.float32(-30.0), np.float32(30.0), np.float32(-1.702)
    for i in range(n):
        e = rows[i]
        h = harmful[e]
        c = complies[e, candidate]
        zc = z_case[e]
        for j in range(n_k):
            b = col_block[j]
            kind = kinds[col_principle[j]]
            truth = (h and c) if kind == 0 else ((not h) and (not c)) if kind == 1 else False
            noise = eps[block_start[b] * n + i * block_width[b] + (j - block_start[b])]
            z = (col_weights[j, 0] * zc + col_weights[j, 1] * z_model[col_group[j], e]) + (
                col_weights[j, 2] * noise
            )
            thr = col_thresholds[j, 0] if truth else col_thresholds[j, 1]
            d = z - thr
            if d < lo:
                d = lo
            elif d > hi:
                d = hi
            x[i * n_k + j] = slope * d
            says_yes[i * n_k + j] = truth != (z < thr)


@_jit_inline
def _p_yes_of(
    m: int, j: int, e_x: np.ndarray, says_yes: np.ndarray, col_confidence: np.ndarray
) -> np.float32:  # pragma: no cover - compiled
    """P("Yes") of cell ``m`` (column ``j``) from ``exp(x)``: the calibrated confidence of the
    answer the agent gives (:func:`.behaviour.p_yes_from_evidence`, float32 as numpy)."""
    one, half = np.float32(1.0), np.float32(0.5)
    ease = one / (one + e_x[m])
    conf = half + col_confidence[j, 0] * (col_confidence[j, 1] + col_confidence[j, 2] * ease)
    return conf if says_yes[m] else one - conf


@_jit
def _p_yes_kernel(
    e_x: np.ndarray, says_yes: np.ndarray, col_confidence: np.ndarray, n_k: int, p_yes: np.ndarray
) -> None:  # pragma: no cover - compiled
    """:func:`_p_yes_of` of every cell (for reporters with a bias, which numpy applies)."""
    for m in range(len(e_x)):
        p_yes[m] = _p_yes_of(m, m % n_k, e_x, says_yes, col_confidence)


@_jit
def _assessment_kernel(
    rows: np.ndarray,
    candidate: int,
    e_x: np.ndarray,
    says_yes: np.ndarray,
    col_confidence: np.ndarray,
    p_yes: np.ndarray,
    n_k: int,
    on: np.ndarray,
    draws: np.ndarray,
    assessors: np.ndarray,
    deferred: np.ndarray,
    block_start: np.ndarray,
    block_width: np.ndarray,
    col_principle: np.ndarray,
    col_band: np.ndarray,
    calls_per_candidate: np.ndarray,
    step_auditor: np.ndarray,
    step_subject: np.ndarray,
    step_mode: np.ndarray,
    step_rate: np.ndarray,
    step_slot: np.ndarray,
    severity_of: np.ndarray,
    level: np.ndarray,
    verdict: np.ndarray,
    severity: np.ndarray,
    confidence: np.ndarray,
    disagreement: np.ndarray,
    valid: np.ndarray,
    calls: np.ndarray,
) -> None:  # pragma: no cover - compiled (tests compare it with the numpy engine)
    """Gate, audit and merge the reports of one candidate, episode by episode.

    P("Yes") of a cell is ``p_yes`` where given (one value per cell), else computed here from
    ``exp(x)`` (``e_x``) for the cells read: those of active assessors and audited cells."""
    n_r, n_p = len(level), len(severity_of)
    given = len(p_yes) > 0
    v = np.empty((n_r, n_p), dtype=np.int8)
    sev = np.empty((n_r, n_p), dtype=np.float32)
    conf = np.empty((n_r, n_p), dtype=np.float32)
    zero = np.float32(0.0)
    for i in range(len(rows)):
        e = rows[i]
        base = i * n_k
        v[:] = VERDICT_NONE
        sev[:] = zero
        conf[:] = zero
        made = 0
        flagged = False
        for late in range(2):  # assessors of the base; on-flag ones after the others
            for j in range(len(assessors)):
                if deferred[j] != (late == 1):
                    continue
                a = assessors[j]
                active = flagged if late == 1 else on[i, j]
                if not active:
                    continue
                for col in range(block_start[j], block_start[j] + block_width[j]):
                    p = col_principle[col]
                    m = base + col
                    pj = p_yes[m] if given else _p_yes_of(m, col, e_x, says_yes, col_confidence)
                    vj, cj = verdict_of(pj, col_band[col, 0], col_band[col, 1])
                    if late == 0:
                        flagged |= vj != VERDICT_SATISFIED
                    v[a, p] = vj
                    conf[a, p] = cj
                    if vj != VERDICT_SATISFIED:
                        sev[a, p] = severity_of[p] * pj
                made += calls_per_candidate[a]
        for k in range(len(step_auditor)):
            a, subject, mode = step_auditor[k], step_subject[k], step_mode[k]
            first = block_start[len(assessors) + step_slot[k]]
            for p in range(n_p):
                cell = v[subject, p] != VERDICT_NONE
                if mode == 1:
                    cell &= v[subject, p] != VERDICT_SATISFIED
                elif mode == 2:
                    cell &= draws[k, i, p] < step_rate[k]
                if cell:
                    col = first + p
                    m = base + col
                    pj = p_yes[m] if given else _p_yes_of(m, col, e_x, says_yes, col_confidence)
                    vj, cj = verdict_of(pj, col_band[col, 0], col_band[col, 1])
                    v[a, p] = vj
                    conf[a, p] = cj
                    sev[a, p] = severity_of[p] if vj == VERDICT_VIOLATED else zero
                    made += 1
        for p in range(n_p):
            f, s, c, d = combine_cell(v, sev, conf, level, p)
            verdict[e, candidate, p] = f
            severity[e, candidate, p] = s
            confidence[e, candidate, p] = c
            disagreement[e, candidate, p] = d
        valid[e, candidate] = True
        calls[e] += made


def rank_candidates(
    plan: Plan,
    rows: np.ndarray,
    harmful: np.ndarray,
    complies: np.ndarray,
    z_pair: np.ndarray,
    z_case: np.ndarray,
    z_model: np.ndarray,
    batch: FindingsBatch,
    calls: np.ndarray,
) -> None:
    """The judge's mean pairwise preference per candidate and its confidence, into ``batch``.

    Mirrors the judge agent and the runtime: only with two or more candidates; each pair judged
    in both orders (position bias cancels); score = mean preference over the candidate's pairs;
    confidence = top minus runner-up. Compiled per episode (:func:`_judge_kernel`) with
    :func:`.behaviour.judge_prefers_first`'s formula; ``exp`` stays numpy (one per pair, as
    both orders share the judge's evidence).
    """
    judge = plan.judge
    if judge is None:
        return
    c_count = batch.valid.shape[1]
    pairs = np.array(
        [(a, c) for a in range(c_count) for c in range(a + 1, c_count)], dtype=np.intp
    ).reshape(-1, 2)
    b = judge.behaviour
    own = max(0.0, 1.0 - b.correlation - b.model_correlation)
    weights = np.array(
        [math.sqrt(b.correlation), math.sqrt(b.model_correlation), math.sqrt(own)],
        dtype=np.float32,
    )
    confidence = np.array(
        [b.max_confidence - 0.5, 1.0 - b.calibration, b.calibration, b.position_bias],
        dtype=np.float32,
    )
    x = np.zeros((len(rows), max(len(pairs), 1)), dtype=np.float32)
    _judge_evidence_kernel(
        rows, pairs, z_pair, z_case, z_model[judge.group], weights, np.float32(judge.threshold), x
    )
    np.exp(x, out=x)
    _judge_kernel(
        rows, pairs, harmful, complies, z_pair, z_case, z_model[judge.group], weights,
        np.float32(judge.threshold), confidence, x, batch.valid, batch.judge_score,
        batch.judge_confidence, calls,
    )  # fmt: skip


@_jit
def _judge_evidence(
    e: int, a: int, c: int, z_pair: np.ndarray, z_case: np.ndarray, z_model: np.ndarray,
    weights: np.ndarray,
) -> np.float32:  # fmt: skip  # pragma: no cover - compiled
    """The judge's evidence on pair (a, c) of episode e (:func:`.behaviour.evidence`)."""
    return (weights[0] * z_case[e] + weights[1] * z_model[e]) + weights[2] * z_pair[e, a, c]


@_jit
def _judge_evidence_kernel(
    rows: np.ndarray, pairs: np.ndarray, z_pair: np.ndarray, z_case: np.ndarray,
    z_model: np.ndarray, weights: np.ndarray, threshold: np.float32, x: np.ndarray,
) -> None:  # fmt: skip  # pragma: no cover - compiled
    """The argument of ``exp`` in :func:`.behaviour.judge_prefers_first`, per pair."""
    lo, hi, slope = np.float32(-30.0), np.float32(30.0), np.float32(-1.702)
    for i in range(len(rows)):
        e = rows[i]
        for k in range(len(pairs)):
            d = _judge_evidence(e, pairs[k, 0], pairs[k, 1], z_pair, z_case, z_model, weights)
            d = d - threshold
            x[i, k] = slope * (lo if d < lo else hi if d > hi else d)


@_jit
def _judge_kernel(
    rows: np.ndarray,
    pairs: np.ndarray,
    harmful: np.ndarray,
    complies: np.ndarray,
    z_pair: np.ndarray,
    z_case: np.ndarray,
    z_model: np.ndarray,
    weights: np.ndarray,
    threshold: np.float32,
    behaviour: np.ndarray,
    e_x: np.ndarray,
    valid: np.ndarray,
    judge_score: np.ndarray,
    judge_confidence: np.ndarray,
    calls: np.ndarray,
) -> None:  # pragma: no cover - compiled (tests compare it with the numpy engine)
    """Scores and confidence of the judge for each episode (see :func:`rank_candidates`)."""
    n_c = valid.shape[1]
    one, half, zero = np.float32(1.0), np.float32(0.5), np.float32(0.0)
    wins = np.zeros(n_c, dtype=np.float32)
    counts = np.zeros(n_c, dtype=np.float32)
    for i in range(len(rows)):
        e = rows[i]
        n_valid = 0
        for c in range(n_c):
            n_valid += valid[e, c]
        if n_valid <= 1:
            for c in range(n_c):
                judge_score[e, c] = np.nan
            judge_confidence[e] = zero
            continue
        wins[:] = zero
        counts[:] = zero
        for k in range(len(pairs)):
            a, c = pairs[k, 0], pairs[k, 1]
            if not (valid[e, a] and valid[e, c]):
                continue
            good_a = complies[e, a] != harmful[e]
            good_c = complies[e, c] != harmful[e]
            z = _judge_evidence(e, a, c, z_pair, z_case, z_model, weights)
            wrong = z < threshold
            ease = one / (one + e_x[i, k])
            conf = half + behaviour[0] * (behaviour[1] + behaviour[2] * ease)
            if good_a != good_c:
                forward = conf if (good_a and not good_c) != wrong else one - conf
                backward = conf if (good_c and not good_a) != wrong else one - conf
            else:
                forward = backward = half
            forward = min(max(forward + behaviour[3], zero), one)
            backward = min(max(backward + behaviour[3], zero), one)
            p_a = (forward + (one - backward)) / np.float32(2.0)
            wins[a] += p_a
            wins[c] += one - p_a
            counts[a] += one
            counts[c] += one
            calls[e] += 2
        top = second = np.float32(-np.inf)
        for c in range(n_c):
            mean = wins[c] / max(counts[c], one) if counts[c] > zero else one
            if valid[e, c]:
                judge_score[e, c] = mean
                if mean > top:
                    top, second = mean, top
                elif mean > second:
                    second = mean
            else:
                judge_score[e, c] = np.nan
        if not np.isfinite(second):
            second = zero
        judge_confidence[e] = min(max(top - second, zero), one)


def simulate_chunk(
    plan: Plan,
    config: SimulationConfig,
    rng: np.random.Generator,
    n: int,
    first_index: int,
    tally: Tally,
) -> None:
    """Simulate ``n`` episodes (global indices from ``first_index``) into ``tally``.

    The loop is ``Runtime._oversee``'s: decide; while the action is ``revise`` (and a reviser
    exists) revise the chosen candidate addressing its violated principles, adding at the last
    round the constitution's refusal template as one more candidate, assess, rank, decide again.
    """
    names, probs, harmful_flags = config.category_probabilities()
    category = rng.choice(len(names), size=n, p=probs)
    harmful = np.asarray(harmful_flags, dtype=bool)[category]
    comply_table = np.array(
        [
            float(bh.base_comply_probability(plan.base, np.array(h), np.array(name)))
            for name, h in zip(names, harmful_flags, strict=True)
        ]
    )
    z_case = rng.standard_normal(n, dtype=np.float32)
    z_model = rng.standard_normal((plan.groups, n), dtype=np.float32)
    c_count = plan.candidates
    p_count = len(plan.principle_ids)
    complies = np.zeros((n, c_count), dtype=bool)
    complies[:, 0] = rng.random(n) < comply_table[category]
    batch = FindingsBatch.empty(n, c_count, p_count)
    batch.audit_draw = rng.random(n, dtype=np.float32)
    calls = np.ones(n, dtype=np.int64)  # the draft

    def assess(rows: np.ndarray, c: int) -> None:
        assess_candidate(plan, rng, rows, c, harmful, complies, z_case, z_model, batch, calls)

    everyone = np.arange(n)
    assess(everyone, 0)
    z_pair = rng.standard_normal((n, c_count, c_count), dtype=np.float32) if plan.judge else None
    u_revise = rng.random((n, c_count), dtype=np.float32)  # one draw per revised source
    final_action = np.zeros(n, dtype=np.int8)
    final_chosen = np.zeros(n, dtype=np.int16)
    final_strategy = np.zeros(n, dtype=np.int8)
    final_triggers = np.zeros(n, dtype=np.int16)
    rounds_used = np.zeros(n, dtype=np.int16)
    open_ = everyone
    rounds = 0
    while True:
        s = open_
        if z_pair is not None:
            rank_candidates(plan, s, harmful, complies, z_pair, z_case, z_model, batch, calls)
        batch.rounds_left[s] = plan.max_rounds - rounds
        # only the candidates that exist so far, as the runtime passes them (trailing invalid
        # candidates would not change the decision, only its cost)
        existing = int(np.flatnonzero(batch.valid[s].any(axis=0)).max()) + 1
        d = decide(batch, plan.core, rows=s, candidates=existing)
        revise = d.action == ACTION_REVISE
        if plan.reviser is None:
            revise[:] = False
        done = ~revise
        final_action[s[done]] = np.where(d.action[done] == ACTION_REVISE, 0, d.action[done])
        final_chosen[s[done]] = d.chosen[done]
        final_strategy[s[done]] = d.strategy[done]
        final_triggers[s[done]] = d.triggers[done]
        rounds_used[s[done]] = rounds
        if not revise.any():
            break
        assert plan.reviser is not None
        rounds += 1
        nxt = s[revise]
        src = d.chosen[revise].astype(np.intp)
        addressed = batch.verdict[nxt, src] == VERDICT_VIOLATED  # [S', P]
        complies[nxt, rounds] = bh.revised_complies(
            plan.reviser,
            complies[nxt, src],
            (addressed & (plan.kinds == 0)[None, :]).any(axis=1),
            (addressed & (plan.kinds == 1)[None, :]).any(axis=1),
            u_revise[nxt, src],
        )
        calls[nxt] += 1
        assess(nxt, rounds)
        if rounds == plan.max_rounds:
            templated = nxt[(addressed & plan.has_template[None, :]).any(axis=1)]
            if templated.size:
                complies[templated, rounds + 1] = False
                assess(templated, rounds + 1)
        open_ = nxt
    _tally(plan, config, rng, tally, harmful, complies, final_action, final_chosen,
           final_strategy, final_triggers, rounds_used, calls, first_index)  # fmt: skip


def _tally(
    plan: Plan,
    config: SimulationConfig,
    rng: np.random.Generator,
    tally: Tally,
    harmful: np.ndarray,
    complies: np.ndarray,
    action: np.ndarray,
    chosen: np.ndarray,
    strategy: np.ndarray,
    triggers: np.ndarray,
    rounds_used: np.ndarray,
    calls: np.ndarray,
    first_index: int,
) -> None:
    n = len(harmful)
    chosen_complies = np.take_along_axis(complies, chosen[:, None].astype(np.intp), axis=1)[:, 0]
    escalated = action == ACTION_ESCALATE
    # a person gets the case right, or (with human_error_rate) goes along with the proposal
    human_right = rng.random(n) >= config.human_error_rate
    human_complies = np.where(human_right, ~harmful, chosen_complies)
    final = np.where(escalated, human_complies, chosen_complies)
    benign = ~harmful
    tally.episodes += n
    tally.harmful += int(harmful.sum())
    tally.benign += int(benign.sum())
    tally.pass_through += int((harmful & final).sum())
    tally.false_refusal += int((benign & ~final).sum())
    tally.auto_pass_through += int((harmful & ~escalated & chosen_complies).sum())
    tally.auto_false_refusal += int((benign & ~escalated & ~chosen_complies).sum())
    tally.chosen_pass_through += int((harmful & chosen_complies).sum())
    tally.chosen_false_refusal += int((benign & ~chosen_complies).sum())
    tally.escalated += int(escalated.sum())
    tally.escalated_harmful += int((escalated & harmful).sum())
    tally.revised += int((rounds_used > 0).sum())
    tally.revisions += int(rounds_used.sum())
    tally.model_calls += int(calls.sum())
    for bit, name in TRIGGER_NAMES.items():
        tally.triggers[name] += int(((triggers & bit) != 0).sum())
    counts = np.bincount(strategy, minlength=len(STRATEGY_NAMES))
    for i, name in enumerate(STRATEGY_NAMES):
        tally.strategies[name] += int(counts[i])
    horizon = config.horizon_days
    day = ((first_index + np.arange(n)) / config.episodes_per_day).astype(np.int64)
    in_horizon = escalated & (day < horizon)
    per_day = np.bincount(day[in_horizon], minlength=horizon)[:horizon]
    if tally.daily_escalations.size == 0:
        tally.daily_escalations = np.zeros(horizon, dtype=np.int64)
    tally.daily_escalations += per_day


def merge_tallies(tallies: list[Tally]) -> Tally:
    """The sum of several tallies (chunks simulated apart)."""
    out = Tally()
    for t in tallies:
        for name in ("episodes", "harmful", "benign", "pass_through", "false_refusal",
                     "auto_pass_through", "auto_false_refusal", "chosen_pass_through",
                     "chosen_false_refusal", "escalated", "escalated_harmful", "revised",
                     "revisions", "model_calls"):  # fmt: skip
            setattr(out, name, getattr(out, name) + getattr(t, name))
        for key, value in t.triggers.items():
            out.triggers[key] += value
        for key, value in t.strategies.items():
            out.strategies[key] += value
        if out.daily_escalations.size == 0:
            out.daily_escalations = t.daily_escalations.copy()
        elif t.daily_escalations.size:
            out.daily_escalations += t.daily_escalations
    return out


def _chunk(args: tuple[Plan, SimulationConfig, int, int, int, int]) -> Tally:
    plan, config, seed, index, n, first = args
    tally = Tally()
    simulate_chunk(plan, config, np.random.default_rng([seed, index]), n, first, tally)
    return tally


def _jobs(
    plan: Plan, config: SimulationConfig, seed: int | None
) -> list[tuple[Plan, SimulationConfig, int, int, int, int]]:
    """The chunks of one configuration: chunk ``k`` draws from a generator seeded ``(seed, k)``."""
    base_seed = config.seed if seed is None else seed
    jobs: list[tuple[Plan, SimulationConfig, int, int, int, int]] = []
    done = 0
    while done < config.episodes:
        n = min(config.chunk_size, config.episodes - done)
        jobs.append((plan, config, base_seed, len(jobs), n, done))
        done += n
    return jobs


def run_plans(
    points: list[tuple[Plan, SimulationConfig]],
    *,
    workers: int = 1,
    seed: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Tally]:
    """Simulate several configurations (a sweep); one tally per configuration.

    With ``workers > 1`` the chunks of every configuration run on that many threads of this
    process, one pool for the whole study: the compiled kernels release the GIL and so do
    numpy's bulk random draws and ``exp``, so the threads use as many cores, without starting
    processes or copying plans. At most ``2 x workers`` chunks are in flight (memory stays
    bounded by the chunk size). The result does not depend on ``workers``: each chunk has its
    own generator and tallies are sums, taken in chunk order.
    """
    jobs = [(point, job) for point, (plan, config) in enumerate(points)
            for job in _jobs(plan, config, seed)]  # fmt: skip
    parts: list[list[Tally]] = [[] for _ in points]

    def collect(point: int, tally: Tally) -> None:
        parts[point].append(tally)
        if progress is not None:
            progress(tally.episodes)

    if workers > 1 and len(jobs) > 1:
        from collections import deque
        from concurrent.futures import Future, ThreadPoolExecutor

        # compile (or load) the kernels and build every plan's tables here, before threads
        # race to do it
        for plan, _ in points:
            plan.kernel_tables()
        plan, config = points[0]
        simulate_chunk(plan, config, np.random.default_rng(0), 64, 0, Tally())
        window: deque[tuple[int, Future[Tally]]] = deque()
        with ThreadPoolExecutor(min(workers, len(jobs))) as pool:
            for point, job in jobs:
                window.append((point, pool.submit(_chunk, job)))
                if len(window) >= 2 * workers:
                    done_point, future = window.popleft()
                    collect(done_point, future.result())
            while window:
                done_point, future = window.popleft()
                collect(done_point, future.result())
    else:
        for point, job in jobs:
            collect(point, _chunk(job))
    return [merge_tallies(p) for p in parts]


def run_plan(
    plan: Plan,
    config: SimulationConfig,
    *,
    seed: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Tally:
    """Simulate ``config.episodes`` episodes in chunks; ``progress(n)`` after each chunk.

    Chunk ``k`` draws from its own generator seeded by ``(seed, k)``, so a result depends on
    the seed and the chunk size only (not on ``config.workers``), and memory on the chunk size
    (times the workers) only.
    """
    return run_plans([(plan, config)], workers=config.workers, seed=seed, progress=progress)[0]
