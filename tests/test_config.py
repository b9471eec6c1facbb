"""The config base: line numbers, duplicate keys, every problem at once, "did you mean"."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from oversight.cli import app
from oversight.cli.check import check_file
from oversight.config import Problems, config_error, read_config
from oversight.constitution import load_constitution
from oversight.errors import (
    ConfigError,
    ConfigProblem,
    UnknownModelError,
    UnknownPrincipleError,
    UnknownRoleError,
)
from oversight.escalation.policy import EscalationPolicy, load_policy
from oversight.hierarchy import load_hierarchy, parse_hierarchy
from oversight.simulate import SimulationConfig, load_simulation_config

REPO = Path(__file__).resolve().parents[1]

HIERARCHY = """\
name: t
models:
  base: {backend: scripted}
  assessor: {backend: scripted}
agents:
  - {name: base, role: base, model: base}
  - {name: critic, role: critic, model: assessor, principles: [harm]}
  - {name: judge, role: judge, model: assessor}
  - {name: people, role: human}
supervision:
  - {supervisor: critic, subject: base}
  - {supervisor: judge, subject: critic}
  - {supervisor: people, subject: judge, mode: on-flag}
"""


def write(tmp_path: Path, text: str, name: str = "h.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(err: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(p) for p in err.value.problems]


def assert_lines_point_at_keys(path: Path, err: ConfigError) -> None:
    """Every problem has a line, and that line of the file holds the key (or value) named."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for problem in err.problems:
        assert problem.line is not None, problem
        last = [p for p in problem.loc if isinstance(p, str)][-1]
        assert last in lines[problem.line - 1], (problem, lines[problem.line - 1])


# ------------------------------------------------------------------ duplicate keys


def test_a_key_defined_twice_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    text = HIERARCHY.replace(
        "  assessor: {backend: scripted}\n",
        "  assessor: {backend: scripted}\n  assessor: {backend: scripted, options: {x: 1}}\n",
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_hierarchy(path)
    assert str(info.value) == (
        f"{path}: line 5: models.assessor: duplicate key 'assessor' (first defined at line 4); "
        "YAML would silently keep only the last value, so keep one of them"
    )
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 2
    assert "line 5: models.assessor: duplicate key" in result.output


def test_duplicate_keys_inside_list_items_name_the_item(tmp_path: Path) -> None:
    text = HIERARCHY.replace(
        "{name: judge, role: judge, model: assessor}",
        "{name: judge, role: judge, model: assessor, role: critic}",
    )
    with pytest.raises(ConfigError, match=r"line 8: agents\[2\] \(judge\)\.role: duplicate key"):
        load_hierarchy(write(tmp_path, text))


def test_anchors_and_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    text = HIERARCHY.replace(
        "  base: {backend: scripted}\n",
        "  base: &model {backend: scripted, options: {confidence: 0.9}}\n",
    ).replace("  assessor: {backend: scripted}\n", "  assessor:\n    <<: *model\n    options: {}\n")
    spec = load_hierarchy(write(tmp_path, text))
    assert spec.models["base"].options == {"confidence": 0.9}
    assert spec.models["assessor"].options == {}


# ------------------------------------------------------------------ every problem at once


def test_every_cross_reference_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        HIERARCHY.replace("role: critic, model: assessor", "role: critc, model: assesor")
        .replace("{backend: scripted}\nagents", "{backend: scriptd}\nagents")
        .replace("{supervisor: judge, subject: critic}", "{supervisor: judge, subject: critc}")
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_hierarchy(path)
    # Other tests register roles and backends of their own: the known lists are the registries'.
    from oversight.agents import role_names
    from oversight.backends import backend_names

    assert problems_of(info) == [
        "line 4: models.assessor.backend: unknown backend 'scriptd' (did you mean 'scripted'?); "
        f"known backends: {', '.join(backend_names())}",
        "line 7: agents[1] (critic).role: unknown role 'critc' (did you mean 'critic'?); "
        f"known roles: {', '.join(role_names())}",
        "line 7: agents[1] (critic).model: unknown model 'assesor' (did you mean 'assessor'?); "
        "define it under `models:` (defined: base, assessor)",
        "line 12: supervision[1].subject: unknown agent 'critc' (did you mean 'critic'?); "
        "agents: base, critic, judge, people",
    ]
    assert str(info.value).startswith(f"{path}: 4 problems:\n  line 4: models.assessor.backend")
    # one error that is each of its problems' kinds, so a specific `except` still catches it
    assert isinstance(info.value, UnknownRoleError)
    assert isinstance(info.value, UnknownModelError)
    assert not isinstance(info.value, UnknownPrincipleError)
    assert_lines_point_at_keys(path, info.value)


def test_every_schema_problem_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    text = (
        "name: p\n"
        "triggers:\n"
        "  audit_rate: 1.5\n"
        "  dissagreement: false\n"
        "reviewers_per_case: 0\n"
        "priority: {sevrity: 3}\n"
    )
    path = write(tmp_path, text, "p.yaml")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert problems_of(info) == [
        "line 3: triggers.audit_rate: Input should be less than or equal to 1 (got 1.5)",
        "line 4: triggers.dissagreement: unknown key (did you mean 'disagreement'?); fix its "
        "spelling or remove it",
        "line 5: reviewers_per_case: Input should be greater than or equal to 1 (got 0)",
        "line 6: priority.sevrity: Input should be 'disagreement', 'low_confidence', "
        "'severity', 'unresolved', 'audit' or 'safety' (got 'sevrity'; did you mean "
        "'severity'?)",
    ]
    assert_lines_point_at_keys(path, info.value)


def test_duplicate_keys_are_reported_with_the_validation_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "name: p\nname: q\nlease_seconds: -1\n", "p.yaml")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert [p.line for p in info.value.problems] == [2, 3]
    assert "duplicate key 'name' (first defined at line 1)" in str(info.value)
    assert "lease_seconds: Input should be greater than 0" in str(info.value)


def test_overlay_problems_are_reported_at_once_with_lines_in_the_overlay(tmp_path: Path) -> None:
    text = (
        "name: o\n"
        "weights: {privcy: 2}\n"
        "remove_rules: [no-such-rule]\n"
        "add_priorities: [harm > kindness]\n"
    )
    path = write(tmp_path, text, "o.yaml")
    with pytest.raises(ConfigError) as info:
        load_constitution("constitutions/default.yaml", overlays=[path])
    assert info.value.path == str(path)
    assert [p.line for p in info.value.problems] == [2, 3, 4]
    assert "weights.privcy: overlay 'o' names principle 'privcy' (did you mean 'privacy'?)" in (
        str(info.value)
    )
    assert "add_priorities[0]: overlay 'o' names principle 'kindness'" in str(info.value)


def test_a_policy_principle_unknown_to_the_constitution_gets_its_line(tmp_path: Path) -> None:
    write(tmp_path, "name: p\ntriggers:\n  severity: {harm: 0.5, privcy: 0.5}\n", "p.yaml")
    text = HIERARCHY + "escalation: p.yaml\n"
    with pytest.raises(UnknownPrincipleError) as info:
        load_hierarchy(write(tmp_path, text))
    assert info.value.path == str(tmp_path / "p.yaml")
    assert problems_of(info)[0].startswith(
        "line 3: triggers.severity.privcy: unknown principle 'privcy' (did you mean 'privacy'?)"
    )


def test_a_mapping_without_a_file_reports_every_problem_without_lines() -> None:
    data = yaml.safe_load(HIERARCHY)
    data["agents"][1]["role"] = "critc"
    data["agents"][2]["model"] = "nope"
    with pytest.raises(ConfigError) as info:
        parse_hierarchy(data)
    assert [p.key for p in info.value.problems] == [
        "agents[1] (critic).role",
        "agents[2] (judge).model",
    ]
    assert all(p.line is None for p in info.value.problems)


def test_a_list_whose_items_all_fail_is_not_also_called_too_short(tmp_path: Path) -> None:
    text = (REPO / "constitutions" / "default.yaml").read_text(encoding="utf-8")
    text = text.replace("    weight: ", "    wieght: ")
    path = write(tmp_path, text, "c.yaml")
    with pytest.raises(ConfigError) as info:
        load_constitution(path)
    messages = [p.message for p in info.value.problems]
    assert len(messages) == text.count("    wieght: ") > 1
    assert all(m.startswith("unknown key (did you mean 'weight'?)") for m in messages)
    assert_lines_point_at_keys(path, info.value)


def test_missing_files_named_by_a_hierarchy_are_reported_at_their_keys(tmp_path: Path) -> None:
    text = HIERARCHY + "constitution: constitutions/nope.yaml\noverlays: [x.yaml]\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_hierarchy(path)
    assert info.value.path == str(path)
    assert [(p.line, p.key) for p in info.value.problems] == [
        (14, "constitution"),
        (15, "overlays[0]"),
    ]
    assert "file 'constitutions/nope.yaml' not found" in str(info.value)
    # an overlay named relative to the constitution's folder is found there
    folder = tmp_path / "mine"
    (folder / "overlays").mkdir(parents=True)
    (folder / "c.yaml").write_text(
        (REPO / "constitutions" / "default.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (folder / "overlays" / "o.yaml").write_text("name: o\nweights: {harm: 2}\n")
    text = HIERARCHY + "constitution: mine/c.yaml\noverlays: [overlays/o.yaml]\n"
    spec = load_hierarchy(write(tmp_path, text))
    assert spec.constitution.overlays == ("o",)
    assert spec.constitution.principle("harm").weight == 2


# ------------------------------------------------------------------ did you mean


def test_misspelt_keys_get_a_suggestion_and_unknown_ones_the_allowed_keys(tmp_path: Path) -> None:
    text = HIERARCHY + "settings: {max_revison_rounds: 3}\n"
    with pytest.raises(ConfigError) as info:
        load_hierarchy(write(tmp_path, text))
    assert problems_of(info) == [
        "line 14: settings.max_revison_rounds: unknown key (did you mean "
        "'max_revision_rounds'?); fix its spelling or remove it"
    ]
    text = HIERARCHY.replace("{name: people, role: human}", "{name: people, role: human, x: 1}")
    with pytest.raises(ConfigError, match=r"keys allowed here: name, role, model, principles"):
        load_hierarchy(write(tmp_path, text))


def test_unknown_principle_of_a_critic_suggests_the_close_one(tmp_path: Path) -> None:
    path = write(tmp_path, HIERARCHY.replace("principles: [harm]", "principles: [harm, privcy]"))
    with pytest.raises(UnknownPrincipleError) as info:
        load_hierarchy(path)
    assert problems_of(info)[0].startswith(
        "line 7: agents[1] (critic).principles[1]: unknown principle 'privcy' "
        "(did you mean 'privacy'?)"
    )


def test_simulation_settings_go_through_the_same_base(tmp_path: Path) -> None:
    text = (
        "human_capacty: 10\ncase_mix: {benign: {fraction: 2, harmful: false}}\nseed: 1\nseed: 2\n"
    )
    path = write(tmp_path, text, "sim.yaml")
    with pytest.raises(ConfigError) as info:
        load_simulation_config(path)
    text = str(info.value)
    assert "line 1: human_capacty: unknown key (did you mean 'human_capacity'?)" in text
    assert "line 4: seed: duplicate key 'seed' (first defined at line 3)" in text
    assert "line 2: case_mix.benign.fraction: Input should be less than or equal to 1" in text
    assert load_simulation_config(write(tmp_path, "", "empty.yaml")) == SimulationConfig()
    config = load_simulation_config(write(tmp_path, "seed: 3\n", "s.yaml"), episodes=10)
    assert (config.seed, config.episodes) == (3, 10)


def test_check_recognises_simulation_settings(tmp_path: Path) -> None:
    good = write(tmp_path, "episodes: 500\nhuman_capacity: 50\n", "sim.yaml")
    bad = write(tmp_path, "episodes: 500\nhuman_capacty: 50\n", "bad.yaml")
    result = CliRunner().invoke(app, ["check", str(good), str(bad)])
    assert result.exit_code == 2
    assert "sim.yaml: simulation settings: 500 episodes" in result.output
    assert "line 2: human_capacty: unknown key (did you mean 'human_capacity'?)" in result.output


def test_check_prints_brackets_of_a_fix_verbatim(tmp_path: Path) -> None:
    path = write(tmp_path, HIERARCHY.replace(", principles: [harm]", ""))
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 2
    assert "line 7: agents[1] (critic).principles: " in result.output
    assert "add e.g. `principles: [harm]`" in result.output  # not eaten as console markup


def test_the_loader_sets_source_and_refuses_it_in_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 2: source: set by the loader"):
        load_policy(write(tmp_path, "name: p\nsource: elsewhere.yaml\n", "p.yaml"))


def test_read_config_refuses_what_is_not_a_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hierarchy file is a folder"):
        read_config(tmp_path, what="hierarchy")
    with pytest.raises(ConfigError, match=r"line 2, column \d+: malformed YAML"):
        read_config(write(tmp_path, "a: 1\n b: 2\n"))
    with pytest.raises(ConfigError, match="not a list"):
        read_config(write(tmp_path, "- a\n"))
    with pytest.raises(ConfigError, match="the file is empty"):
        read_config(write(tmp_path, "# nothing\n"))
    assert read_config(write(tmp_path, ""), allow_empty=True).data == {}


def test_a_combined_error_survives_pickling() -> None:
    problems = Problems(path="x.yaml")
    problems.add(("agents", 0, "role"), "unknown role", UnknownRoleError)
    problems.add(("agents", 0, "model"), "unknown model", UnknownModelError)
    err = config_error(list(problems), path="x.yaml")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err)
    assert isinstance(again, UnknownRoleError) and isinstance(again, UnknownModelError)
    assert again.problems == err.problems
    assert isinstance(again.problems[0], ConfigProblem)


def test_a_policy_built_in_code_names_every_unknown_principle() -> None:
    policy = EscalationPolicy(name="p", triggers={"severity": {"hram": 0.5, "zz": 0.5}})
    with pytest.raises(UnknownPrincipleError) as info:
        policy.check_principles(["harm"])
    assert [p.key for p in info.value.problems] == [
        "triggers.severity.hram",
        "triggers.severity.zz",
    ]
    assert "did you mean 'harm'" in str(info.value)


# ------------------------------------------------------------------ shipped files


SHIPPED = sorted(
    p
    for folder in ("constitutions", "roles", "escalation", "examples", "oversight/data")
    for p in (REPO / folder).rglob("*.y*ml")
)


def test_the_shipped_files_were_found() -> None:
    names = {p.relative_to(REPO).as_posix() for p in SHIPPED}
    assert {"constitutions/default.yaml", "roles/default.yaml", "escalation/strict.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_shipped_config_file_loads(path: Path) -> None:
    assert read_config(path).problems == []
    check_file(path)
