"""The decision core: unit cases for each rule, and invariants with hypothesis."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

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
    VERDICT_SATISFIED,
    VERDICT_UNCERTAIN,
    VERDICT_VIOLATED,
    CompiledCore,
    FindingsBatch,
    combine_reports,
    decide,
    trigger_names,
    verdict_from_probability,
)

# Principles: 0 harm, 1 helpfulness, 2 honesty, 3 style. harm > helpfulness; others incomparable.
IDS = ["harm", "helpfulness", "honesty", "style"]


def make_core(**overrides: object) -> CompiledCore:
    dominance = np.zeros((1, 4, 4), dtype=bool)
    dominance[0, 0, 1] = True
    fields: dict[str, object] = {
        "principle_ids": IDS,
        "weights": np.array([3.0, 1.0, 1.0, 0.5], dtype=np.float32),
        "severity_threshold": np.full(4, np.inf, dtype=np.float32),
        "dominance": dominance,
        "low_confidence": 0.0,
        "weighted_margin": 0.2,
        "review_confidence": 0.5,
    }
    fields.update(overrides)
    return CompiledCore(**fields)  # type: ignore[arg-type]


def batch_with(cells: dict[tuple[int, int], int], candidates: int = 2) -> FindingsBatch:
    batch = FindingsBatch.empty(1, candidates, len(IDS))
    batch.valid[0, :] = True
    batch.verdict[0, :, :] = VERDICT_SATISFIED
    batch.confidence[0] = 1.0
    for (c, p), v in cells.items():
        batch.verdict[0, c, p] = v
        batch.severity[0, c, p] = 0.5
    return batch


def test_acceptable_candidate_is_consensus_without_conflict() -> None:
    batch = batch_with({(0, 0): VERDICT_VIOLATED})
    d = decide(batch, make_core())
    assert d.action[0] == ACTION_CONSENSUS
    assert d.chosen[0] == 1
    assert d.strategy[0] == STRATEGY_NONE
    assert not d.conflict[0]


def test_violations_with_rounds_left_ask_for_revision() -> None:
    batch = batch_with({(0, 0): VERDICT_VIOLATED, (1, 0): VERDICT_VIOLATED})
    batch.rounds_left[0] = 1
    assert decide(batch, make_core()).action[0] == ACTION_REVISE


def test_priority_ordering_prefers_violating_the_lower_principle() -> None:
    # c0 complies with a harmful request (violates harm); c1 refuses (violates helpfulness).
    batch = batch_with({(0, 0): VERDICT_VIOLATED, (1, 1): VERDICT_VIOLATED})
    d = decide(batch, make_core())
    assert d.strategy[0] == STRATEGY_PRIORITY
    assert d.chosen[0] == 1
    assert d.action[0] == ACTION_CONSENSUS
    assert d.conflict[0]


def test_weighted_scoring_decides_incomparable_principles_with_a_margin() -> None:
    # honesty (w=1) vs style (w=0.5): incomparable in the graph, cost 0.5 vs 0.25.
    batch = batch_with({(0, 2): VERDICT_VIOLATED, (1, 3): VERDICT_VIOLATED})
    d = decide(batch, make_core(weighted_margin=0.2))
    assert d.strategy[0] == STRATEGY_WEIGHTED
    assert d.chosen[0] == 1


def test_too_close_goes_to_review_then_to_humans() -> None:
    batch = batch_with({(0, 2): VERDICT_VIOLATED, (1, 3): VERDICT_VIOLATED})
    batch.judge_score[0] = [0.8, 0.2]
    batch.judge_confidence[0] = 0.9
    d = decide(batch, make_core(weighted_margin=1.0))
    assert d.strategy[0] == STRATEGY_REVIEW
    assert d.chosen[0] == 0
    batch.judge_confidence[0] = 0.1
    d = decide(batch, make_core(weighted_margin=1.0))
    assert d.strategy[0] == STRATEGY_HUMAN
    assert d.action[0] == ACTION_ESCALATE
    assert d.triggers[0] & TRIGGER_UNRESOLVED


def test_triggers_on_the_chosen_candidate() -> None:
    batch = batch_with({})
    batch.disagreement[0, 0, 1] = True
    d = decide(batch, make_core())
    assert d.action[0] == ACTION_ESCALATE and d.triggers[0] == TRIGGER_DISAGREEMENT

    batch = batch_with({(0, 2): VERDICT_UNCERTAIN})
    d = decide(batch, make_core())
    assert d.triggers[0] & TRIGGER_LOW_CONFIDENCE

    batch = batch_with({(0, 0): VERDICT_VIOLATED}, candidates=1)
    batch.severity[0, 0, 0] = 0.95
    threshold = np.array([0.9, np.inf, np.inf, np.inf], dtype=np.float32)
    d = decide(batch, make_core(severity_threshold=threshold))
    assert d.triggers[0] & TRIGGER_SEVERITY


def test_audit_samples_only_clean_consensus() -> None:
    batch = batch_with({})
    batch.audit_draw[0] = 0.01
    d = decide(batch, make_core(audit_rate=0.05))
    assert d.triggers[0] == TRIGGER_AUDIT and d.action[0] == ACTION_ESCALATE
    batch.audit_draw[0] = 0.5
    assert decide(batch, make_core(audit_rate=0.05)).action[0] == ACTION_CONSENSUS
    assert trigger_names(TRIGGER_AUDIT | TRIGGER_SEVERITY) == ("severity", "audit")


def test_verdict_from_probability_bands() -> None:
    verdict, confidence = verdict_from_probability([0.9, 0.5, 0.1], band=0.1)
    assert verdict.tolist() == [VERDICT_VIOLATED, VERDICT_UNCERTAIN, VERDICT_SATISFIED]
    assert np.allclose(confidence, [0.8, 0.0, 0.8])


def test_combine_reports_supervisor_overrides_and_disagreement_is_flagged() -> None:
    verdict = np.full((1, 2, 1, 1), -1, dtype=np.int8)
    verdict[0, 0, 0, 0] = VERDICT_VIOLATED  # critic, level 1
    verdict[0, 1, 0, 0] = VERDICT_SATISFIED  # judge auditing it, level 2
    severity = np.full((1, 2, 1, 1), 0.7, dtype=np.float32)
    confidence = np.array([0.6, 0.9], dtype=np.float32).reshape(1, 2, 1, 1)
    final, sev, conf, dis = combine_reports(verdict, severity, confidence, np.array([1, 2]))
    assert final[0, 0, 0] == VERDICT_SATISFIED
    assert sev[0, 0, 0] == 0.0
    assert conf[0, 0, 0] == np.float32(0.9)
    assert dis[0, 0, 0]
    # Same level: a violation outweighs.
    final, sev, _, _ = combine_reports(verdict, severity, confidence, np.array([1, 1]))
    assert final[0, 0, 0] == VERDICT_VIOLATED and sev[0, 0, 0] == np.float32(0.7)


cells = st.lists(st.sampled_from([VERDICT_SATISFIED, VERDICT_VIOLATED]), min_size=12, max_size=12)


@settings(max_examples=200, deadline=None)
@given(cells, st.floats(0, 1), st.floats(0, 1))
def test_batched_decisions_equal_one_by_one(flat: list[int], judge: float, draw: float) -> None:
    """Deciding E episodes at once equals deciding each alone (the simulator's premise)."""
    rng = np.random.default_rng(len(flat))
    batch = FindingsBatch.empty(4, 3, len(IDS))
    batch.valid[:] = True
    batch.verdict[:] = rng.choice([0, 1], size=batch.verdict.shape)
    batch.verdict[0, 0, :] = flat[:4]
    batch.severity[:] = rng.random(batch.severity.shape)
    batch.confidence[:] = rng.random(batch.confidence.shape)
    batch.judge_score[:] = judge
    batch.judge_confidence[:] = judge
    batch.audit_draw[:] = draw
    core = make_core(audit_rate=0.3)
    together = decide(batch, core)
    for e in range(4):
        one = FindingsBatch(**{k: v[e : e + 1] for k, v in vars(batch).items()})
        alone = decide(one, core)
        assert alone.action[0] == together.action[e]
        assert alone.chosen[0] == together.chosen[e]
        assert alone.strategy[0] == together.strategy[e]
        assert alone.triggers[0] == together.triggers[e]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**16))
def test_a_candidate_violating_the_dominating_principle_never_wins_by_priority(seed: int) -> None:
    rng = np.random.default_rng(seed)
    batch = FindingsBatch.empty(1, 2, len(IDS))
    batch.valid[:] = True
    batch.verdict[:] = rng.choice([0, 1], size=batch.verdict.shape)
    batch.confidence[:] = 1.0
    batch.severity[:] = 0.5
    batch.verdict[0, 0, 0] = VERDICT_VIOLATED  # c0 violates harm
    batch.verdict[0, 1, 0] = VERDICT_SATISFIED
    batch.verdict[0, 0, 1] = VERDICT_SATISFIED  # c1 may violate helpfulness only
    batch.verdict[0, 1, 1:] = [VERDICT_VIOLATED, VERDICT_SATISFIED, VERDICT_SATISFIED]
    d = decide(batch, make_core())
    assert d.strategy[0] == STRATEGY_PRIORITY
    assert d.chosen[0] == 1


def test_tied_winners_share_a_priority_win_and_the_judge_picks() -> None:
    # c0 complies with a harmful request; c1 and c2 both refuse (violate helpfulness only).
    batch = batch_with(
        {(0, 0): VERDICT_VIOLATED, (1, 1): VERDICT_VIOLATED, (2, 1): VERDICT_VIOLATED},
        candidates=3,
    )
    batch.judge_score[0] = [0.1, 0.3, 0.6]
    d = decide(batch, make_core())
    assert d.strategy[0] == STRATEGY_PRIORITY
    assert d.chosen[0] == 2


def test_same_violations_everywhere_is_not_settled_by_weighting() -> None:
    batch = batch_with({(0, 2): VERDICT_VIOLATED, (1, 2): VERDICT_VIOLATED})
    batch.severity[0, 1, 2] = 0.1
    d = decide(batch, make_core(weighted_margin=0.0))
    assert d.strategy[0] == STRATEGY_HUMAN


def test_a_blocked_candidate_is_never_chosen_while_another_is_left() -> None:
    from oversight.consensus import GATE_BLOCK, TRIGGER_SAFETY

    # c0 violates style only (cheap), c1 honesty (dearer): weighting would pick c0 ...
    batch = batch_with({(0, 3): VERDICT_VIOLATED, (1, 2): VERDICT_VIOLATED})
    assert decide(batch, make_core(weighted_margin=0.2)).chosen[0] == 0
    # ... but the safety agent blocked c0: c1 is chosen, by the same rules, without it.
    assert batch.gate is not None
    batch.gate[0, 0] = GATE_BLOCK
    d = decide(batch, make_core(weighted_margin=0.2))
    assert d.chosen[0] == 1
    assert not d.triggers[0] & TRIGGER_SAFETY


def test_every_candidate_blocked_escalates_with_the_safety_trigger() -> None:
    from oversight.consensus import GATE_BLOCK, TRIGGER_SAFETY

    batch = batch_with({(0, 0): VERDICT_VIOLATED, (1, 0): VERDICT_VIOLATED})
    assert batch.gate is not None
    batch.gate[0, :] = GATE_BLOCK
    batch.rounds_left[0] = 1
    assert decide(batch, make_core()).action[0] == ACTION_REVISE  # rounds left: revise first
    batch.rounds_left[0] = 0
    d = decide(batch, make_core())
    assert d.action[0] == ACTION_ESCALATE
    assert d.triggers[0] & TRIGGER_SAFETY
    assert "safety" in trigger_names(int(d.triggers[0]))


def test_a_safety_escalation_flag_on_the_chosen_candidate_sends_it_to_people() -> None:
    from oversight.consensus import GATE_ESCALATE, TRIGGER_SAFETY

    batch = batch_with({(0, 0): VERDICT_VIOLATED})  # c1 is clean: consensus ...
    assert decide(batch, make_core()).action[0] == ACTION_CONSENSUS
    assert batch.gate is not None
    batch.gate[0, 1] = GATE_ESCALATE  # ... unless the safety agent wants people to look
    d = decide(batch, make_core())
    assert d.action[0] == ACTION_ESCALATE and d.triggers[0] == TRIGGER_SAFETY
