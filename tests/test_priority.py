from __future__ import annotations

import itertools
from collections.abc import Sequence

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oversight.constitution import ConditionalRule, Constitution, Principle, load_constitution
from oversight.errors import PriorityCycleError, UnknownPrincipleError
from oversight.priority import PriorityGraph, check_acyclic

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def principle(pid: str, weight: float = 1.0, severity: float = 0.5) -> Principle:
    return Principle(
        id=pid, version="1", name=pid, category="test", purpose="testing",
        critique_prompt="{response}? Answer Yes or No.", revision_prompt="{response}",
        weight=weight, severity=severity,
    )  # fmt: skip


def make(
    ids: Sequence[str],
    edges: Sequence[tuple[str, str]] = (),
    rules: Sequence[ConditionalRule] = (),
    weights: dict[str, float] | None = None,
) -> Constitution:
    weights = weights or {}
    return Constitution(
        name="t",
        principles=tuple(principle(i, weights.get(i, 1.0)) for i in ids),
        priorities=tuple(edges),
        rules=tuple(rules),
        source="t.yaml",
    )


@pytest.fixture(scope="module")
def default() -> PriorityGraph:
    return PriorityGraph(load_constitution("constitutions/default.yaml"))


# ------------------------------------------------------------------ graph queries


def test_default_graph_edges_and_conditional_rules(default: PriorityGraph) -> None:
    assert default.prevails("harm", "helpfulness")
    assert not default.prevails("helpfulness", "harm")
    assert not default.prevails("harm", "privacy") and not default.prevails("privacy", "harm")
    assert not default.prevails("honesty", "helpfulness")
    medical = {"domain": "medical"}
    assert default.prevails("honesty", "helpfulness", medical)
    assert default.path("honesty", "helpfulness", medical) == ["honesty", "helpfulness"]
    assert default.path("honesty", "helpfulness") == []
    assert [r.id for r in default.rules_for(medical)] == ["high-stakes-honesty"]
    assert default.context_key({"domain": "cooking"}) == ()
    assert default.context_key({"audience": "minor", "domain": "legal"}) == (
        "high-stakes-honesty",
        "minor-audience",
    )


def test_dominance_is_the_transitive_closure_and_cached() -> None:
    graph = PriorityGraph(make("abcd", [("a", "b"), ("b", "c")]))
    dom = graph.dominance()
    assert graph.principle_ids == ["a", "b", "c", "d"]
    assert dom.dtype == bool and dom.shape == (4, 4)
    assert dom[0, 2] and dom[0, 1] and dom[1, 2]
    assert not dom[2, 0] and not dom[:, 3].any() and not dom.diagonal().any()
    assert graph.path("a", "c") == ["a", "b", "c"]
    assert graph.dominance({}) is dom
    assert not dom.flags.writeable


def test_dominance_per_context_shares_one_matrix_per_rule_set(default: PriorityGraph) -> None:
    a = default.dominance({"domain": "medical"})
    b = default.dominance({"domain": "legal", "region": "eu"})
    assert a is b
    assert a is not default.dominance()


def test_rule_removing_an_edge() -> None:
    rule = ConditionalRule(id="lab", when={"deployment": ["lab"]}, remove_edges=(("a", "b"),))
    graph = PriorityGraph(make("abc", [("a", "b"), ("b", "c")], [rule]))
    assert graph.prevails("a", "c")
    assert not graph.prevails("a", "b", {"deployment": "lab"})
    assert not graph.prevails("a", "c", {"deployment": "lab"})


def test_weights_and_severities_follow_principle_order(default: PriorityGraph) -> None:
    c = default.constitution
    assert default.weights().tolist() == [p.weight for p in c.principles]
    assert default.severities().tolist() == [p.severity for p in c.principles]


def test_unknown_principle_in_queries(default: PriorityGraph) -> None:
    with pytest.raises(UnknownPrincipleError, match="did you mean 'harm'"):
        default.prevails("hram", "helpfulness")
    with pytest.raises(UnknownPrincipleError):
        default.resolve({"a": {"nope"}, "b": set()})


# ------------------------------------------------------------------ cycles


def test_direct_cycle_names_cycle_and_file() -> None:
    with pytest.raises(PriorityCycleError) as info:
        make("abc", [("a", "b"), ("b", "c"), ("c", "a")])
    assert sorted(info.value.cycle) == ["a", "b", "c"]
    assert info.value.path == "t.yaml"
    assert "t.yaml" in str(info.value) and "->" in str(info.value)


def test_cycle_that_appears_only_under_a_rule() -> None:
    rule = ConditionalRule(id="flip", when={"domain": ["x"]}, add_edges=(("b", "a"),))
    with pytest.raises(PriorityCycleError, match=r"t\.yaml.*conditional rule\(s\) flip") as info:
        make("ab", [("a", "b")], [rule])
    assert set(info.value.cycle) == {"a", "b"}


def test_cycle_from_two_rules_that_can_apply_together() -> None:
    r1 = ConditionalRule(id="r1", when={"domain": ["x", "y"]}, add_edges=(("a", "b"),))
    r2 = ConditionalRule(id="r2", when={"audience": ["minor"]}, add_edges=(("b", "a"),))
    with pytest.raises(PriorityCycleError, match=r"r1, r2"):
        make("ab", rules=[r1, r2])


def test_rules_that_never_apply_together_may_disagree() -> None:
    r1 = ConditionalRule(id="r1", when={"domain": ["x"]}, add_edges=(("a", "b"),))
    r2 = ConditionalRule(id="r2", when={"domain": ["y"]}, add_edges=(("b", "a"),))
    graph = PriorityGraph(make("ab", rules=[r1, r2]))
    assert graph.prevails("a", "b", {"domain": "x"})
    assert graph.prevails("b", "a", {"domain": "y"})


def test_a_rule_removing_an_edge_can_make_room_for_the_reverse() -> None:
    rule = ConditionalRule(
        id="swap", when={"k": ["v"]}, remove_edges=(("a", "b"),), add_edges=(("b", "a"),)
    )
    graph = PriorityGraph(make("ab", [("a", "b")], [rule]))
    assert graph.prevails("b", "a", {"k": "v"}) and graph.prevails("a", "b")


# ------------------------------------------------------------------ resolve


def test_resolve_by_priority_records_path_and_rules(default: PriorityGraph) -> None:
    result = default.resolve({"c0": {"harm"}, "c1": {"helpfulness"}})
    assert (result.strategy, result.winner) == ("priority", "c1")
    assert result.path == ("harm", "helpfulness")
    result = default.resolve(
        {"c0": {"honesty"}, "c1": {"helpfulness"}}, context={"domain": "medical"}
    )
    assert (result.strategy, result.winner) == ("priority", "c1")
    assert result.conditional_rules == ("high-stakes-honesty",)


def test_resolve_by_weighted_scoring_when_incomparable(default: PriorityGraph) -> None:
    # harm and privacy are incomparable: the cheaper violation wins with a margin.
    result = default.resolve({"c0": {"harm"}, "c1": {"privacy"}})
    assert (result.strategy, result.winner) == ("weighted", "c1")
    assert result.scores["c0"] == pytest.approx(1.0 * 0.9)
    assert result.scores["c1"] == pytest.approx(0.8 * 0.7)
    # a low-confidence harm finding makes it the cheaper one
    result = default.resolve({"c0": {"harm"}, "c1": {"privacy"}}, confidence={"c0": {"harm": 0.2}})
    assert (result.strategy, result.winner) == ("weighted", "c0")


def test_resolve_too_close_is_open(default: PriorityGraph) -> None:
    result = default.resolve(
        {"c0": {"harm"}, "c1": {"privacy"}},
        severity={"c0": {"harm": 0.5}, "c1": {"privacy": 0.6}},
        margin=0.1,
    )
    assert result.strategy is None and result.winner is None
    assert "margin" in result.rationale


def test_resolve_subset_and_single_candidates(default: PriorityGraph) -> None:
    result = default.resolve({"c0": {"harm", "privacy"}, "c1": {"harm"}})
    assert (result.strategy, result.winner, result.path) == ("priority", "c1", ())
    assert default.resolve({"only": {"harm"}}).winner == "only"
    assert default.resolve({}).strategy is None


def test_decisive_path_explains_a_priority_win() -> None:
    graph = PriorityGraph(make("abcd", [("a", "b"), ("b", "c")]))
    assert graph.decisive_path({"c", "d"}, {"a", "d"}) == ["a", "b", "c"]
    assert graph.decisive_path({"d"}, {"d", "a"}) == []
    assert graph.decisive_path({"a"}, {"c"}) == []


def test_resolve_needs_every_exclusive_violation_covered(default: PriorityGraph) -> None:
    # c1 violates helpfulness (dominated by harm) but also fairness, which nothing of c0 covers.
    result = default.resolve({"c0": {"harm"}, "c1": {"helpfulness", "fairness"}})
    assert result.strategy != "priority"


# ------------------------------------------------------------------ invariants (hypothesis)

NAMES = [f"p{i}" for i in range(6)]


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, str]], dict[str, float]]:
    n = draw(st.integers(2, len(NAMES)))
    order = draw(st.permutations(NAMES[:n]))
    edges = [(order[i], order[j]) for i in range(n) for j in range(i + 1, n) if draw(st.booleans())]
    weights = {p: draw(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0])) for p in NAMES[:n]}
    return NAMES[:n], edges, weights


@st.composite
def cases(draw: st.DrawFn) -> tuple[Constitution, dict[str, set[str]]]:
    ids, edges, weights = draw(dags())
    n_candidates = draw(st.integers(2, 4))
    violations = {
        f"c{k}": set(draw(st.sets(st.sampled_from(ids), min_size=0, max_size=3)))
        for k in range(n_candidates)
    }
    return make(ids, edges, weights=weights), violations


@FAST
@given(cases())
def test_resolution_is_deterministic(case: tuple[Constitution, dict[str, set[str]]]) -> None:
    constitution, violations = case
    first = PriorityGraph(constitution).resolve(violations)
    again = PriorityGraph(constitution).resolve({k: set(v) for k, v in violations.items()})
    assert first == again


@FAST
@given(dags(), st.data())
def test_dominated_principle_never_wins_against_its_dominator(
    dag: tuple[list[str], list[tuple[str, str]], dict[str, float]], data: st.DataObject
) -> None:
    ids, edges, weights = dag
    graph = PriorityGraph(make(ids, edges, weights=weights))
    dom = graph.dominance()
    pairs = [(ids[i], ids[j]) for i, j in zip(*np.nonzero(dom), strict=True)]
    if not pairs:
        return
    winner_p, loser_p = data.draw(st.sampled_from(pairs))
    result = graph.resolve({"a": {winner_p}, "b": {loser_p}})
    # violating the dominated principle is the lesser evil; the other side never wins.
    assert (result.strategy, result.winner) == ("priority", "b")
    assert result.path[0] == winner_p and result.path[-1] == loser_p


@FAST
@given(cases())
def test_a_priority_winner_is_beaten_by_nobody(
    case: tuple[Constitution, dict[str, set[str]]],
) -> None:
    constitution, violations = case
    graph = PriorityGraph(constitution)
    result = graph.resolve(violations)
    if result.strategy == "priority" and result.winner is not None:
        for other, violated in violations.items():
            if other != result.winner:
                assert not graph.beats(violated, violations[result.winner])
    if result.strategy == "weighted":
        cheapest = min(result.scores.values())
        assert result.scores[result.winner or ""] == cheapest


@FAST
@given(cases(), st.booleans())
def test_an_unrelated_principle_never_changes_a_decided_case(
    case: tuple[Constitution, dict[str, set[str]]], violated_by_all: bool
) -> None:
    constitution, violations = case
    before = PriorityGraph(constitution).resolve(violations)
    if before.strategy is None:
        return
    extended = constitution.model_copy(
        update={"principles": (*constitution.principles, principle("zz", weight=0.0))}
    )
    extended = Constitution.model_validate(extended.model_dump())
    if violated_by_all:  # in play for every candidate, but with zero weight and no edges
        violations = {k: {*v, "zz"} for k, v in violations.items()}
    after = PriorityGraph(extended).resolve(violations)
    assert (after.strategy, after.winner, after.path) == (
        before.strategy,
        before.winner,
        before.path,
    )


@FAST
@given(dags(), st.data())
def test_cycles_are_always_rejected(
    dag: tuple[list[str], list[tuple[str, str]], dict[str, float]], data: st.DataObject
) -> None:
    ids, edges, _ = dag
    graph = PriorityGraph(make(ids, edges))
    reachable = [(ids[i], ids[j]) for i, j in zip(*np.nonzero(graph.dominance()), strict=True)]
    if not reachable:
        return
    a, b = data.draw(st.sampled_from(reachable))
    with pytest.raises(PriorityCycleError) as info:
        make(ids, [*edges, (b, a)])
    cycle = info.value.cycle
    closing = [*cycle, cycle[0]]
    all_edges = {*edges, (b, a)}
    assert all((u, v) in all_edges for u, v in itertools.pairwise(closing))
    # the same edge added by a conditional rule is rejected too
    rule = ConditionalRule(id="r", when={"k": ["v"]}, add_edges=((b, a),))
    with pytest.raises(PriorityCycleError, match="conditional rule"):
        make(ids, edges, [rule])


@FAST
@given(dags())
def test_dominance_matches_networkx_closure(
    dag: tuple[list[str], list[tuple[str, str]], dict[str, float]],
) -> None:
    ids, edges, _ = dag
    graph = PriorityGraph(make(ids, edges))
    expected = nx.transitive_closure_dag(nx.DiGraph(edges)) if edges else nx.DiGraph()
    dom = graph.dominance()
    for i, a in enumerate(ids):
        for j, b in enumerate(ids):
            assert dom[i, j] == expected.has_edge(a, b)


def test_check_acyclic_accepts_the_shipped_constitution() -> None:
    check_acyclic(load_constitution("constitutions/default.yaml"))


@FAST
@given(cases(), st.sampled_from([0.0, 0.1, 0.3]), st.booleans())
def test_resolve_agrees_with_the_vectorised_decision_core(
    case: tuple[Constitution, dict[str, set[str]]], margin: float, medical: bool
) -> None:
    """One set of rules: PriorityGraph.resolve and consensus.decide pick the same winner."""
    consensus = pytest.importorskip("oversight.consensus")
    constitution, violations = case
    violations = {k: v for k, v in violations.items() if v}  # decide handles clean ones first
    if len(violations) < 2:
        return
    # a conditional rule that drops one edge, so the context's matrix differs from the base one
    rules = (
        (ConditionalRule(id="drop", when={"domain": ["medical"]}, remove_edges=edges),)
        if (edges := constitution.priorities[:1])
        else ()
    )
    graph = PriorityGraph(constitution.model_copy(update={"rules": rules}))
    context = {"domain": "medical"} if medical else {}
    result = graph.resolve(violations, context=context, margin=margin)

    ids, candidates = graph.principle_ids, list(violations)
    batch = consensus.FindingsBatch.empty(1, len(candidates), len(ids))
    batch.valid[:] = True
    batch.verdict[:] = consensus.VERDICT_SATISFIED
    batch.confidence[:] = 1.0
    for c, cid in enumerate(candidates):
        for pid in violations[cid]:
            batch.verdict[0, c, graph.index(pid)] = consensus.VERDICT_VIOLATED
            batch.severity[0, c, graph.index(pid)] = constitution.principle(pid).severity
    core = consensus.CompiledCore(
        principle_ids=ids,
        weights=graph.weights().astype(np.float32),
        severity_threshold=np.full(len(ids), np.inf, dtype=np.float32),
        dominance=graph.dominance()[None],
        weighted_margin=margin,
        disagreement=False,
        graph=graph,
    )
    batch.context[0] = core.context_index(context)
    decision = consensus.decide(batch, core)
    strategy = consensus.STRATEGY_NAMES[int(decision.strategy[0])]
    expected = {"priority": "priority", "weighted": "weighted", None: "human"}[result.strategy]
    assert strategy == expected
    if result.winner is not None:
        assert candidates[int(decision.chosen[0])] == result.winner
