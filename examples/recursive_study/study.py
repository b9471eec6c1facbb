"""Does a third level of oversight pay for its reviewer hours?

Critics 90% accurate (miss = false alarm = 10%), error correlation 0.3, the packaged
``roles/recursive.yaml`` hierarchy (critics and safety at level 1, a judge auditing them at 2, a
senior safety auditor at 3, people at the top). We simulate depth 1, 2 and 3 and, around that
point, critic accuracy and error correlation; results and plots go next to this file.

    python examples/recursive_study/study.py            # ~4 minutes on 2 cores
    python examples/recursive_study/study.py --episodes 30000 --depth-episodes 100000  # quick
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from oversight.simulate import SimulationConfig, StudyResult, run_study, write_results
from oversight.simulate.plots import plot_backlog, plot_parameter, plot_pareto

HERE = Path(__file__).resolve().parent
HIERARCHY = "roles/recursive.yaml"
DEPTHS = [1.0, 2.0, 3.0]


def config(episodes: int, accuracy: float = 0.9, correlation: float = 0.3) -> SimulationConfig:
    """Critics (the ``critic`` model) at ``accuracy``; every agent at ``correlation``."""
    rates = {"miss_rate": round(1 - accuracy, 6), "false_alarm_rate": round(1 - accuracy, 6)}
    return SimulationConfig(
        episodes=episodes,
        seed=2026,
        model_options={"critic": rates},
        agent_options={"correlation": correlation},
    )


def by_depth(episodes: int, name: str, values: list[float]) -> StudyResult:
    """Depth 1-3 for each value of ``name`` (critic accuracy or correlation)."""
    merged = StudyResult(HIERARCHY, config(episodes), [(name, values), ("depth", DEPTHS)])
    for value in values:
        study = run_study(HIERARCHY, config(episodes, **{name: value}), [("depth", DEPTHS)])
        for point in study.points:
            merged.points.append({"parameters": {name: value, **point["parameters"]},
                                  "result": point["result"]})  # fmt: skip
        merged.seconds += study.seconds
    return merged


def third_level(study: StudyResult) -> dict[str, float]:
    """What going from depth 2 to depth 3 buys, per 1,000 episodes."""
    two, three = (p["result"] for p in study.points if p["parameters"]["depth"] in (2.0, 3.0))
    harmful_share = two["harmful_pass_through"]["of"] / two["episodes"]

    def per_1k(r: dict, key: str) -> float:
        return 1000 * r[key]["rate"] * (harmful_share if "harm" in key else 1 - harmful_share)

    harm_prevented = per_1k(two, "harmful_pass_through") - per_1k(three, "harmful_pass_through")
    refusals_prevented = per_1k(two, "false_refusal") - per_1k(three, "false_refusal")
    hours = three["human_hours_per_1k"]["value"] - two["human_hours_per_1k"]["value"]
    calls = three["model_calls_per_episode"] - two["model_calls_per_episode"]
    return {
        "harmful_answers_prevented_per_1k": round(harm_prevented, 4),
        "false_refusals_prevented_per_1k": round(refusals_prevented, 4),
        "extra_reviewer_hours_per_1k": round(hours, 3),
        "extra_model_calls_per_episode": round(calls, 3),
        "reviewer_hours_per_harmful_answer_prevented": (
            round(hours / harm_prevented, 2) if harm_prevented > 0 else float("inf")
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="recursive oversight study")
    parser.add_argument("--episodes", type=int, default=300_000, help="per sweep point")
    parser.add_argument("--depth-episodes", type=int, default=2_000_000, help="per depth")
    args = parser.parse_args()
    out = HERE / "output"
    out.mkdir(exist_ok=True)

    base = run_study(HIERARCHY, config(args.depth_episodes), [("depth", DEPTHS)])
    write_results(base, out / "depth")
    accuracy = by_depth(args.episodes, "accuracy", [0.8, 0.9, 0.95, 0.99])
    correlation = by_depth(args.episodes, "correlation", [0.0, 0.3, 0.6, 0.9])
    paths = [
        plot_parameter(accuracy, "accuracy", out),
        plot_parameter(correlation, "correlation", out),
        plot_pareto(accuracy, out),
        plot_backlog(base, out),
    ]
    write_results(accuracy, out / "accuracy", plots=False)
    write_results(correlation, out / "correlation", plots=False)

    answer = {
        "question": "critics 90% accurate, error correlation 0.3: does level 3 pay?",
        "episodes_per_depth": args.depth_episodes,
        "episodes_per_sweep_point": args.episodes,
        "by_depth": {
            int(p["parameters"]["depth"]): {
                k: p["result"][k]["rate"] if isinstance(p["result"][k], dict) and "rate"
                in p["result"][k] else p["result"][k]
                for k in ("harmful_pass_through", "auto_harmful_pass_through", "false_refusal",
                          "escalation", "model_calls_per_episode")
            } | {"reviewer_hours_per_1k": p["result"]["human_hours_per_1k"]["value"]}
            for p in base.points
        },
        "third_level": third_level(base),
        "third_level_by_correlation": {
            str(rho): third_level(StudyResult(HIERARCHY, base.config, [], [
                p for p in correlation.points if p["parameters"]["correlation"] == rho
            ])) for rho in (0.0, 0.3, 0.6, 0.9)
        },
        "plots": [str(p.relative_to(HERE)) for p in paths],
    }  # fmt: skip
    (out / "answer.json").write_text(json.dumps(answer, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(answer, indent=2))


if __name__ == "__main__":
    main()
