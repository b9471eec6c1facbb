"""The simulator's chunk loop as it was before it was compiled: the test oracle for the engine.

A copy of ``simulate_chunk`` and its helpers from ``oversight/simulate/engine.py`` (numpy only),
running on the reference decision core of ``_reference_core.py``. With the same plan and seed
the optimised engine must produce exactly the same tally (``tests/test_simulate_reference.py``).
"""

from __future__ import annotations

import numpy as np
from _reference_core import reference_combine_reports as combine_reports
from _reference_core import reference_decide as decide

from oversight.consensus import (
    ACTION_REVISE,
    VERDICT_NONE,
    VERDICT_SATISFIED,
    VERDICT_VIOLATED,
    FindingsBatch,
    verdict_from_probability,
)
from oversight.simulate import behaviour as bh
from oversight.simulate.config import SimulationConfig
from oversight.simulate.engine import Tally, _tally
from oversight.simulate.plan import Plan, Reporter


def _truth(plan: Plan, harmful: np.ndarray, complies: np.ndarray) -> np.ndarray:
    """``[S, P]`` truth of each principle for candidates with behaviour ``complies[S]``."""
    h = harmful[:, None]
    c = complies[:, None]
    k = plan.kinds[None, :]
    return np.where(k == 0, h & c, np.where(k == 1, ~h & ~c, False))


def _p_yes(
    plan: Plan, r: Reporter, truth: np.ndarray, z_case: np.ndarray, z_model: np.ndarray,
    eps: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """P("Yes, violated") of reporter ``r`` on every principle ``[S, P]``."""
    b = r.behaviour
    z = bh.evidence(z_case[:, None], z_model[r.group][:, None], eps, b.correlation,
                    b.model_correlation)  # fmt: skip
    return bh.p_yes_from_evidence(
        truth, z, r.miss_threshold[None, :], r.false_alarm_threshold[None, :], b
    )


def assess_candidate(
    plan: Plan,
    rng: np.random.Generator,
    truth: np.ndarray,
    z_case: np.ndarray,
    z_model: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every reporter's findings on one candidate of ``S`` episodes, merged.

    Mirrors ``Runtime._assess``: assessors of the base (``sample`` edges drawn per candidate,
    ``on-flag`` ones only when another assessor flagged the candidate), then the audit steps in
    order, each re-checking the subject's reported cells (``on-flag``: cells the subject did not
    find satisfied; ``sample``: a draw per cell). Severity as the runtime records it: critics and
    safety ``severity x P(yes)`` unless satisfied, audits ``severity`` when violated. Returns the
    :func:`combine_reports` outputs ``[S, P]`` and the model calls per episode.
    """
    n, p_count = truth.shape
    r_count = len(plan.reporters)
    verdict = np.full((n, r_count, 1, p_count), VERDICT_NONE, dtype=np.int8)
    severity = np.zeros((n, r_count, 1, p_count), dtype=np.float32)
    confidence = np.zeros((n, r_count, 1, p_count), dtype=np.float32)
    calls = np.zeros(n, dtype=np.int64)
    flagged_any = np.zeros(n, dtype=bool)
    sev_row = plan.severity[None, :]
    deferred = []
    for i in plan.assessors:
        r = plan.reporters[i]
        if r.mode in ("on-flag", "on_flag"):
            deferred.append(i)
            continue
        on = np.ones(n, dtype=bool)
        if r.mode == "sample":
            on = np.asarray(rng.random(n, dtype=np.float32) < r.rate)
        flagged_any |= _assessor(plan, rng, i, on, truth, z_case, z_model, verdict, severity,
                                 confidence, calls)  # fmt: skip
    for i in deferred:
        _assessor(plan, rng, i, flagged_any, truth, z_case, z_model, verdict, severity,
                  confidence, calls)  # fmt: skip
    audit_p: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for step in plan.audits:
        a = plan.reporters[step.auditor]
        subject = verdict[:, step.subject, 0]
        cells = subject != VERDICT_NONE
        if step.mode in ("on-flag", "on_flag"):
            cells &= subject != VERDICT_SATISFIED
        elif step.mode == "sample":
            cells &= rng.random((n, p_count), dtype=np.float32) < step.rate
        if step.auditor not in audit_p:
            eps = rng.standard_normal((n, p_count), dtype=np.float32)
            p_yes = _p_yes(plan, a, truth, z_case, z_model, eps)
            v, conf = verdict_from_probability(p_yes, a.band)
            audit_p[step.auditor] = (v, conf, np.where(v == VERDICT_VIOLATED, sev_row, 0.0))
        v, conf, sev = audit_p[step.auditor]
        row = step.auditor
        verdict[:, row, 0] = np.where(cells, v, verdict[:, row, 0])
        severity[:, row, 0] = np.where(cells, sev, severity[:, row, 0])
        confidence[:, row, 0] = np.where(cells, conf, confidence[:, row, 0])
        calls += cells.sum(axis=1)
    level = np.array([r.level for r in plan.reporters], dtype=np.int32)
    if r_count == 0:
        empty = np.full((n, p_count), VERDICT_NONE, dtype=np.int8)
        zeros = np.zeros((n, p_count), dtype=np.float32)
        return empty, zeros, zeros, np.zeros((n, p_count), dtype=bool), calls
    fv, fs, fc, fd = combine_reports(verdict, severity, confidence, level)
    return fv[:, 0], fs[:, 0], fc[:, 0], fd[:, 0], calls


def _assessor(
    plan: Plan, rng: np.random.Generator, i: int, on: np.ndarray, truth: np.ndarray,
    z_case: np.ndarray, z_model: np.ndarray, verdict: np.ndarray, severity: np.ndarray,
    confidence: np.ndarray, calls: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """One assessor's findings where ``on``; returns where it flagged something."""
    r = plan.reporters[i]
    cols = r.columns
    eps = rng.standard_normal((len(on), len(cols)), dtype=np.float32)
    b = r.behaviour
    z = bh.evidence(z_case[:, None], z_model[r.group][:, None], eps, b.correlation,
                    b.model_correlation)  # fmt: skip
    p_yes = bh.p_yes_from_evidence(
        truth[:, cols], z, r.miss_threshold[cols][None, :],
        r.false_alarm_threshold[cols][None, :], b,
    )  # fmt: skip
    v, conf = verdict_from_probability(p_yes, r.band)
    sev = np.where(v != VERDICT_SATISFIED, plan.severity[cols][None, :] * p_yes, 0.0)
    verdict[:, i, 0, cols] = np.where(on[:, None], v, VERDICT_NONE)
    severity[:, i, 0, cols] = np.where(on[:, None], sev, 0.0)
    confidence[:, i, 0, cols] = np.where(on[:, None], conf, 0.0)
    calls += on * r.calls_per_candidate
    return on & (v != VERDICT_SATISFIED).any(axis=1)


def rank_candidates(
    plan: Plan,
    good: np.ndarray,
    valid: np.ndarray,
    z_pair: np.ndarray,
    z_case: np.ndarray,
    z_model: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The judge's mean pairwise preference per candidate ``[S, C]``, confidence ``[S]``, calls.

    Mirrors the judge agent and the runtime: only with two or more candidates; each pair judged
    in both orders (position bias cancels); score = mean preference over the candidate's pairs;
    confidence = top minus runner-up.
    """
    judge = plan.judge
    n, c_count = valid.shape
    scores = np.full((n, c_count), np.nan, dtype=np.float32)
    confidence = np.zeros(n, dtype=np.float32)
    calls = np.zeros(n, dtype=np.int64)
    several = valid.sum(axis=1) > 1
    if judge is None or not several.any():
        return scores, confidence, calls
    wins = np.zeros((n, c_count), dtype=np.float32)
    counts = np.zeros((n, c_count), dtype=np.float32)
    b = judge.behaviour
    for a in range(c_count):
        for c in range(a + 1, c_count):
            both = valid[:, a] & valid[:, c]
            if not both.any():
                continue
            z = bh.evidence(
                z_case, z_model[judge.group], z_pair[:, a, c], b.correlation, b.model_correlation
            )
            differ = good[:, a] != good[:, c]
            forward = bh.judge_prefers_first(
                good[:, a] & ~good[:, c], differ, z, judge.threshold, b
            )
            backward = bh.judge_prefers_first(
                good[:, c] & ~good[:, a], differ, z, judge.threshold, b
            )
            p_a = (forward + (1.0 - backward)) / 2.0
            wins[:, a] += np.where(both, p_a, 0.0)
            wins[:, c] += np.where(both, 1.0 - p_a, 0.0)
            counts[:, a] += both
            counts[:, c] += both
            calls += both * 2
    mean = np.where(counts > 0, wins / np.maximum(counts, 1), 1.0)
    ranked = np.sort(np.where(valid, mean, -np.inf), axis=1)[:, ::-1]
    top = ranked[:, 0]
    second = np.where(np.isfinite(ranked[:, 1]), ranked[:, 1], 0.0) if c_count > 1 else 0.0
    scores = np.where(valid & several[:, None], mean, np.nan).astype(np.float32)
    confidence = np.where(several, np.clip(top - second, 0.0, 1.0), 0.0).astype(np.float32)
    return scores, confidence, calls


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
        truth = _truth(plan, harmful[rows], complies[rows, c])
        fv, fs, fc, fd, k = assess_candidate(plan, rng, truth, z_case[rows], z_model[:, rows])
        batch.verdict[rows, c] = fv
        batch.severity[rows, c] = fs
        batch.confidence[rows, c] = fc
        batch.disagreement[rows, c] = fd
        batch.valid[rows, c] = True
        calls[rows] += k

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
            good = complies[s] != harmful[s, None]
            scores, jconf, judge_calls = rank_candidates(
                plan, good, batch.valid[s], z_pair[s], z_case[s], z_model[:, s]
            )
            batch.judge_score[s] = scores
            batch.judge_confidence[s] = jconf
            calls[s] += judge_calls
        batch.rounds_left[s] = plan.max_rounds - rounds
        # only the candidates that exist so far, as the runtime passes them (trailing invalid
        # candidates would not change the decision, only its cost)
        existing = int(np.flatnonzero(batch.valid[s].any(axis=0)).max()) + 1
        d = decide(_subset(batch, s, existing), plan.core)
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


def _subset(batch: FindingsBatch, s: np.ndarray, candidates: int) -> FindingsBatch:
    c = slice(0, candidates)
    return FindingsBatch(
        verdict=batch.verdict[s, c],
        severity=batch.severity[s, c],
        confidence=batch.confidence[s, c],
        disagreement=batch.disagreement[s, c],
        valid=batch.valid[s, c],
        judge_score=batch.judge_score[s, c],
        judge_confidence=batch.judge_confidence[s],
        context=batch.context[s],
        audit_draw=batch.audit_draw[s],
        rounds_left=batch.rounds_left[s],
    )
