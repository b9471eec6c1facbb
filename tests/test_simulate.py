"""The vectorised simulator: configuration, sweeps, metrics, bad input, CLI, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from oversight.cli.simulate import register
from oversight.errors import ConfigError
from oversight.simulate import SimulationConfig, load_calibration, parse_sweep, run_study, wilson
from oversight.simulate.config import apply_parameter, sweep_grid
from oversight.simulate.metrics import backlog
from oversight.simulate.plots import pareto_front

RECURSIVE = "roles/recursive.yaml"


def result(hierarchy: str | Path = RECURSIVE, episodes: int = 20_000, **settings: object) -> dict:
    config = SimulationConfig(episodes=episodes, chunk_size=8192, **settings)  # type: ignore[arg-type]
    return run_study(hierarchy, config).points[0]["result"]


def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None: ...

    register(app)
    return app


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def recursive_data() -> dict:
    from oversight.paths import resolve_config

    data = yaml.safe_load(resolve_config(RECURSIVE).read_text(encoding="utf-8"))
    data["constitution"] = "constitutions/default.yaml"
    data["escalation"] = "escalation/default.yaml"
    return data


# --- statistics ----------------------------------------------------------------------------


def test_wilson_interval_known_values() -> None:
    p, low, high = wilson(10, 100)
    assert p == 0.1
    assert low == pytest.approx(0.0552, abs=1e-4) and high == pytest.approx(0.1744, abs=1e-4)
    assert wilson(0, 50)[1] == 0.0 and wilson(0, 50)[2] > 0.0  # never a zero-width interval


def test_backlog_grows_only_over_capacity() -> None:
    assert list(backlog([5, 5, 5], 10)) == [0, 0, 0]
    assert list(backlog([15, 15, 0, 0], 10)) == [5, 10, 0, 0]


def test_pareto_front_keeps_non_dominated_points() -> None:
    points = [(1.0, 0.5), (2.0, 0.2), (3.0, 0.3), (0.5, 0.9), (2.5, 0.1)]
    assert pareto_front(points) == [3, 0, 1, 4]


# --- sweeps and settings -------------------------------------------------------------------


def test_parse_sweep_and_grid() -> None:
    assert parse_sweep("accuracy=0.8,0.9") == ("accuracy", [0.8, 0.9])
    grid = sweep_grid([("depth", [1, 2]), ("correlation", [0.0, 0.3])])
    assert len(grid) == 4 and {"depth": 2, "correlation": 0.3} in grid


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nonsense=1", "valid parameters: accuracy"),
        ("accuracy=1.5", "must lie in [0, 1]"),
        ("miss_rate=-0.1", "must lie in [0, 1]"),
        ("depth=1.5", "non-negative integer"),
        ("accuracy", "expected NAME=V1,V2"),
        ("correlation=0.1,x", "not a number"),
    ],
)
def test_bad_sweeps_are_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_sweep(text)


def test_accuracy_sets_both_error_rates() -> None:
    config = apply_parameter(SimulationConfig(), "accuracy", 0.9)
    assert config.agent_options["miss_rate"] == pytest.approx(0.1)
    assert config.agent_options["false_alarm_rate"] == pytest.approx(0.1)
    mixed = apply_parameter(SimulationConfig(), "harmful_fraction", 0.5)
    _names, probs, harmful = mixed.category_probabilities()
    assert sum(p for p, h in zip(probs, harmful, strict=True) if h) == pytest.approx(0.5)


def test_calibration_file_formats(tmp_path: Path) -> None:
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({"models": {
        "critic": {"tp": 90, "fn": 10, "fp": 5, "tn": 95},
        "judge": {"sets": [{"name": "harmbench", "harmful": True, "flagged": 160, "total": 200},
                           {"name": "xstest", "harmful": False, "flagged_rate": 0.1,
                            "total": 250}],
                  "principles": {"harm": {"miss_rate": 0.02}}},
    }}))  # fmt: skip
    rates = load_calibration(path)
    assert rates["critic"] == {"miss_rate": 0.1, "false_alarm_rate": 0.05}
    assert rates["judge"]["miss_rate"] == pytest.approx(0.2)
    assert rates["judge"]["false_alarm_rate"] == pytest.approx(0.1)
    assert rates["judge"]["principles"]["harm"] == {"miss_rate": 0.02}
    bench = {
        "xstest": {"safe_allowed": 0.9, "unsafe_flagged": 0.8, "n_safe": 250},
        "harmbench_test_flagged": 0.7,
        "jbb_harmful_flagged": 0.9,
        "jbb_benign_allowed": 0.7,
    }
    path.write_text(json.dumps({"models": {"safety": {"safety_benchmark": bench}}}))
    measured = load_calibration(path)["safety"]
    assert measured["miss_rate"] == pytest.approx(0.2)
    assert measured["false_alarm_rate"] == pytest.approx(0.2)
    path.write_text(json.dumps({"models": {"critic": {"miss_rate": 2}}}))
    with pytest.raises(ConfigError, match="outside"):
        load_calibration(path)


# --- behaviour of the simulated hierarchy --------------------------------------------------


def test_rates_are_probabilities_with_intervals_around_them() -> None:
    r = result()
    for key in ("harmful_pass_through", "false_refusal", "escalation", "revision"):
        assert 0.0 <= r[key]["low"] <= r[key]["rate"] <= r[key]["high"] <= 1.0
    assert r["episodes"] == 20_000
    assert r["human_hours"] > 0 and r["cost"] > r["human_cost"] > 0
    assert len(r["backlog"]) == 2  # 20,000 episodes at 10,000 per day


def test_same_seed_same_result_and_seed_matters() -> None:
    assert result(seed=3) == result(seed=3)
    assert result(seed=3)["escalation"] != result(seed=4)["escalation"]


def test_perfect_overseers_let_no_harm_through_by_consensus() -> None:
    r = result(agent_options={"miss_rate": 0.0, "false_alarm_rate": 0.0, "correlation": 0.0})
    assert r["auto_harmful_pass_through"]["count"] == 0
    assert r["triggers"]["disagreement"] == 0.0  # nobody is wrong, so nobody disagrees
    sloppy = result(agent_options={"miss_rate": 0.4, "false_alarm_rate": 0.0})
    assert sloppy["auto_harmful_pass_through"]["count"] > 0


def test_worse_overseers_pass_more_harm() -> None:
    good = result(agent_options={"miss_rate": 0.05})
    bad = result(agent_options={"miss_rate": 0.3})
    assert bad["chosen_harmful_pass_through"]["low"] > good["chosen_harmful_pass_through"]["high"]


def test_correlated_errors_let_more_harm_through_a_deep_hierarchy() -> None:
    independent, correlated = (
        result(episodes=40_000, agent_options={"correlation": rho}) for rho in (0.0, 0.9)
    )
    # same marginal error rates; only *which* cases the agents fail on differs: correlated
    # agents agree more (fewer disagreements reach people) and are wrong together
    key = "chosen_harmful_pass_through"
    assert correlated[key]["low"] > independent[key]["high"]
    assert correlated["escalation"]["high"] < independent["escalation"]["low"]


def test_depth_prunes_levels() -> None:
    study = run_study(RECURSIVE, SimulationConfig(episodes=5_000), [("depth", [1.0, 2.0, 3.0])])
    assert [p["result"]["depth"] for p in study.points] == [1, 2, 3]
    calls = [p["result"]["model_calls_per_episode"] for p in study.points]
    assert calls[0] < calls[1] < calls[2]


# --- bad hierarchies and settings ----------------------------------------------------------


def test_hierarchy_without_people_cannot_escalate(tmp_path: Path) -> None:
    data = recursive_data()
    data["agents"] = [a for a in data["agents"] if a["role"] != "human"]
    data["supervision"] = [e for e in data["supervision"] if e["supervisor"] != "people"]
    with pytest.raises(ConfigError, match="human"):
        run_study(write_yaml(tmp_path / "h.yaml", data), SimulationConfig(episodes=10))


def test_zero_human_capacity_with_escalation_is_an_error() -> None:
    with pytest.raises(ConfigError, match="human_capacity is 0"):
        run_study(RECURSIVE, SimulationConfig(episodes=10, human_capacity=0))


def test_probabilities_outside_unit_interval_in_model_options(tmp_path: Path) -> None:
    data = recursive_data()
    data["models"]["critic"]["options"]["miss_rate"] = 1.2
    path = write_yaml(tmp_path / "h.yaml", data)
    try:
        from oversight.hierarchy import load_hierarchy

        spec = load_hierarchy(path)
    except ConfigError:
        return  # the hierarchy loader already refuses it
    with pytest.raises(ConfigError, match="miss_rate"):
        run_study(spec, SimulationConfig(episodes=10))


# --- CLI -----------------------------------------------------------------------------------


def test_cli_writes_results_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    res = CliRunner().invoke(
        cli(),
        ["simulate", RECURSIVE, "-n", "3000", "--sweep", "accuracy=0.8,0.95",
         "--sweep", "depth=1,3", "--out", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    for name in ("results.json", "results.csv", "vs_accuracy.png", "vs_depth.png",
                 "pareto.png", "backlog.png"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["points"]) == 4
    assert (out / "results.csv").read_text().count("\n") == 5  # header + 4 points
    assert "harm passed" in res.output


def test_cli_json_output(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        cli(), ["simulate", RECURSIVE, "-n", "1000", "--json", "--no-plots",
                "--out", str(tmp_path)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["points"][0]["result"]["episodes"] == 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sweep", "warp=1"], "valid parameters"),
        (["--sweep", "human_error_rate=2"], "[0, 1]"),
        (["--sweep", "human_capacity=0"], "human_capacity is 0"),
    ],
)
def test_cli_bad_input_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    res = CliRunner().invoke(
        cli(), ["simulate", RECURSIVE, "-n", "10", "--out", str(tmp_path), *args]
    )
    assert res.exit_code == 2
    assert message in res.output.replace("\n", " ")
    assert not (tmp_path / "results.json").exists()


def test_parallel_workers_give_the_same_result() -> None:
    one = result(episodes=20_000, workers=1)
    two = result(episodes=20_000, workers=2)
    assert one == two


def test_cli_settings_and_calibration_files(tmp_path: Path) -> None:
    settings = write_yaml(tmp_path / "sim.yaml", {"human_capacity": 50, "horizon_days": 3,
                                                 "episodes_per_day": 1000})  # fmt: skip
    calibration = tmp_path / "cal.json"
    calibration.write_text(json.dumps({"models": {"critic": {"miss_rate": 0.5}}}))
    args = ["simulate", RECURSIVE, "-n", "3000", "--json", "--no-plots", "--out", str(tmp_path),
            "--settings", str(settings), "--calibration", str(calibration)]  # fmt: skip
    res = CliRunner().invoke(cli(), args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["config"]["human_capacity"] == 50
    assert doc["config"]["model_options"]["critic"] == {"miss_rate": 0.5}
    assert len(doc["points"][0]["result"]["backlog"]) == 3

    write_yaml(settings, {"human_capacity": 50, "warp_factor": 9})
    res = CliRunner().invoke(cli(), args)
    assert res.exit_code == 2 and "warp_factor" in res.output
    calibration.unlink()
    write_yaml(settings, {})
    res = CliRunner().invoke(cli(), args)
    assert res.exit_code == 2 and "calibration file not found" in res.output


def test_cli_leaves_the_settings_file_alone_unless_told(tmp_path: Path) -> None:
    """`episodes:` and `seed:` of a settings file hold unless the command line gives them;
    workers default to the cores this process may use (the result does not depend on them)."""
    from oversight.simulate.config import available_cores

    settings = write_yaml(tmp_path / "sim.yaml", {"episodes": 1500, "seed": 7})
    base = ["simulate", RECURSIVE, "--json", "--no-plots", "--out", str(tmp_path),
            "--settings", str(settings)]  # fmt: skip
    doc = json.loads(CliRunner().invoke(cli(), base).stdout)
    assert doc["points"][0]["result"]["episodes"] == 1500
    assert doc["config"]["seed"] == 7 and doc["config"]["workers"] == available_cores()
    doc = json.loads(CliRunner().invoke(cli(), [*base, "-n", "1000", "--workers", "1"]).stdout)
    assert doc["points"][0]["result"]["episodes"] == 1000 and doc["config"]["workers"] == 1
