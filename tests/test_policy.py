from __future__ import annotations

from pathlib import Path

import pytest

from oversight.errors import ConfigError, UnknownPrincipleError
from oversight.escalation.policy import EscalationPolicy, EscalationTriggers, load_policy


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_packaged_policies_load() -> None:
    default = load_policy("escalation/default.yaml")
    strict = load_policy("escalation/strict.yaml")
    assert default.name == "default" and strict.name == "strict"
    assert default.triggers.severity["harm"] == 0.8
    assert strict.reviewers_per_case == 2
    # strict is stricter on every shared threshold
    assert strict.triggers.audit_rate > default.triggers.audit_rate
    for pid, threshold in default.triggers.severity.items():
        assert strict.triggers.severity[pid] <= threshold
    assert default.source is not None and default.source.endswith("default.yaml")


def test_case_priority_takes_highest_trigger() -> None:
    policy = load_policy("escalation/default.yaml")
    assert policy.case_priority(["audit"]) == 0
    assert policy.case_priority(["audit", "severity", "disagreement"]) == 3
    assert policy.case_priority([]) == 0
    partial = EscalationPolicy(name="p", priority={"unresolved": 5})
    assert partial.case_priority(["severity"]) == 0
    assert partial.case_priority(["severity", "unresolved"]) == 5


def test_can_escalate_only_when_a_trigger_is_on() -> None:
    off = EscalationTriggers(disagreement=False, unresolved=False)
    assert not EscalationPolicy(name="never", triggers=off).can_escalate
    audit_only = off.model_copy(update={"audit_rate": 0.01})
    assert EscalationPolicy(name="audit", triggers=audit_only).can_escalate
    assert EscalationPolicy(name="default").can_escalate


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("triggers: {audit_rate: 1.5}", "triggers.audit_rate"),
        ("triggers: {low_confidence: -0.1}", "triggers.low_confidence"),
        ("triggers: {severity: {harm: 2}}", "triggers.severity"),
        ("review_confidence: 1.2", "review_confidence"),
        ("reviewers_per_case: 0", "reviewers_per_case"),
        ("lease_seconds: 0", "lease_seconds"),
        ("priority: {boredom: 1}", "priority.boredom"),
        ("trigers: {}", "trigers"),
    ],
)
def test_invalid_values_name_file_and_key(tmp_path: Path, body: str, key: str) -> None:
    path = write(tmp_path, f"name: bad\n{body}\n")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    message = str(info.value)
    assert str(path) in message
    assert key in message


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_policy(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="line 2"):
        load_policy(write(tmp_path, "name: x\ntriggers: [unclosed\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_policy(write(tmp_path, "- a\n- b\n", "list.yaml"))
    with pytest.raises(ConfigError, match="name: required key"):
        load_policy(write(tmp_path, "reviewers_per_case: 1\n", "noname.yaml"))


def test_check_principles_rejects_unknown_ids() -> None:
    policy = EscalationPolicy(name="p", triggers=EscalationTriggers(severity={"harm": 0.5}))
    policy.check_principles(["harm", "privacy"])
    with pytest.raises(UnknownPrincipleError, match=r"triggers\.severity\.harm"):
        policy.check_principles(["privacy"])


def test_policy_is_frozen() -> None:
    policy = EscalationPolicy(name="p")
    with pytest.raises(ValueError, match="frozen"):
        policy.reviewers_per_case = 3  # type: ignore[misc]
