"""The priority graph: which principle prevails when agents' findings conflict, and why.

An edge ``a -> b`` means principle ``a`` prevails over ``b``. Conditional rules of the
constitution add or remove edges for one case's context; for a set ``S`` of applicable rules
the graph is ``(base edges - removals of S) + additions of S`` (an edge a rule adds is never
removed by another rule). Cycles are rejected at construction, including cycles that appear only
when several rules apply together.

:meth:`PriorityGraph.resolve` settles a conflict between candidate answers that violate different
principles, trying the first two strategies of DESIGN.md in order:

1. **priority ordering**: candidate *a* beats *b* when *b* violates something *a* does not, and
   every principle violated only by *a* is prevailed over by some principle violated only by *b*.
   The candidate that beats every other wins. Because the graph is acyclic, at most one does.
2. **weighted scoring**: cost = sum of weight x severity x confidence over the violated
   principles; the cheapest candidate wins when the runner-up costs at least ``margin`` more.

Otherwise the result is open (``strategy=None``): hierarchical review or people decide, in
:mod:`oversight.consensus` (whose vectorised ``decide`` implements the same rules over arrays
compiled from :meth:`PriorityGraph.dominance`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import networkx as nx
import numpy as np

from .consensus import (
    STRATEGY_NAMES,
    VERDICT_SATISFIED,
    VERDICT_VIOLATED,
    CompiledCore,
    FindingsBatch,
    decide,
)
from .errors import PriorityCycleError

if TYPE_CHECKING:
    from .constitution import ConditionalRule, Constitution

Context = Mapping[str, Any]
"""Facts about a case (``{"domain": "medical"}``) that conditional rules read."""

MAX_RULE_COMBINATIONS = 4096
"""Above this many jointly applicable rule combinations, the cycle check is conservative: it
rejects a cycle in the union of every rule's added edges."""


def _edges_for(
    constitution: Constitution, rules: Sequence[ConditionalRule]
) -> list[tuple[str, str]]:
    removed = {edge for rule in rules for edge in rule.remove_edges}
    edges = [edge for edge in constitution.priorities if edge not in removed]
    for rule in rules:
        edges.extend(edge for edge in rule.add_edges if edge not in edges)
    return edges


def _find_cycle(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> list[str] | None:
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    try:
        found = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return None
    return [str(u) for u, _v, *_ in found]


def _joint_combinations(rules: Sequence[ConditionalRule], limit: int) -> list[list[int]] | None:
    """Every non-empty set of rule indices whose conditions can hold at once (None: over limit)."""
    out: list[list[int]] = []

    def extend(start: int, chosen: list[int], allowed: dict[str, set[str]]) -> bool:
        for index in range(start, len(rules)):
            narrowed = dict(allowed)
            ok = True
            for key, values in rules[index].when.items():
                narrowed[key] = narrowed[key] & set(values) if key in narrowed else set(values)
                if not narrowed[key]:
                    ok = False
                    break
            if not ok:
                continue
            out.append([*chosen, index])
            if len(out) > limit or not extend(index + 1, [*chosen, index], narrowed):
                return False
        return True

    return out if extend(0, [], {}) else None


def check_acyclic(constitution: Constitution) -> None:
    """Raise PriorityCycleError if the edges have a cycle in any context the rules allow."""
    nodes = constitution.ids
    cycle = _find_cycle(nodes, constitution.priorities)
    if cycle is not None:
        raise PriorityCycleError(cycle, path=constitution.source, hint="in the priorities list")
    adding = [rule for rule in constitution.rules if rule.add_edges]
    if not adding:
        return
    union = _edges_for(constitution, ())
    union += [e for rule in adding for e in rule.add_edges if e not in union]
    union_cycle = _find_cycle(nodes, union)
    if union_cycle is None:
        return  # every context's graph is a subgraph of this one
    combos = _joint_combinations(adding, MAX_RULE_COMBINATIONS)
    if combos is None:
        raise PriorityCycleError(
            union_cycle,
            path=constitution.source,
            hint="when all conditional rules' edges are added; too many rule combinations to "
            "check one by one",
        )
    for combo in combos:
        rules = [adding[i] for i in combo]
        cycle = _find_cycle(nodes, _edges_for(constitution, rules))
        if cycle is not None:
            names = ", ".join(rule.id for rule in rules)
            raise PriorityCycleError(
                cycle,
                path=constitution.source,
                hint=f"when conditional rule(s) {names} apply; change their add_edges",
            )


@dataclass(frozen=True)
class ResolutionResult:
    """How :meth:`PriorityGraph.resolve` settled (or failed to settle) a conflict."""

    strategy: Literal["priority", "weighted"] | None
    """The strategy that decided, or None when the case is too close (review or people)."""
    winner: str | None
    """The winning candidate's id, or None when open."""
    path: tuple[str, ...] = ()
    """The priority-graph path (principle ids, winner's side first) that decided, or for weighted
    scoring the comparison (``c1=0.2``, ``c0=0.9``)."""
    conditional_rules: tuple[str, ...] = ()
    """Ids of the conditional rules that applied to the context."""
    scores: dict[str, float] = field(default_factory=dict)
    """Weighted cost per candidate (always computed)."""
    rationale: str = ""
    """A sentence a person can read."""


def _set_of(values: Collection[str]) -> frozenset[str]:
    return frozenset(values)


class PriorityGraph:
    """A constitution's priority edges as a networkx DAG, per context, with compiled arrays."""

    def __init__(self, constitution: Constitution) -> None:
        check_acyclic(constitution)
        self.constitution = constitution
        self.principle_ids: list[str] = constitution.ids
        """Principle ids in the index order of every array."""
        self._index = {pid: i for i, pid in enumerate(self.principle_ids)}
        self._graphs: dict[tuple[str, ...], nx.DiGraph] = {}
        self._dominance: dict[tuple[str, ...], np.ndarray] = {}

    def __repr__(self) -> str:
        return (
            f"PriorityGraph({self.constitution.name!r}, principles={len(self.principle_ids)}, "
            f"edges={len(self.constitution.priorities)}, rules={len(self.constitution.rules)})"
        )

    # -- contexts ------------------------------------------------------------------------

    def rules_for(self, context: Context | None) -> list[ConditionalRule]:
        """The conditional rules that apply to a context, in constitution order."""
        if not context:
            return []
        return [rule for rule in self.constitution.rules if rule.applies(context)]

    def context_key(self, context: Context | None) -> tuple[str, ...]:
        """Ids of the rules that apply: contexts with the same key share one graph."""
        return tuple(rule.id for rule in self.rules_for(context))

    def _rules_by_key(self, key: tuple[str, ...]) -> list[ConditionalRule]:
        by_id = {rule.id: rule for rule in self.constitution.rules}
        return [by_id[rid] for rid in key]

    def graph(self, context: Context | None = None) -> nx.DiGraph:
        """The (frozen) graph with the context's conditional edges applied."""
        key = self.context_key(context)
        cached = self._graphs.get(key)
        if cached is None:
            cached = nx.DiGraph()
            cached.add_nodes_from(self.principle_ids)
            cached.add_edges_from(_edges_for(self.constitution, self._rules_by_key(key)))
            cached = self._graphs[key] = nx.freeze(cached)
        return cached

    def dominance(self, context: Context | None = None) -> np.ndarray:
        """bool ``[P, P]``: ``[i, j]`` is True when principle i prevails over j (a path i -> j).

        Cached per rule combination (:meth:`context_key`); the array is read-only.
        """
        key = self.context_key(context)
        cached = self._dominance.get(key)
        if cached is None:
            n = len(self.principle_ids)
            reach = np.zeros((n, n), dtype=bool)
            for u, v in self.graph(context).edges:
                reach[self._index[u], self._index[v]] = True
            while True:  # transitive closure by repeated squaring: log2(P) steps
                grown = reach | ((reach.astype(np.int32) @ reach.astype(np.int32)) > 0)
                if (grown == reach).all():
                    break
                reach = grown
            reach.setflags(write=False)
            cached = self._dominance[key] = reach
        return cached

    # -- queries -------------------------------------------------------------------------

    def index(self, principle: str) -> int:
        """Array index of a principle (UnknownPrincipleError otherwise)."""
        try:
            return self._index[principle]
        except KeyError:
            self.constitution.principle(principle)  # raises with a suggestion
            raise

    def prevails(self, a: str, b: str, context: Context | None = None) -> bool:
        """Whether principle a prevails over b (a path a -> b) in this context."""
        return bool(self.dominance(context)[self.index(a), self.index(b)])

    def path(self, a: str, b: str, context: Context | None = None) -> list[str]:
        """The shortest edge path a -> ... -> b that makes a prevail, or [] when a does not."""
        self.index(a)  # unknown ids raise, with a suggestion
        self.index(b)
        if a == b or not self.prevails(a, b, context):
            return []
        return [str(n) for n in nx.shortest_path(self.graph(context), a, b)]

    def weights(self) -> np.ndarray:
        """float64 ``[P]``: principle weights."""
        return np.array([p.weight for p in self.constitution.principles], dtype=np.float64)

    def severities(self) -> np.ndarray:
        """float64 ``[P]``: principles' default severities."""
        return np.array([p.severity for p in self.constitution.principles], dtype=np.float64)

    # -- resolution ----------------------------------------------------------------------

    def decisive_path(
        self,
        winner: Collection[str],
        rival: Collection[str],
        context: Context | None = None,
    ) -> list[str]:
        """Why violating ``winner`` beats violating ``rival``: the first edge path (in principle
        order) from a principle only the rival violates to one only the winner violates, or []
        when there is none (the winner violates nothing the rival does not)."""
        mine, theirs = _set_of(winner) - _set_of(rival), _set_of(rival) - _set_of(winner)
        dom = self.dominance(context)
        for p in sorted(mine, key=self.index):
            for q in sorted(theirs, key=self.index):
                if dom[self.index(q), self.index(p)]:
                    return self.path(q, p, context)
        return []

    def beats(self, a: Collection[str], b: Collection[str], context: Context | None = None) -> bool:
        """Whether violating set a beats violating set b by priority ordering."""
        sa, sb = _set_of(a), _set_of(b)
        only_a, only_b = sa - sb, sb - sa
        if not only_b:
            return False
        dom = self.dominance(context)
        rows = [self.index(q) for q in only_b]
        return all(dom[rows, self.index(p)].any() for p in only_a)

    def resolve(
        self,
        violations: Mapping[str, Collection[str]],
        *,
        severity: Mapping[str, Mapping[str, float]] | None = None,
        confidence: Mapping[str, Mapping[str, float]] | None = None,
        context: Context | None = None,
        margin: float = 0.1,
    ) -> ResolutionResult:
        """Which candidate wins when candidates violate different principle sets.

        ``violations`` maps candidate id -> the principle ids it violates. ``severity`` and
        ``confidence`` map candidate id -> principle id -> value (defaults: the principle's
        severity, confidence 1). ``margin`` is the least cost gap for weighted scoring to decide.
        """
        sets = {cid: _set_of(v) for cid, v in violations.items()}
        for violated in sets.values():
            for pid in violated:
                self.index(pid)
        rules = self.context_key(context)
        defaults = {p.id: p.severity for p in self.constitution.principles}
        weight = {p.id: p.weight for p in self.constitution.principles}
        severity = severity or {}
        confidence = confidence or {}
        scores = {
            cid: float(
                sum(
                    weight[p]
                    * severity.get(cid, {}).get(p, defaults[p])
                    * confidence.get(cid, {}).get(p, 1.0)
                    for p in sorted(violated, key=self.index)
                )
            )
            for cid, violated in sets.items()
        }
        if not sets:
            return ResolutionResult(None, None, (), rules, scores, "no candidates to choose from")
        ids = list(sets)
        if len(ids) == 1:
            only = ids[0]
            return ResolutionResult(
                "priority", only, (), rules, scores, f"{only} is the only candidate"
            )
        # The rules themselves live in one place: the decision core.
        n_p = len(self.principle_ids)
        batch = FindingsBatch.empty(1, len(ids), n_p)
        batch.valid[:] = True
        batch.verdict[:] = VERDICT_SATISFIED
        batch.confidence[:] = 1.0
        for c, cid in enumerate(ids):
            for pid in sets[cid]:
                k = self.index(pid)
                batch.verdict[0, c, k] = VERDICT_VIOLATED
                batch.severity[0, c, k] = severity.get(cid, {}).get(pid, defaults[pid])
                batch.confidence[0, c, k] = confidence.get(cid, {}).get(pid, 1.0)
        core = CompiledCore(
            principle_ids=list(self.principle_ids),
            weights=np.asarray(self.weights(), dtype=np.float32),
            severity_threshold=np.full(n_p, np.inf, dtype=np.float32),
            dominance=np.asarray(self.dominance(context), dtype=bool)[None],
            disagreement=False,
            weighted_margin=margin,
            review_confidence=np.inf,
        )
        decision = decide(batch, core)
        strategy = STRATEGY_NAMES[int(decision.strategy[0])]
        chosen = ids[int(decision.chosen[0])]
        decided = strategy in ("priority", "weighted")
        path, why = self.explain(
            strategy if decided else None, chosen, sets, scores, context, margin=margin
        )
        return ResolutionResult(
            strategy if decided else None,  # type: ignore[arg-type]
            chosen if decided else None,
            path,
            rules,
            scores,
            why,
        )

    def explain(
        self,
        strategy: str | None,
        chosen: str,
        violations: Mapping[str, Collection[str]],
        scores: Mapping[str, float],
        context: Context | None = None,
        *,
        margin: float = 0.1,
    ) -> tuple[tuple[str, ...], str]:
        """Why ``strategy`` settled on ``chosen``: ``(path, rationale)`` for a
        :class:`~oversight.messages.Resolution`.

        ``violations`` maps candidate id -> the principles it violates and ``scores`` its
        weighted cost. The path is the priority-graph path that decided (``priority``), or the
        cost comparison of the chosen candidate and its cheapest rival (``weighted``, and when
        too close to call: ``strategy`` ``review``, ``human`` or None). The one explainer of
        both :meth:`resolve` and the runtime's resolutions.
        """
        sets = {cid: _set_of(v) for cid, v in violations.items()}
        ids = list(sets)
        if strategy == "none":
            return (), f"{chosen} violates no principle"
        if strategy == "priority":
            path: list[str] = []
            for other in ids:
                if other != chosen and not path:
                    path = self.decisive_path(sets[chosen], sets[other], context)
            why = (
                f"{chosen} wins by priority: {' > '.join(path)} (the principle its rival "
                f"violates prevails over the one {chosen} violates)"
                if path
                else f"{chosen} wins by priority: it violates only what its rivals also violate"
            )
            return tuple(path), why
        rivals = [c for c in ids if sets[c] != sets[chosen]]
        runner = min(rivals, key=lambda c: (scores[c], ids.index(c))) if rivals else chosen
        gap = scores[runner] - scores[chosen]
        comparison = (f"{chosen}={scores[chosen]:.4g}", f"{runner}={scores[runner]:.4g}")
        if strategy == "weighted":
            why = (
                f"{chosen} wins by weighted scoring: cost {scores[chosen]:.3g} vs "
                f"{scores[runner]:.3g} for {runner} (margin {margin:g})"
            )
            return comparison, why
        too_close = (
            f"too close to call: no priority ordering decides and the weighted costs of {chosen} "
            f"and {runner} differ by {gap:.3g} < margin {margin:g}"
        )
        if strategy == "review":
            return comparison, f"{too_close}; the supervising judge's ranking chose {chosen}"
        if strategy == "human":
            return comparison, f"{too_close}; escalated to people (agents proposed {chosen})"
        return comparison, too_close


__all__ = [
    "MAX_RULE_COMBINATIONS",
    "Context",
    "PriorityGraph",
    "ResolutionResult",
    "check_acyclic",
]
