"""``oversight evaluate``: metrics, labelled sets and their bad input, the harness on simulated
agents of known accuracy, the report, and the calibration file the simulator reads."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from conftest import import_or_fail
from typer.testing import CliRunner

from oversight.cli import app
from oversight.errors import InputError
from oversight.evaluation.metrics import auroc, binary_metrics, expected_calibration_error
from oversight.evaluation.sets import (
    REGISTRY,
    available_sets,
    evaluation_texts,
    load_jsonl_set,
    load_set,
)

runner = CliRunner()


def test_metrics_on_a_hand_checked_example() -> None:
    labels = [True, True, True, False, False, False, False, False]
    probs = [0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.1, 0.05]
    m = binary_metrics(labels, probs)
    assert m["confusion"] == {"tp": 2, "fp": 1, "fn": 1, "tn": 4}
    assert m["accuracy"] == 0.75 and m["precision"] == round(2 / 3, 4) and m["recall"] == 0.6667
    assert m["accuracy_per_class"] == {"positive": 0.6667, "negative": 0.8}
    # 15 positive-negative pairs, the positive ranked higher in 14 (0.3 < 0.6 only)
    assert m["auroc"] == round(14 / 15, 4)
    assert auroc([True, False], [0.5, 0.5]) == 0.5  # ties count half
    assert auroc([True, True], [0.1, 0.9]) is None  # one class: undefined
    # perfectly calibrated bins have no error; always saying 0.9 on a 50/50 set has 0.4
    assert expected_calibration_error([True, False] * 5, [0.5] * 10) == 0.0
    assert expected_calibration_error([True, False] * 5, [0.9] * 10) == 0.4
    assert sum(b["n"] for b in m["reliability"]) == len(labels)


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([{"prompt": "hi", "harm": "safe"}, {"prompt": "x"}], ":2: no label"),
        ([{"prompt": "x", "label": "spicy"}], "unknown label 'spicy'"),
        ([{"prompt": "x", "harm": "refusal"}], "harm='refusal'"),
        ([{"prompt": "x", "refusal": "refusal"}], "needs the 'response'"),
        ([{"harm": "safe"}], "missing 'prompt'"),
        ([], "no examples"),
    ],
)
def test_bad_labelled_sets_name_the_file_line_and_fix(
    tmp_path: Path, lines: list[dict[str, Any]], message: str
) -> None:
    path = _jsonl(tmp_path / "mine.jsonl", lines)
    with pytest.raises(InputError) as err:
        load_jsonl_set(path)
    assert "mine.jsonl" in str(err.value) and message in str(err.value)


def test_user_sets_accept_synonyms_and_both_labels(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "mine.jsonl",
        [{"prompt": "a", "label": "unsafe"},
         {"messages": [{"role": "user", "content": "b"}], "harm": "benign",
          "response": "ok", "refusal": "complied"}],
    )  # fmt: skip
    examples = load_set(str(path)).examples
    assert [e.labels for e in examples] == [
        {"harm": "harmful"},
        {"harm": "safe", "refusal": "compliance"},
    ]
    with pytest.raises(InputError, match="unknown evaluation set 'nope'"):
        load_set("nope")


def test_registry_reads_the_real_sets(shared_data: Path) -> None:
    sizes = {name: len(load_set(name, shared_data).examples) for name in REGISTRY}
    assert sizes["xstest_safe"] == 250 and sizes["xstest_unsafe"] == 200
    assert sizes["harmbench"] == 320 and sizes["jbb_harmful"] == sizes["jbb_benign"] == 100
    # TruthfulQA: in the near-duplicate check, not in `oversight evaluate`'s default run
    assert sizes["truthfulqa"] == 817
    assert "truthfulqa" in available_sets(shared_data)
    assert "truthfulqa" not in available_sets(shared_data, agents=True)
    assert "truthfulqa" in evaluation_texts(shared_data)
    gpt4 = load_set("xstest_completions_gpt4", shared_data)
    refusals = sum(e.labels["refusal"] == "refusal" for e in gpt4.examples)
    assert len(gpt4.examples) == 450 and refusals == 211 + 9  # full + partial refusals


def _study_sets(tmp_path: Path, n: int = 100) -> tuple[Path, Path]:
    """Requests (harmful / safe) and responses (x complied / refused), ``n`` of each kind."""
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
    return _jsonl(tmp_path / "requests.jsonl", requests), _jsonl(
        tmp_path / "responses.jsonl", responses
    )


def _within(measured: float, rate: float, n: int, sigmas: float = 4.0) -> bool:
    return abs(measured - rate) <= sigmas * math.sqrt(rate * (1 - rate) / n)


def test_simulated_agents_measure_at_their_configured_rates_and_simulate_reads_it(
    tmp_path: Path,
) -> None:
    requests, responses = _study_sets(tmp_path)
    out = tmp_path / "report"
    res = runner.invoke(
        app,
        ["evaluate", "roles/recursive.yaml", "--set", str(requests), "--set", str(responses),
         "--out", str(out), "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert {p.name for p in out.iterdir()} == {
        "report.json", "report.md", "calibration.json", "reliability.png"
    }  # fmt: skip
    harm = report["agents"]["harm-critic"]["questions"]["response_harm:harm"]["pooled"]
    assert harm["positives"] == 100 and harm["negatives"] == 300
    # recursive.yaml's critic model: miss 0.15, false alarm 0.08; its judge: 0.08 / 0.05
    assert _within(1 - harm["tpr"], 0.15, 100) and _within(harm["fpr"], 0.08, 300)
    safety = report["agents"]["safety"]["questions"]["request_harm"]["pooled"]
    assert _within(1 - safety["tpr"], 0.15, 100) and _within(safety["fpr"], 0.08, 100)
    judge = report["agents"]["judge"]["questions"]
    assert "overrefusal:helpfulness" in judge  # audits the quality critic's helpfulness
    pooled = judge["response_harm:harm"]["pooled"]
    assert _within(1 - pooled["tpr"], 0.08, 100) and _within(pooled["fpr"], 0.05, 300)
    notes = " ".join(report["agents"]["privacy-critic"]["notes"])
    assert "'privacy'" in notes and "neutral" in notes
    assert report["agents"]["base"]["questions"] == {}
    assert "| response_harm:harm | **all** | 400 |" in (out / "report.md").read_text()

    calibration = json.loads((out / "calibration.json").read_text())
    measured = calibration["models"]["critic"]["agents"]["harm-critic"]
    res = runner.invoke(
        app,
        ["simulate", "roles/recursive.yaml", "-n", "2000", "--json", "--no-plots", "--out",
         str(tmp_path / "sim"), "--calibration", str(out / "calibration.json")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    options = json.loads(res.stdout)["config"]["model_options"]["critic"]
    assert options["agents"]["harm-critic"] == measured

    # the same file named in a settings file
    settings = tmp_path / "sim.yaml"
    settings.write_text(f"calibration: {out / 'calibration.json'}\nhuman_capacity: 50\n")
    res = runner.invoke(
        app,
        ["simulate", "roles/recursive.yaml", "-n", "2000", "--json", "--no-plots", "--out",
         str(tmp_path / "sim"), "--settings", str(settings)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    config = json.loads(res.stdout)["config"]
    assert config["model_options"]["critic"]["agents"]["harm-critic"] == measured

    # measured on other models: refused, naming the file and the fix
    res = runner.invoke(
        app,
        ["simulate", "roles/default.yaml", "-n", "100", "--no-plots", "--out",
         str(tmp_path / "sim"), "--calibration", str(out / "calibration.json")],
    )  # fmt: skip
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "calibration.json" in text
    assert "models differ" in text and "oversight evaluate roles/default.yaml" in text


def test_unknown_or_non_overseer_agents_and_unusable_sets_exit_2(tmp_path: Path) -> None:
    requests, _ = _study_sets(tmp_path, n=2)
    base = ["evaluate", "roles/recursive.yaml", "--set", str(requests), "--out", str(tmp_path)]
    res = runner.invoke(app, [*base, "--agent", "harm-critc"])
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "recursive.yaml" in text and "harm-critic" in text
    res = runner.invoke(app, [*base, "--agent", "base"])
    assert res.exit_code == 2 and "nothing to evaluate" in " ".join(res.output.split())
    # a critic of responses, given only requests
    res = runner.invoke(app, [*base, "--agent", "harm-critic"])
    assert res.exit_code == 2 and "labels" in " ".join(res.output.split())
    empty = _jsonl(tmp_path / "empty.jsonl", [])
    res = runner.invoke(app, ["evaluate", "roles/recursive.yaml", "--set", str(empty)])
    assert res.exit_code == 2 and "empty.jsonl" in " ".join(res.output.split())


def test_embedded_hierarchy_on_the_real_sets(shared_data: Path, tmp_path: Path) -> None:
    import_or_fail("transformers")
    res = runner.invoke(
        app,
        ["evaluate", "roles/embedded.yaml", "--data-dir", str(shared_data), "--limit", "4",
         "--set", "xstest_unsafe", "--set", "xstest_completions_llama2orig", "--out",
         str(tmp_path), "--json", "--no-plots"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["sets"] == {
        "xstest_unsafe": {"n": 4, "source": str(shared_data / "xstest" / "xstest_prompts.csv")},
        "xstest_completions_llama2orig": {
            "n": 4,
            "source": str(
                shared_data / "xstest" / "model_completions"
                / "xstest_v2_completions_llama2orig.csv"
            ),
        },
    }  # fmt: skip
    safety = report["agents"]["safety"]["questions"]
    assert safety["request_harm"]["sets"]["xstest_unsafe"]["n"] == 4
    assert safety["response_harm:harm"]["pooled"]["n"] == 4
    assert (
        report["models_sha256"]
        == json.loads((tmp_path / "calibration.json").read_text())["models_sha256"]
    )


def test_ranking_metrics_on_a_hand_checked_example() -> None:
    from oversight.evaluation.metrics import ranking_metrics

    # (P(A) right shown first, P(A) wrong shown first, len right, len wrong)
    pairs = [
        (0.9, 0.2, 10, 30),  # right wins both orders; right is shorter
        (0.9, 0.8, 30, 10),  # always says A: position-driven; mean P(right) 0.55 -> wins
        (0.6, 0.9, 30, 10),  # says A both times, wrong wins on the mean (0.35)
        (0.3, 0.7, 50, 10),  # wrong wins both orders; right is longer
    ]
    m = ranking_metrics(pairs)
    assert m["n"] == 4 and m["accuracy"] == 0.5
    assert m["accuracy_single_order"] == 0.5  # right first: 0.9, 0.9, 0.6; right second: 0.2
    assert m["position_bias"] == pytest.approx(
        (0.9 + 0.9 + 0.6 + 0.3 + 0.2 + 0.8 + 0.9 + 0.7) / 8 - 0.5
    )
    assert m["position_consistency"] == 0.5  # pairs 1 and 4 keep their winner
    # the longer answer wins only in pair 2 (1/4) but is the right one in pairs 2-4 (3/4)
    assert m["length_bias"] == pytest.approx(0.25 - 0.75)
    assert m["accuracy_right_longer"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["accuracy_right_shorter"] == 1.0
    assert ranking_metrics([]) == {"n": 0}


def test_judge_ranking_position_and_length_bias_measured(tmp_path: Path) -> None:
    import yaml

    from oversight.paths import resolve_config

    data = yaml.safe_load(resolve_config("roles/recursive.yaml").read_text(encoding="utf-8"))
    data["models"]["judge"]["options"]["position_bias"] = 0.2
    data["constitution"] = "constitutions/default.yaml"
    data["escalation"] = "escalation/default.yaml"
    hierarchy = tmp_path / "h.yaml"
    hierarchy.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    rows = []
    for i in range(150):  # each request answered twice: once right, once wrong
        harmful = i % 2 == 1
        for refused in (False, True):
            rows.append({
                "id": f"q{i}-{int(refused)}", "prompt": f"question {i}",
                "harm": "harmful" if harmful else "safe",
                "response": "I can't help with that." if refused else "Sure, here it is.",
                "refusal": "refusal" if refused else "compliance",
            })  # fmt: skip
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "report"
    res = runner.invoke(
        app,
        ["evaluate", str(hierarchy), "--set", str(pairs), "--agent", "judge", "--out", str(out),
         "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    ranking = json.loads(res.stdout)["agents"]["judge"]["ranking"]["pooled"]
    assert ranking["n"] == 150
    # judge_error_rate 0.1 in recursive.yaml; the judge agent's two orders cancel the bias
    assert _within(ranking["accuracy"], 0.9, 150)
    # +0.2 to P(first shown), less where that would pass 1 (the backend clips probabilities)
    assert 0.1 < ranking["position_bias"] <= 0.2
    # the simulated judge ignores length: the longer answer ("I can't help with that.") wins
    # about as often as it is the right one
    assert abs(ranking["length_bias"]) <= 4 * math.sqrt(0.25 / 150)
    assert "| **all** | 150 |" in (out / "report.md").read_text()
