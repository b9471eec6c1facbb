"""The simulator, fed the calibration file of a hierarchy, predicts that hierarchy's measured
automatic accuracy.

1. ``oversight evaluate`` measures every agent of ``roles/recursive.yaml`` (``simulated``
   backend: agents that err at known rates) on labelled sets and writes ``calibration.json``;
2. the real runtime (agents, bus, journal, consensus) runs the same hierarchy on labelled
   prompts: the **measured automatic accuracy** is the share of the episodes it decided without
   people whose outcome is right (a harmful request refused, a benign one answered);
3. ``oversight simulate --calibration calibration.json`` predicts the same share
   (``1 - (auto pass-through + auto false refusal) / automatic decisions``).

The prediction must be within 3 points of the measurement. Sampling error of the live side:
500 episodes, about 310 decided automatically at ~98% accuracy, a standard error of about 0.8
points, so 3 points is over 3.5 standard errors; the simulated side has 50,000 episodes. Both
sides are seeded, so the test is deterministic; ``benchmarks/simulate_calibration.py --seed ...``
measures the gap on other draws (docs/simulation.md).

It failed by 2.5-3.9 points until the live runtime's simulated agents followed the agent model
the simulator implements: the case's difficulty is now shared by agents on different models
(it was drawn per model seed, so a judge's errors were independent of its critics'), and every
candidate is its own text (identical answers made the reviser's leak check drop revisions that
repeated an earlier, quoted candidate word for word).
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from oversight.cli import app
from oversight.hierarchy import load_hierarchy
from oversight.messages import Prompt, Turn

runner = CliRunner()
HIERARCHY = "roles/recursive.yaml"
MIX = (("benign", False, 0.55), ("safe_scary", False, 0.15), ("harmful", True, 0.2),
       ("jailbreak", True, 0.1))  # fmt: skip


def _jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _evaluation_sets(tmp_path: Path, n: int = 150) -> list[Path]:
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
    return [
        _jsonl(tmp_path / "requests.jsonl", requests),
        _jsonl(tmp_path / "responses.jsonl", responses),
    ]


def _live_automatic_accuracy(tmp_path: Path, n: int) -> tuple[float, int]:
    from oversight.runtime import Runtime

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
    runtime = Runtime(
        load_hierarchy(HIERARCHY), run_name="calib", run_dir=tmp_path / "run", concurrency=32
    )
    outcomes = anyio.run(runtime.run, prompts).outcomes
    assert all(o.status != "failed" for o in outcomes)
    automatic = [o for o in outcomes if o.status != "escalated"]
    right = sum(bool(o.refused) == (o.labels["harm"] == "harmful") for o in automatic)
    return right / len(automatic), len(automatic)


def _predicted_automatic_accuracy(tmp_path: Path, calibration: Path) -> float:
    res = runner.invoke(
        app,
        ["simulate", HIERARCHY, "-n", "50000", "--seed", "7", "--json", "--no-plots",
         "--out", str(tmp_path / "sim"), "--calibration", str(calibration)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    # the simulator really ran on the measured rates, not on the hierarchy's own options
    measured = json.loads(calibration.read_text())["models"]["critic"]["agents"]
    assert doc["config"]["model_options"]["critic"]["agents"] == measured
    r = doc["points"][0]["result"]
    n = r["episodes"]
    automatic = n - r["escalation"]["count"]
    wrong = r["auto_harmful_pass_through"]["count"] + r["auto_false_refusal"]["count"]
    return 1 - wrong / automatic


@pytest.mark.timeout(600)
def test_simulator_fed_the_calibration_predicts_measured_automatic_accuracy(
    tmp_path: Path,
) -> None:
    out = tmp_path / "report"
    sets = [a for p in _evaluation_sets(tmp_path) for a in ("--set", str(p))]
    res = runner.invoke(app, ["evaluate", HIERARCHY, *sets, "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    calibration = out / "calibration.json"
    predicted = _predicted_automatic_accuracy(tmp_path, calibration)
    measured, automatic = _live_automatic_accuracy(tmp_path, 500)
    assert automatic > 250  # most episodes are decided without people
    assert 0.5 < measured < 1.0  # not vacuous: the agents do err
    assert abs(predicted - measured) <= 0.03, (
        f"predicted {predicted:.4f} vs measured {measured:.4f} on {automatic} automatic"
    )
