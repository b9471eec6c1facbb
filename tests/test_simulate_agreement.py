"""The live runtime on the ``simulated`` backend and the vectorised simulator agree.

Both run the same hierarchy file: the runtime through its agents, bus, journal and
:func:`oversight.consensus.decide` one episode at a time; the simulator through numpy arrays and
the same ``decide``. Their outcome rates must agree within sampling error.

Tolerance: for each rate, 4 standard errors of the difference of two independent binomial
proportions, ``4 * sqrt(p (1 - p) (1 / n_live + 1 / n_sim))`` with ``p`` the pooled rate. Under
agreement a single comparison exceeds 4 sigma with probability ~6e-5, so the whole test
(a handful of rates) fails by chance with probability < 1e-3; both sides are seeded, so the
test is deterministic anyway. The live side is small (300 episodes, a few seconds of CPU),
so 4 sigma is about 11 percentage points at p = 0.4: coarse, but a real drift is larger - when
the simulated backend once answered the judge's audit questions as A/B comparisons, the live
escalation rate went to 99.9% against 38% simulated. ``test_live_and_vectorised_agree_closely``
(slow) tightens the check with 2,000 live episodes (4 sigma ~ 4.4 points).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from oversight.hierarchy import load_hierarchy
from oversight.messages import Prompt, Turn
from oversight.simulate import SimulationConfig, run_study

MIX = (("benign", False, 0.55), ("safe_scary", False, 0.15), ("harmful", True, 0.2),
       ("jailbreak", True, 0.1))  # fmt: skip


def _hierarchy(path: Path) -> Path:
    """roles/recursive.yaml, plus an on-flag and a sampled assessor of the base, so that every
    supervision mode is exercised at level 1 too."""
    from oversight.paths import resolve_config

    data = yaml.safe_load(resolve_config("roles/recursive.yaml").read_text(encoding="utf-8"))
    data["agents"].insert(
        -1, {"name": "second-opinion", "role": "critic", "model": "judge",
             "principles": ["harm", "helpfulness"]},
    )  # fmt: skip
    data["agents"].insert(
        -1, {"name": "spot-check", "role": "critic", "model": "critic",
             "principles": ["privacy", "honesty"]},
    )  # fmt: skip
    data["supervision"][:0] = [
        {"supervisor": "second-opinion", "subject": "base", "mode": "on-flag"},
        {"supervisor": "spot-check", "subject": "base", "mode": "sample", "rate": 0.5},
    ]
    data["constitution"] = "constitutions/default.yaml"
    data["escalation"] = "escalation/default.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _prompts(n: int) -> list[Prompt]:
    prompts = []
    for category, harmful, share in MIX:
        for _ in range(round(n * share)):
            i = len(prompts)
            prompts.append(
                Prompt(
                    prompt_id=f"p{i}",
                    messages=(Turn(role="user", content=f"simulated request number {i}"),),
                    labels={"harm": "harmful" if harmful else "benign", "category": category},
                )
            )
    return prompts


def _live(hierarchy: Path, n: int, run_dir: Path) -> dict[str, tuple[int, int]]:
    from oversight.runtime import Runtime

    runtime = Runtime(
        load_hierarchy(hierarchy), run_name="agreement", run_dir=run_dir, concurrency=32
    )
    result = anyio.run(runtime.run, _prompts(n))
    out = result.outcomes
    assert all(o.status != "failed" for o in out), [o for o in out if o.status == "failed"][:1]
    harmful = [o for o in out if o.labels["harm"] == "harmful"]
    benign = [o for o in out if o.labels["harm"] == "benign"]
    return {
        "chosen_harmful_pass_through": (sum(not o.refused for o in harmful), len(harmful)),
        "chosen_false_refusal": (sum(bool(o.refused) for o in benign), len(benign)),
        "escalation": (sum(o.status == "escalated" for o in out), len(out)),
        "revision": (sum(o.rounds > 0 for o in out), len(out)),
        "disagreement": (sum("disagreement" in o.triggers for o in out), len(out)),
    }


def _simulated(hierarchy: Path, n: int) -> dict[str, tuple[int, int]]:
    study = run_study(hierarchy, SimulationConfig(episodes=n, seed=7))
    r: dict[str, Any] = study.points[0]["result"]
    out = {
        k: (r[k]["count"], r[k]["of"])
        for k in ("chosen_harmful_pass_through", "chosen_false_refusal", "escalation", "revision")
    }
    out["disagreement"] = (round(r["triggers"]["disagreement"] * n), n)
    return out


def _check(live: dict[str, tuple[int, int]], sim: dict[str, tuple[int, int]]) -> None:
    problems = []
    for key, (k1, n1) in live.items():
        k2, n2 = sim[key]
        p1, p2 = k1 / n1, k2 / n2
        pooled = (k1 + k2) / (n1 + n2)
        sigma = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / n1 + 1 / n2))
        if abs(p1 - p2) > 4 * sigma:
            problems.append(f"{key}: live {p1:.4f} (n={n1}) vs simulated {p2:.4f} (n={n2}), "
                            f"|diff| > 4 sigma = {4 * sigma:.4f}")  # fmt: skip
    assert not problems, "\n".join(problems)


def test_live_runtime_and_vectorised_simulator_agree(tmp_path: Path) -> None:
    hierarchy = _hierarchy(tmp_path / "h.yaml")
    live = _live(hierarchy, 300, tmp_path / "run")
    sim = _simulated(hierarchy, 50_000)
    # the comparison is not vacuous: every rate is well inside (0, 1) on both sides
    for key, (k, n) in {**live, **sim}.items():
        assert 0 < k < n, key
    _check(live, sim)


@pytest.mark.slow
def test_live_and_vectorised_agree_closely(tmp_path: Path) -> None:
    hierarchy = _hierarchy(tmp_path / "h.yaml")
    _check(_live(hierarchy, 2000, tmp_path / "run"), _simulated(hierarchy, 400_000))
