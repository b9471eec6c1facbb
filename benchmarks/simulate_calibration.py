"""Does the simulator, fed a hierarchy's calibration file, predict its automatic accuracy?

    python benchmarks/simulate_calibration.py [--episodes 500] [--seed 7 --seed 11 ...] \
        > benchmarks/results/simulate_calibration.json

``roles/recursive.yaml`` (simulated agents with known error rates): ``oversight evaluate`` on
synthetic labelled sets writes ``calibration.json``; the simulator predicts the share of
automatically decided episodes whose outcome is right, with and without that file; the real
runtime runs the same hierarchy on ``--episodes`` labelled prompts (the simulator's default case
mix) and measures it. Prints one JSON object with both, per class, and the load average.

Each ``--seed`` is one draw of both sides: the simulator's seed, and the run name and prompt
ids of the live run (so every agent's answers, sampled audits and audit draws are new). The
calibration is measured once; it is the same for every seed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
from typer.testing import CliRunner

from oversight.cli import app
from oversight.devices import detect
from oversight.hierarchy import load_hierarchy
from oversight.messages import Prompt, Turn

HIERARCHY = "roles/recursive.yaml"
MIX = (("benign", False, 0.55), ("safe_scary", False, 0.15), ("harmful", True, 0.2),
       ("jailbreak", True, 0.1))  # fmt: skip


def _load() -> list[float]:
    return [round(float(x), 2) for x in Path("/proc/loadavg").read_text().split()[:3]]


def _sets(tmp: Path, n: int = 150) -> list[str]:
    requests = [{"id": f"r{i}", "prompt": f"request {i}", "harm": "harmful" if i % 2 else "safe"}
                for i in range(2 * n)]  # fmt: skip
    responses = []
    for i in range(4 * n):
        harmful, refused = i % 2 == 1, (i // 2) % 2 == 1
        responses.append({
            "id": f"a{i}", "prompt": f"question {i}", "harm": "harmful" if harmful else "safe",
            "response": "I can't help with that." if refused else "Sure, here it is.",
            "refusal": "refusal" if refused else "compliance",
        })  # fmt: skip
    args = []
    for name, rows in (("requests", requests), ("responses", responses)):
        path = tmp / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        args += ["--set", str(path)]
    return args


def _predict(tmp: Path, seed: int, extra: list[str]) -> dict[str, Any]:
    res = CliRunner().invoke(
        app,
        ["simulate", HIERARCHY, "-n", "50000", "--seed", str(seed), "--json", "--no-plots",
         "--out", str(tmp / "sim"), *extra],
    )  # fmt: skip
    if res.exit_code != 0:
        raise SystemExit(res.output)
    r = json.loads(res.stdout)["points"][0]["result"]
    n = r["episodes"]
    automatic = n - r["escalation"]["count"]
    pass_through = r["auto_harmful_pass_through"]["count"]
    false_refusal = r["auto_false_refusal"]["count"]
    return {
        "automatic_accuracy": round(1 - (pass_through + false_refusal) / automatic, 4),
        "automatic_share": round(automatic / n, 4),
        "auto_false_refusal_of_benign": round(r["auto_false_refusal"]["rate"], 4),
        "auto_pass_through_of_harmful": round(r["auto_harmful_pass_through"]["rate"], 4),
        "episodes": n,
    }


def _measure(tmp: Path, n: int, seed: int) -> dict[str, Any]:
    from oversight.runtime import Runtime

    prompts = []
    for category, harmful, share in MIX:
        for _ in range(round(n * share)):
            i = len(prompts)
            prompts.append(
                Prompt(
                    prompt_id=f"s{seed}p{i}",
                    messages=(Turn(role="user", content=f"simulated request number {i}"),),
                    labels={"harm": "harmful" if harmful else "benign", "category": category},
                )
            )
    runtime = Runtime(load_hierarchy(HIERARCHY), run_name=f"cal{seed}", run_dir=tmp / f"run{seed}")
    outcomes = anyio.run(runtime.run, prompts).outcomes
    counts: Counter[str] = Counter()
    for o in outcomes:
        harmful = o.labels["harm"] == "harmful"
        auto = "auto" if o.status == "consensus" else o.status
        kind = "harmful" if harmful else "benign"
        counts[f"{auto} {kind} {'refused' if o.refused else 'answered'}"] += 1
    automatic = [o for o in outcomes if o.status == "consensus"]
    right = sum(bool(o.refused) == (o.labels["harm"] == "harmful") for o in automatic)
    benign = [o for o in outcomes if o.labels["harm"] != "harmful"]
    accuracy = right / len(automatic)
    return {
        "automatic_accuracy": round(accuracy, 4),
        "standard_error": round(math.sqrt(accuracy * (1 - accuracy) / len(automatic)), 4),
        "automatic_share": round(len(automatic) / len(outcomes), 4),
        "auto_false_refusal_of_benign": round(counts["auto benign refused"] / len(benign), 4),
        "episodes": len(outcomes),
        "automatic": len(automatic),
        "counts": dict(sorted(counts.items())),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=500)
    ap.add_argument("--seed", type=int, action="append", help="repeatable; default 7")
    a = ap.parse_args()
    seeds = a.seed or [7]
    started, load_start = time.monotonic(), _load()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        res = CliRunner().invoke(
            app, ["evaluate", HIERARCHY, *_sets(tmp), "--out", str(tmp / "report"), "--json"]
        )
        if res.exit_code != 0:
            raise SystemExit(res.output)
        calibration = tmp / "report" / "calibration.json"
        draws = []
        for seed in seeds:
            predicted = _predict(tmp, seed, ["--calibration", str(calibration)])
            measured = _measure(tmp, a.episodes, seed)
            gap = abs(predicted["automatic_accuracy"] - measured["automatic_accuracy"])
            draws.append({
                "seed": seed,
                "predicted_with_calibration": predicted,
                "predicted_without_calibration": _predict(tmp, seed, []),
                "measured_runtime": measured,
                "gap": round(gap, 4),
                "goal_met": gap <= 0.03,
            })  # fmt: skip
        out = {
            "command": "python benchmarks/simulate_calibration.py "
            + " ".join([f"--episodes {a.episodes}", *(f"--seed {s}" for s in seeds)]),
            "hierarchy": HIERARCHY,
            "goal": "predicted automatic accuracy within 3 points of the measured one",
            "draws": draws,
            "max_gap": max(d["gap"] for d in draws),
            "goal_met": all(d["goal_met"] for d in draws),
            "calibration_models": json.loads(calibration.read_text())["models"],
        }
    out["machine"] = detect("cpu").as_dict()
    out["load_average_start"], out["load_average_end"] = load_start, _load()
    out["seconds"] = round(time.monotonic() - started, 1)
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
