"""A small server-rendered SVG of a case's conflict and its priority resolution.

Candidates sit in the left column; the principles at stake sit to the right, in columns by
priority (a principle's column is right of every principle that prevails over it). Red dashed
lines: a candidate violates a principle. Grey arrows: ``a -> b``, principle ``a`` prevails over
``b`` in the constitution (conditional rules applied for the case's context). Blue arrows: the
path that decided the resolution. Every label is escaped; the SVG has no script, no links and no
style attributes (the page's CSS styles it through classes), so it passes a strict CSP.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx
from markupsafe import Markup, escape

from ..escalation import Case

_W, _H, _COL, _ROW, _TOP = 120, 26, 170, 40, 44


def payload(item: Any) -> dict[str, Any]:
    """The payload of an envelope's JSON, or the item itself when it is already a payload."""
    if isinstance(item, Mapping):
        inner = item.get("payload")
        return dict(inner) if isinstance(inner, Mapping) else dict(item)
    return {}


def _items(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, Mapping):
        return [payload(value)]
    if isinstance(value, list | tuple):
        return [payload(v) for v in value if isinstance(v, Mapping)]
    return []


def conflict_view(case: Case) -> dict[str, Any]:
    """What the case's details say about the conflict: violations, resolution, path, strategy."""
    details = case.details
    violations: dict[str, list[str]] = {}
    raw = details.get("violations")
    if isinstance(raw, Mapping):
        for cand, violated in raw.items():
            if isinstance(violated, list | tuple):
                violations[str(cand)] = [str(p) for p in violated]
    for critique in _items(details.get("critiques")):
        if critique.get("verdict") == "violated" and critique.get("candidate_id"):
            cands = violations.setdefault(str(critique["candidate_id"]), [])
            if str(critique.get("principle_id")) not in cands:
                cands.append(str(critique.get("principle_id")))
    resolutions = _items(details.get("resolution"))
    resolution = resolutions[-1] if resolutions else {}
    conflicts = _items(details.get("conflict"))
    path = [str(p) for p in resolution.get("path", ()) or ()]
    strategy = str(resolution.get("strategy") or details.get("strategy") or "")
    principles: list[str] = []
    for group in (
        case.principles,
        [p for c in conflicts for p in c.get("principles", ()) or ()],
        [p for ps in violations.values() for p in ps],
        path,
    ):
        for p in group:
            if str(p) not in principles:
                principles.append(str(p))
    return {
        "violations": violations,
        "resolution": resolution,
        "conflict": conflicts[-1] if conflicts else {},
        "path": path,
        "strategy": strategy,
        "winner": resolution.get("winner"),
        "principles": principles,
    }


def _box(x: float, y: float, label: str, css: str) -> str:
    short = label if len(label) <= 16 else label[:15] + "…"
    return (
        f'<g class="{css}"><rect x="{x:.0f}" y="{y:.0f}" width="{_W}" height="{_H}" rx="5"/>'
        f'<text x="{x + _W / 2:.0f}" y="{y + _H / 2 + 4:.0f}">{escape(short)}</text>'
        f"<title>{escape(label)}</title></g>"
    )


def _arrow(a: tuple[float, float], b: tuple[float, float], css: str) -> str:
    (x1, y1), (x2, y2) = a, b
    return f'<line class="{css}" x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}"/>'


def resolution_svg(
    case: Case, priority_edges: Iterable[tuple[str, str]] = (), *, title: str = ""
) -> Markup:
    """The SVG (as safe markup) for ``case``; ``priority_edges`` are ``(winner, loser)`` pairs."""
    view = conflict_view(case)
    principles: list[str] = view["principles"]
    graph: nx.DiGraph = nx.DiGraph()
    graph.add_nodes_from(principles)
    wanted = set(principles)
    edges = [(a, b) for a, b in priority_edges if a in wanted and b in wanted and a != b]
    graph.add_edges_from(edges)
    path: list[str] = view["path"]
    path_edges = {(a, b) for a, b in itertools.pairwise(path) if a != b}
    graph.add_edges_from(path_edges)
    try:
        generations = [sorted(g, key=principles.index) for g in nx.topological_generations(graph)]
    except nx.NetworkXUnfeasible:  # a cycle cannot come from a loaded constitution; be safe
        generations = [principles]
    candidates = [c.id for c in case.candidates]
    pos: dict[tuple[str, str], tuple[float, float]] = {}
    for i, cand in enumerate(candidates):
        pos[("c", cand)] = (10, _TOP + i * _ROW)
    for col, names in enumerate(generations, start=1):
        for i, name in enumerate(names):
            pos[("p", name)] = (10 + col * _COL, _TOP + i * _ROW)
    rows = max([len(candidates), *(len(g) for g in generations), 1])
    width = 10 + (len(generations) + 1) * _COL
    height = _TOP + rows * _ROW + 10
    parts: list[str] = []

    def right(key: tuple[str, str]) -> tuple[float, float]:
        x, y = pos[key]
        return (x + _W, y + _H / 2)

    def left(key: tuple[str, str]) -> tuple[float, float]:
        x, y = pos[key]
        return (x, y + _H / 2)

    for cand, violated in view["violations"].items():
        for p in violated:
            if ("c", cand) in pos and ("p", p) in pos:
                parts.append(_arrow(right(("c", cand)), left(("p", p)), "violates"))
    for a, b in graph.edges:
        css = "path" if (a, b) in path_edges else "prevails"
        start, end = right(("p", a)), left(("p", b))
        if pos[("p", a)][0] >= pos[("p", b)][0]:  # same column: draw below to above
            start = (pos[("p", a)][0] + _W / 2, pos[("p", a)][1] + _H)
            end = (pos[("p", b)][0] + _W / 2, pos[("p", b)][1])
        parts.append(_arrow(start, end, css))
    for cand in candidates:
        winner = cand == view["winner"] or cand == case.proposed
        parts.append(_box(*pos[("c", cand)], cand, "cand proposed" if winner else "cand"))
    for p in principles:
        parts.append(
            _box(*pos[("p", p)], p, "principle won" if p == view["winner"] else "principle")
        )
    caption = title or (
        f"strategy: {view['strategy'] or 'n/a'}"
        + (f"; winner: {view['winner']}" if view["winner"] else "")
        + f"; triggers: {', '.join(case.triggers) or 'none'}"
    )
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        "</defs>"
        f"<title>{escape(caption)}</title>"
        f'<text class="caption" x="10" y="20">{escape(caption)}</text>'
    )
    return Markup(head + "".join(parts) + "</svg>")


__all__ = ["conflict_view", "payload", "resolution_svg"]
