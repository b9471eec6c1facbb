"""The compiled simulator gives the same result per seed as the plain numpy one.

``tests/_reference_engine.py`` keeps the numpy chunk loop (and ``_reference_core.py`` the numpy
decision core) that the compiled kernels replaced. For the same plan, seed and chunk, both must
produce exactly the same tally: every counter, trigger, strategy and day of the histogram.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from _reference_engine import simulate_chunk as reference_chunk

from oversight.hierarchy import load_hierarchy
from oversight.paths import resolve_config
from oversight.simulate import SimulationConfig
from oversight.simulate.engine import Tally, simulate_chunk
from oversight.simulate.plan import compile_plan


def _recursive(tmp_path: Path, **changes: Any) -> Path:
    data = yaml.safe_load(resolve_config("roles/recursive.yaml").read_text(encoding="utf-8"))
    data["constitution"] = "constitutions/default.yaml"
    data["escalation"] = "escalation/default.yaml"
    data.update(changes)
    path = tmp_path / "h.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _every_mode(tmp_path: Path) -> Path:
    """recursive.yaml plus an on-flag and a sampled assessor of the base, and a critic that
    both assesses the base and audits another critic (its reports share one row)."""
    data = yaml.safe_load(resolve_config("roles/recursive.yaml").read_text(encoding="utf-8"))
    data["agents"].insert(-1, {"name": "second-opinion", "role": "critic", "model": "judge",
                               "principles": ["harm", "helpfulness"]})  # fmt: skip
    data["agents"].insert(-1, {"name": "spot-check", "role": "critic", "model": "critic",
                               "principles": ["privacy", "honesty"]})  # fmt: skip
    data["supervision"][:0] = [
        {"supervisor": "second-opinion", "subject": "base", "mode": "on-flag"},
        {"supervisor": "spot-check", "subject": "base", "mode": "sample", "rate": 0.5},
        {"supervisor": "spot-check", "subject": "harm-critic", "mode": "on-flag"},
    ]
    return _recursive(tmp_path, agents=data["agents"], supervision=data["supervision"])


def _no_judge(tmp_path: Path) -> Path:
    data = yaml.safe_load(resolve_config("roles/recursive.yaml").read_text(encoding="utf-8"))
    agents = [a for a in data["agents"] if a["role"] != "judge"]
    edges = [e for e in data["supervision"] if "judge" not in (e["supervisor"], e["subject"])]
    edges.append({"supervisor": "safety-auditor", "subject": "safety", "mode": "on-flag"})
    return _recursive(tmp_path, agents=agents, supervision=edges)


CASES = {
    "recursive": (_recursive, {}),
    "every-mode": (_every_mode, {}),
    "no-judge": (_no_judge, {}),
    "three-rounds-audited": (_recursive, {"max_revision_rounds": 3, "audit_rate": 0.1}),
    "no-revision": (_recursive, {"max_revision_rounds": 0}),
    "level-1-only": (_recursive, {"depth": 1, "low_confidence": 0.5}),
    "biased-correlated": (
        _every_mode,
        {
            "agent_options": {"bias": 0.4, "correlation": 0.5, "model_correlation": 0.3},
            "sample_rate": 0.25,
        },
    ),
}


def _tally_fields(tally: Tally) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(Tally):
        value = getattr(tally, f.name)
        out[f.name] = value.tolist() if isinstance(value, np.ndarray) else value
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_engine_equals_the_reference_engine(case: str, tmp_path: Path) -> None:
    build, options = CASES[case]
    spec = load_hierarchy(build(tmp_path))
    config = SimulationConfig(episodes=4000, seed=3, **options)
    plan = compile_plan(spec, config)
    tallies = []
    for chunk in (reference_chunk, simulate_chunk):
        tally = Tally()
        for index, (n, first) in enumerate([(2500, 0), (1500, 2500)]):
            chunk(plan, config, np.random.default_rng([config.seed, index]), n, first, tally)
        tallies.append(_tally_fields(tally))
    want, got = tallies
    assert got == want
    # not vacuous: revisions, escalations and several strategies happened
    assert want["escalated"] > 0
    assert sum(1 for v in want["strategies"].values() if v) >= 2
    if config.max_revision_rounds != 0:
        assert want["revisions"] > 0


def test_audit_order_does_not_depend_on_set_order(tmp_path: Path) -> None:
    """Two auditors' subjects at the same level are audited in reporter order, so the order of
    the random draws (and a seed's result) is the same in every process."""
    spec = load_hierarchy(_every_mode(tmp_path))
    plan = compile_plan(spec, SimulationConfig())
    subjects = [plan.reporters[s.subject] for s in plan.audits]
    keys = [(r.level, plan.reporters.index(r)) for r in subjects]
    assert keys == sorted(keys)


def test_a_sweep_on_several_workers_gives_the_same_points(tmp_path: Path) -> None:
    """All chunks of all points share one pool; the points are the same as in one process."""
    from oversight.simulate import run_study

    path = _recursive(tmp_path)
    sweeps = [("accuracy", [0.8, 0.95]), ("correlation", [0.0, 0.6])]
    one = run_study(path, SimulationConfig(episodes=3000, chunk_size=1000), sweeps)
    two = run_study(path, SimulationConfig(episodes=3000, chunk_size=1000, workers=2), sweeps)
    assert len(one.points) == 4
    assert one.points == two.points
    assert one.points[0]["result"] != one.points[3]["result"]


def test_threads_give_the_serial_tallies_chunk_by_chunk(tmp_path: Path) -> None:
    """More chunks than the threads' window (2 x workers), two configurations in one pool: the
    tallies equal one thread's, and progress reports every chunk once."""
    from oversight.simulate.engine import run_plans

    spec = load_hierarchy(_every_mode(tmp_path))
    points = []
    for rate in (0.25, 0.75):
        config = SimulationConfig(episodes=5000, chunk_size=400, seed=5, sample_rate=rate)
        points.append((compile_plan(spec, config), config))
    seen: list[int] = []
    serial = run_plans(points, workers=1)
    threaded = run_plans(points, workers=3, progress=seen.append)
    assert [_tally_fields(t) for t in threaded] == [_tally_fields(t) for t in serial]
    assert sorted(seen) == [200] * 2 + [400] * 24
    assert serial[0].escalated != serial[1].escalated
