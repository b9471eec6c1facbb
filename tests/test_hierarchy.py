from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx
import pytest
import yaml

from oversight.errors import ConfigError, UnknownModelError, UnknownPrincipleError, UnknownRoleError
from oversight.hierarchy import HierarchySpec, load_hierarchy, parse_hierarchy


def minimal() -> dict[str, Any]:
    return {
        "name": "t",
        "constitution": "constitutions/default.yaml",
        "escalation": "escalation/default.yaml",
        "models": {"m": {"backend": "scripted"}},
        "agents": [
            {"name": "base", "role": "base", "model": "m"},
            {"name": "critic", "role": "critic", "model": "m", "principles": ["harm"]},
            {"name": "judge", "role": "judge", "model": "m"},
            {"name": "people", "role": "human"},
        ],
        "supervision": [
            {"supervisor": "critic", "subject": "base"},
            {"supervisor": "judge", "subject": "critic", "mode": "sample", "rate": 0.5},
            {"supervisor": "people", "subject": "judge", "mode": "on-flag"},
        ],
    }


def write(tmp_path: Path, data: dict[str, Any], name: str = "h.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_default_hierarchy_covers_every_principle() -> None:
    spec = load_hierarchy("roles/default.yaml")
    covered = {p for a in spec.agents_by_role("critic") for p in a.principles}
    assert covered == set(spec.constitution.ids)
    assert {m.backend for m in spec.models.values()} == {"scripted"}
    for role in ("base", "reviser", "safety", "judge", "human"):
        assert spec.agents_by_role(role), role
    assert spec.policy.name == "default"


def test_recursive_hierarchy_has_three_supervision_levels_above_critics() -> None:
    spec = load_hierarchy("roles/recursive.yaml")
    levels = spec.levels()
    assert levels["base"] == 0
    assert {levels[a.name] for a in spec.agents_by_role("critic")} == {1}
    assert levels["judge"] == 2
    assert levels["safety-auditor"] == 3
    assert levels["people"] == 4
    assert all(m.backend == "simulated" for m in spec.models.values())


def test_queries() -> None:
    spec = parse_hierarchy(minimal())
    assert [a.name for a in spec.agents_by_role("critic")] == ["critic"]
    assert spec.supervisors_of("base") == ["critic"]
    assert spec.subjects_of("judge") == ["critic"]
    assert spec.supervisors_of("people") == []
    graph = spec.supervision_graph()
    assert isinstance(graph, nx.DiGraph)
    assert graph.edges["judge", "critic"] == {"mode": "sample", "rate": 0.5}
    assert spec.levels() == {"base": 0, "critic": 1, "judge": 2, "people": 3}
    assert spec.model_for("people") is None
    model = spec.model_for("critic")
    assert model is not None and model.backend == "scripted"
    with pytest.raises(ConfigError, match="did you mean 'judge'"):
        spec.subjects_of("jugde")


def test_levels_use_the_longest_chain() -> None:
    data = minimal()
    data["supervision"].append({"supervisor": "judge", "subject": "base"})
    assert parse_hierarchy(data).levels()["judge"] == 2


def test_constitution_and_policy_resolve_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "mine.yaml").write_text(
        "name: mine\ntriggers: {severity: {harm: 0.3}}\n", encoding="utf-8"
    )
    data = minimal() | {"escalation": "policies/mine.yaml"}
    spec = load_hierarchy(write(tmp_path, data))
    assert spec.policy.name == "mine"
    assert spec.constitution.name  # the packaged constitution, found via resolve_config


def test_loaded_parts_required_when_built_directly() -> None:
    spec = HierarchySpec.model_validate(minimal())
    with pytest.raises(ConfigError, match="load_hierarchy"):
        _ = spec.constitution


def mutate(**changes: Any) -> dict[str, Any]:
    return minimal() | changes


def agents_with(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [*minimal()["agents"], *extra]


@pytest.mark.parametrize(
    ("data", "error", "needle"),
    [
        (
            mutate(agents=agents_with({"name": "x", "role": "critc", "model": "m"})),
            UnknownRoleError,
            "unknown role 'critc'",
        ),
        (
            mutate(agents=agents_with({"name": "x", "role": "judge", "model": "gpt"})),
            UnknownModelError,
            "unknown model 'gpt'",
        ),
        (mutate(models={"m": {"backend": "nonesuch"}}), UnknownModelError, "known backends"),
        (
            mutate(agents=agents_with({"name": "x", "role": "judge"})),
            UnknownModelError,
            "needs a model",
        ),
        (
            mutate(
                supervision=[
                    *minimal()["supervision"],
                    {"supervisor": "critic", "subject": "judge"},
                ]
            ),
            ConfigError,
            "cycle",
        ),
        (
            mutate(supervision=[{"supervisor": "critic", "subject": "critic"}]),
            ConfigError,
            "supervises itself",
        ),
        (
            mutate(supervision=[{"supervisor": "critic", "subject": "bsae"}]),
            ConfigError,
            "unknown agent 'bsae' (did you mean 'base'?)",
        ),
        (
            mutate(agents=[a for a in minimal()["agents"] if a["role"] != "base"]),
            ConfigError,
            "no agent has role 'base'",
        ),
        (
            mutate(agents=agents_with({"name": "base", "role": "judge", "model": "m"})),
            ConfigError,
            "duplicate agent name",
        ),
        (
            mutate(agents=agents_with({"name": "c2", "role": "critic", "model": "m"})),
            ConfigError,
            "at least one principle",
        ),
        (
            mutate(
                agents=agents_with(
                    {"name": "lonely", "role": "critic", "model": "m", "principles": ["harm"]}
                )
            ),
            ConfigError,
            "not connected to the base",
        ),
        (
            mutate(
                agents=agents_with({"name": "x", "role": "judge", "model": "m"}),
                supervision=[
                    *minimal()["supervision"],
                    {"supervisor": "base", "subject": "x"},
                ],
            ),
            ConfigError,
            "the base agent 'base' supervises x",
        ),
        (
            mutate(supervision=[{"supervisor": "critic", "subject": "base", "rate": 0.5}]),
            ConfigError,
            "mode 'sample'",
        ),
        (mutate(agentz=[]), ConfigError, "agentz: unknown key"),
    ],
)
def test_structural_errors(tmp_path: Path, data: dict[str, Any], error: type, needle: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(error) as info:
        load_hierarchy(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)


def test_cycle_error_names_the_cycle(tmp_path: Path) -> None:
    data = mutate(
        supervision=[
            {"supervisor": "critic", "subject": "base"},
            {"supervisor": "judge", "subject": "critic"},
            {"supervisor": "critic", "subject": "judge"},
        ]
    )
    with pytest.raises(ConfigError) as info:
        parse_hierarchy(data)
    message = str(info.value)
    assert "critic -> judge -> critic" in message or "judge -> critic -> judge" in message


def test_unknown_principle_for_a_critic(tmp_path: Path) -> None:
    data = minimal()
    data["agents"][1]["principles"] = ["harm", "kindness"]
    with pytest.raises(UnknownPrincipleError, match="unknown principle 'kindness'"):
        load_hierarchy(write(tmp_path, data))


def test_policy_severity_principle_must_exist(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "name: p\ntriggers: {severity: {kindness: 0.5}}\n", encoding="utf-8"
    )
    with pytest.raises(UnknownPrincipleError, match=r"triggers\.severity\.kindness"):
        load_hierarchy(write(tmp_path, mutate(escalation="p.yaml")))


def test_escalating_policy_needs_a_reachable_human(tmp_path: Path) -> None:
    no_edge = mutate(supervision=minimal()["supervision"][:2])
    with pytest.raises(ConfigError, match="no human agent supervises the base"):
        load_hierarchy(write(tmp_path, no_edge))
    no_human = mutate(
        agents=[a for a in minimal()["agents"] if a["role"] != "human"],
        supervision=minimal()["supervision"][:2],
    )
    with pytest.raises(ConfigError, match="role: human"):
        load_hierarchy(write(tmp_path, no_human, "nohuman.yaml"))
    # A policy that can never escalate needs no person.
    (tmp_path / "never.yaml").write_text(
        "name: never\ntriggers: {disagreement: false, unresolved: false}\n", encoding="utf-8"
    )
    spec = load_hierarchy(write(tmp_path, no_human | {"escalation": "never.yaml"}, "ok.yaml"))
    assert not spec.policy.can_escalate
    assert "people" not in spec.levels()


def test_missing_constitution_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_hierarchy(write(tmp_path, mutate(constitution="nowhere/none.yaml")))


def test_dump_by_alias_round_trips_to_the_yaml_format() -> None:
    spec = parse_hierarchy(minimal())
    dumped = spec.model_dump(by_alias=True, exclude={"source"})
    assert dumped["constitution"] == "constitutions/default.yaml"
    assert dumped["escalation"] == "escalation/default.yaml"
    assert parse_hierarchy(dumped) == spec
