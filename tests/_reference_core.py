"""The decision core as it was before it was compiled: the test oracle for the optimised one.

A verbatim copy of ``combine_reports`` and ``decide`` (numpy, vectorised over episodes) from
``oversight/consensus.py`` at the commit that replaced them with compiled kernels. The optimised
core must return exactly the same arrays, bit for bit, on any batch
(``tests/test_consensus_reference.py``). When the rules change on purpose, change them here in
the same commit, in this plain form first.
"""

from __future__ import annotations

import numpy as np

from oversight.consensus import (
    ACTION_CONSENSUS,
    ACTION_ESCALATE,
    ACTION_REVISE,
    STRATEGY_HUMAN,
    STRATEGY_NONE,
    STRATEGY_PRIORITY,
    STRATEGY_REVIEW,
    STRATEGY_WEIGHTED,
    TRIGGER_AUDIT,
    TRIGGER_DISAGREEMENT,
    TRIGGER_LOW_CONFIDENCE,
    TRIGGER_SEVERITY,
    TRIGGER_UNRESOLVED,
    VERDICT_NONE,
    VERDICT_SATISFIED,
    VERDICT_UNCERTAIN,
    VERDICT_VIOLATED,
    CompiledCore,
    Decisions,
    FindingsBatch,
)


def reference_combine_reports(
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


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[e, index[e]]`` for every episode e (values ``[E, C, ...]``)."""
    return values[np.arange(len(values)), index]


def reference_decide(batch: FindingsBatch, core: CompiledCore) -> Decisions:
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
