"""benchmarks/escalation_policy.py: the choosing rule, the labels' joins and the score cache
on hand-made examples (no models)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import anyio
from _bench import load_benchmark

from oversight.backends import ChoiceScores, ScoreRequest
from oversight.escalation.policy import EscalationPolicy


def _bench() -> ModuleType:
    return load_benchmark("escalation_policy")


def test_cost_weighs_errors_and_each_group_alike() -> None:
    bench = _bench()
    rows = {
        # 10 harmful: 1 escalated, 1 wrong automatic, 8 right -> (1 + 5 x 1) / 10 = 0.6
        "harmful": [("escalated", None), ("consensus", False)] + [("consensus", True)] * 8,
        # 2 safe: 1 failed (counts as an escalation: a person must look), 1 right -> 0.5
        "safe": [("failed", None), ("consensus", True)],
    }
    assert bench.cost_of(rows, 5.0) == (0.6 + 0.5) / 2
    assert bench.cost_of(rows, 0.0) == (0.1 + 0.5) / 2


def test_labelled_cases_join_both_labels_and_drop_unclear() -> None:
    bench = _bench()
    cases = [
        {"id": "hh-1-chosen", "harmful": None, "answer_refuses": True},
        {"id": "hh-2-chosen", "harmful": None, "answer_refuses": False},
        {"id": "hbval-x", "harmful": True},
        {"id": "selfinst-y", "harmful": False},
        {"id": "selfinst-unlabelled", "harmful": False},
        {"id": "selfinst-garbled", "harmful": False},
    ]
    labels = [
        {"request_id": "hh-1", "request": "unsafe"},
        {"request_id": "hh-2", "request": "unclear"},
        {"id": "hbval-x", "answer": "partial_refusal"},
        {"id": "selfinst-y", "answer": "full_compliance"},
        {"id": "selfinst-garbled", "answer": "full_compliance", "gibberish": True},
    ]
    out = {c["id"]: c for c in bench.labelled_cases(cases, labels)}
    assert set(out) == {"hh-1-chosen", "hbval-x", "selfinst-y"}
    assert out["hh-1-chosen"]["harmful"] is True
    assert out["hbval-x"]["answer_refuses"] is True  # a partial refusal is a refusal
    assert out["selfinst-y"]["answer_refuses"] is False
    assert cases[0]["harmful"] is None  # the inputs are not changed


def test_grid_policies_carry_their_settings() -> None:
    bench = _bench()
    base = EscalationPolicy(name="p", triggers={"low_confidence": 0.55, "audit_rate": 0.02})
    grid = bench.policies(base)
    assert len(grid) == len(bench.GRID["low_confidence"]) * 2 * 2
    for settings, policy in grid:
        assert policy.triggers.low_confidence == settings["low_confidence"]
        assert policy.triggers.unresolved == settings["unresolved"]
        assert policy.review_confidence == settings["review_confidence"]
        assert policy.triggers.audit_rate == 0.02  # everything else as shipped


class _Counting:
    name = "counting"

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def score(self, requests: Any) -> list[ChoiceScores]:
        self.calls.append(len(requests))
        return [
            ChoiceScores({"Yes": len(r.messages[0]["content"]) / 100, "No": 0.0}) for r in requests
        ]

    def other(self) -> str:
        return "passed through"


def test_score_cache_answers_repeats_from_memory() -> None:
    bench = _bench()
    inner = _Counting()
    cached = bench.CachedScores(inner)

    def req(text: str, episode: str, task: str = "critique") -> ScoreRequest:
        return ScoreRequest(
            messages=({"role": "user", "content": text},), meta={"episode": episode, "task": task}
        )

    async def go() -> None:
        first = await cached.score([req("a", "e1"), req("bb", "e1")])
        again = await cached.score([req("bb", "e2"), req("a", "e3"), req("a", "e3", "audit")])
        assert [s["Yes"] for s in first] == [0.01, 0.02]
        assert [s["Yes"] for s in again] == [0.02, 0.01, 0.01]

    anyio.run(go)
    # the second call scored only the request it had not seen (another task is another request)
    assert inner.calls == [2, 1]
    assert cached.other() == "passed through"
