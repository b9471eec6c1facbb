"""The compiled decision core returns exactly what the plain numpy core returned.

``tests/_reference_core.py`` keeps the vectorised numpy ``combine_reports`` and ``decide`` that
the compiled kernels replaced. On random batches over many shapes and policies (ties, NaN judge
scores, invalid candidates, costs on the weighted margin, more than 64 principles) every output
array must be equal bit for bit and of the same dtype, so that a simulation gives the same
result per seed with either core.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _reference_core import reference_combine_reports
from _reference_core import reference_decide as _reference_decide

from oversight import consensus
from oversight.consensus import CompiledCore, Decisions, FindingsBatch, combine_reports, decide


def reference_decide(batch: FindingsBatch, core: CompiledCore) -> Decisions:
    """The reference; batches with no valid candidate make it subtract inf from inf."""
    with np.errstate(invalid="ignore"):
        return _reference_decide(batch, core)


QUANTA = np.array([0.0, 0.1, 0.2, 0.25, 0.3, 0.5, 0.6, 0.7, 0.75, 0.9, 1.0], dtype=np.float32)


def _values(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Floats in [0, 1], half of them from a few round values (ties, costs on the margin)."""
    smooth = rng.random(shape, dtype=np.float32)
    rounded = QUANTA[rng.integers(0, len(QUANTA), shape)]
    return np.where(rng.random(shape) < 0.5, smooth, rounded).astype(np.float32)


def _dominance(rng: np.random.Generator, contexts: int, principles: int) -> np.ndarray:
    """Random acyclic "prevails over" relations: edges along a random order, per context."""
    out = np.zeros((contexts, principles, principles), dtype=bool)
    for k in range(contexts):
        order = rng.permutation(principles)
        upper = np.triu(rng.random((principles, principles)) < 0.4, 1)
        out[k][np.ix_(order, order)] = upper
    return out


def _core(rng: np.random.Generator, principles: int, contexts: int) -> CompiledCore:
    threshold = np.where(
        rng.random(principles) < 0.5, np.inf, QUANTA[rng.integers(0, len(QUANTA), principles)]
    ).astype(np.float32)
    return CompiledCore(
        principle_ids=[f"p{i}" for i in range(principles)],
        weights=rng.choice(np.array([0.5, 1.0, 1.5, 3.0], dtype=np.float32), principles),
        severity_threshold=threshold,
        dominance=_dominance(rng, contexts, principles),
        disagreement=bool(rng.random() < 0.7),
        low_confidence=float(rng.choice([0.0, 0.3, 0.6, 0.7])),
        unresolved=bool(rng.random() < 0.7),
        audit_rate=float(rng.choice([0.0, 0.1, 0.5])),
        weighted_margin=float(rng.choice([0.0, 0.1, 0.2, 0.5])),
        review_confidence=float(rng.choice([0.0, 0.3, 0.6])),
    )


def _batch(
    rng: np.random.Generator, episodes: int, candidates: int, principles: int, contexts: int
) -> FindingsBatch:
    shape = (episodes, candidates, principles)
    batch = FindingsBatch.empty(episodes, candidates, principles)
    # few distinct violation patterns, so that candidates often share a set (ties)
    patterns = rng.choice(
        np.array([-1, 0, 1, 2], dtype=np.int8), (4, principles), p=[0.2, 0.4, 0.3, 0.1]
    )
    batch.verdict = np.where(
        rng.random(shape) < 0.5,
        patterns[rng.integers(0, 4, (episodes, candidates))],
        rng.choice(np.array([-1, 0, 1, 2], dtype=np.int8), shape, p=[0.2, 0.45, 0.3, 0.05]),
    ).astype(np.int8)
    batch.severity = _values(rng, shape)
    batch.confidence = _values(rng, shape)
    batch.disagreement = rng.random(shape) < 0.1
    batch.valid = rng.random((episodes, candidates)) < 0.85
    batch.valid[rng.random(episodes) < 0.7, 0] = True
    scores = _values(rng, (episodes, candidates))
    scores[rng.random((episodes, candidates)) < 0.2] = np.nan
    scores[rng.random((episodes, candidates)) < 0.01] = np.inf
    scores[rng.random((episodes, candidates)) < 0.01] = -np.inf
    batch.judge_score = scores
    batch.judge_confidence = _values(rng, (episodes,))
    batch.context = rng.integers(0, contexts, episodes).astype(np.int32)
    batch.audit_draw = _values(rng, (episodes,))
    batch.rounds_left = rng.integers(-1, 2, episodes).astype(np.int32)
    return batch


def _assert_same(got: Decisions, want: Decisions) -> None:
    for f in dataclasses.fields(Decisions):
        a, b = getattr(got, f.name), getattr(want, f.name)
        assert a.dtype == b.dtype, f.name
        assert a.shape == b.shape, f.name
        diff = np.flatnonzero(
            ~((a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else (a == b))
        )
        assert diff.size == 0, (
            f"{f.name} differs at {diff[:10]}: {a.ravel()[diff[:5]]} vs {b.ravel()[diff[:5]]}"
        )


SHAPES = [(1, 1), (1, 4), (2, 3), (3, 8), (4, 8), (5, 9), (4, 13), (3, 70), (2, 150)]


@pytest.mark.parametrize(("candidates", "principles"), SHAPES)
def test_decide_equals_the_reference_core(candidates: int, principles: int) -> None:
    rng = np.random.default_rng([candidates, principles])
    n_checked = 0
    for _ in range(6):
        core = _core(rng, principles, contexts=3)
        batch = _batch(rng, 3000, candidates, principles, contexts=3)
        want = reference_decide(batch, core)
        _assert_same(decide(batch, core), want)
        n_checked += len(want.action)
    assert n_checked == 18_000


def test_the_random_batches_reach_every_rule() -> None:
    """The comparison is not vacuous: every action, strategy and trigger occurs."""
    rng = np.random.default_rng(5)
    seen_actions, seen_strategies, trigger_bits = set(), set(), 0
    for _ in range(6):
        core = _core(rng, 8, contexts=3)
        d = reference_decide(_batch(rng, 3000, 4, 8, contexts=3), core)
        seen_actions |= set(d.action.tolist())
        seen_strategies |= set(d.strategy.tolist())
        trigger_bits |= int(np.bitwise_or.reduce(d.triggers))
    assert seen_actions == {0, 1, 2}
    assert seen_strategies == {0, 1, 2, 3, 4}
    assert trigger_bits == 0b11111


def test_decide_equals_the_reference_with_a_single_episode() -> None:
    """The live runtime's case: ``E = 1``, one call per decision."""
    rng = np.random.default_rng(11)
    core = _core(rng, 8, contexts=1)
    for _ in range(300):
        batch = _batch(rng, 1, 3, 8, contexts=1)
        _assert_same(decide(batch, core), reference_decide(batch, core))


def test_plain_python_kernels_equal_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without numba the same kernel functions run as Python, with the same results."""
    for name in ("_decide_kernel", "_combine_kernel"):
        kernel = getattr(consensus, name)
        monkeypatch.setattr(consensus, name, getattr(kernel, "py_func", kernel))
    rng = np.random.default_rng(3)
    core = _core(rng, 9, contexts=2)
    batch = _batch(rng, 200, 4, 9, contexts=2)
    _assert_same(decide(batch, core), reference_decide(batch, core))
    args = _reports(rng, 50, 3, 2, 9)
    for got, want in zip(combine_reports(*args), reference_combine_reports(*args), strict=True):
        assert got.dtype == want.dtype
        assert np.array_equal(got, want)


def _reports(
    rng: np.random.Generator, episodes: int, reporters: int, candidates: int, principles: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    shape = (episodes, reporters, candidates, principles)
    verdict = rng.choice(np.array([-1, 0, 1, 2], dtype=np.int8), shape, p=[0.4, 0.3, 0.25, 0.05])
    level = rng.integers(0, 3, reporters).astype(np.int32)
    return verdict, _values(rng, shape), _values(rng, shape), level


@pytest.mark.parametrize("reporters", [1, 2, 3, 5, 9])
@pytest.mark.parametrize(("candidates", "principles"), [(1, 8), (3, 4), (4, 13)])
def test_combine_reports_equals_the_reference(
    reporters: int, candidates: int, principles: int
) -> None:
    rng = np.random.default_rng([reporters, candidates, principles])
    for _ in range(3):
        args = _reports(rng, 2000, reporters, candidates, principles)
        want = reference_combine_reports(*args)
        got = combine_reports(*args)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype
            assert g.shape == w.shape
            assert np.array_equal(g, w)
        # not vacuous: both verdicts occur, and disagreements wherever two agents report
        assert (want[0] == 1).any() and (want[0] == 0).any()
        assert want[3].any() == (reporters > 1)


def test_deciding_rows_equals_deciding_the_sliced_batch() -> None:
    """``decide(batch, core, rows=..., candidates=...)`` (the simulator's open episodes)."""
    rng = np.random.default_rng(17)
    core = _core(rng, 8, contexts=2)
    batch = _batch(rng, 2000, 4, 8, contexts=2)
    rows = np.sort(rng.choice(2000, 700, replace=False))
    sliced = FindingsBatch(
        **{
            f.name: getattr(batch, f.name)[rows][:, :3] if getattr(batch, f.name).ndim > 1
            else getattr(batch, f.name)[rows]
            for f in dataclasses.fields(FindingsBatch)
        }
    )  # fmt: skip
    _assert_same(decide(batch, core, rows=rows, candidates=3), reference_decide(sliced, core))
