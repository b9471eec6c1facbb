"""The coordinator's translators, now owned by the modules they translate for: findings ->
decision batch (consensus), decision -> resolution text (priority), episode -> case
(escalation), and who does what by capability (Cast)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from oversight.agents import create_agent
from oversight.consensus import (
    VERDICT_VIOLATED,
    CompiledCore,
    EpisodeFindings,
    decide,
    finding_of,
    violated_principles,
)
from oversight.constitution import load_constitution
from oversight.coordinator import Cast
from oversight.errors import ConfigError
from oversight.escalation import CaseSubmission, load_policy
from oversight.escalation.episode import DETAIL_KEYS, case_from_episode
from oversight.messages import (
    Audit,
    Critique,
    Draft,
    Prompt,
    SafetyAssessment,
    Turn,
    envelope,
)
from oversight.priority import PriorityGraph


@pytest.fixture(scope="module")
def graph() -> PriorityGraph:
    return PriorityGraph(load_constitution("constitutions/default.yaml"))


@pytest.fixture(scope="module")
def core(graph: PriorityGraph) -> CompiledCore:
    return CompiledCore.from_config(graph, load_policy("escalation/default.yaml"))


def test_finding_of_each_kind_of_finding() -> None:
    critique = Critique(candidate_id="c0", principle_id="harm", principle_version="1",
                        verdict="violated", severity=0.7, confidence=0.8)  # fmt: skip
    assert finding_of(critique, 0.9) == ("violated", 0.7, 0.8)
    risky = SafetyAssessment(candidate_id="c0", risk=0.9, confidence=0.8)
    verdict, severity, confidence = finding_of(risky, 0.5)
    assert (verdict, confidence) == ("violated", 0.8) and severity == pytest.approx(0.45)
    assert finding_of(SafetyAssessment(candidate_id="c0", risk=0.1), 0.5)[:2] == ("satisfied", 0)
    audit = Audit(subject_message="m", subject_agent="critic", candidate_id="c0",
                  principle_id="harm", agrees=False, verdict="violated",
                  confidence=0.6)  # fmt: skip
    assert finding_of(audit, 0.9) == ("violated", 0.9, 0.6)


def test_episode_findings_make_the_batch_the_core_decides(core: CompiledCore) -> None:
    findings = EpisodeFindings(core, {"critic": 1, "judge": 2})
    findings.add("critic", "c0", "harm", "violated", 0.9, 0.9, "m1")
    findings.add("critic", "c1", "harm", "satisfied", 0.0, 0.9, "m2")
    findings.add("critic", "c1", "helpfulness", "violated", 0.3, 0.9, "m3")
    # the judge, one level up, overrules the critic on c1's helpfulness
    findings.add("judge", "c1", "helpfulness", "satisfied", 0.0, 0.8, "m4")
    assert findings.violations("c0") == ("harm",)
    assert findings.violations("c1") == ("helpfulness",)  # what any agent reported
    assert findings.of("critic", "c1") == [("harm", 0, "m2"), ("helpfulness", 1, "m3")]
    batch = findings.batch(
        ["c0", "c1"], judge_scores={"c0": 0.2, "c1": 0.8}, judge_confidence=0.6,
        context={}, audit_draw=0.99, rounds_left=0,
    )  # fmt: skip
    h, k = core.principle_index("harm"), core.principle_index("helpfulness")
    assert batch.verdict[0, 0, h] == VERDICT_VIOLATED and batch.verdict[0, 1, k] == 0
    assert batch.disagreement[0, 1, k] and not batch.disagreement[0, 0, h]
    assert batch.judge_score[0].tolist() == pytest.approx([0.2, 0.8])
    assert violated_principles(batch, core, ["c0", "c1"]) == {"c0": ("harm",), "c1": ()}
    decision = decide(batch, core)
    assert int(decision.chosen[0]) == 1  # the only acceptable candidate


def test_one_explainer_for_resolve_and_for_the_runtime(graph: PriorityGraph) -> None:
    violations = {"c0": {"harm"}, "c1": {"helpfulness"}}
    result = graph.resolve(violations)
    path, why = graph.explain("priority", "c1", violations, result.scores)
    assert (result.path, result.rationale) == (path, why)
    assert path[0] == "harm" and path[-1] == "helpfulness" and "wins by priority" in why
    scores = {"c0": 0.5, "c1": 0.52}
    close = {"c0": {"harm"}, "c1": {"privacy"}}
    for strategy, words in (("review", "judge"), ("human", "people"), (None, "margin")):
        path, why = graph.explain(strategy, "c0", close, scores, margin=0.1)
        assert path == ("c0=0.5", "c1=0.52") and "too close" in why and words in why
    path, why = graph.explain("weighted", "c0", close, {"c0": 0.1, "c1": 0.9})
    assert "weighted" in why and path == ("c0=0.1", "c1=0.9")


def test_an_episode_becomes_a_case_with_its_reasoning() -> None:
    prompt = Prompt(prompt_id="p1", messages=(Turn(role="user", content="hi"),),
                    context={"region": "eu"})  # fmt: skip
    draft = envelope(Draft(candidate_id="c0", text="hello", model="base"),
                     run="r", episode="e", sender="base", topic="episode.draft")  # fmt: skip
    critique = envelope(
        Critique(candidate_id="c0", principle_id="honesty", principle_version="1",
                 verdict="uncertain", rationale="hmm"),
        run="r", episode="e", sender="critic", topic="episode.critique", parents=(draft.id,),
    )  # fmt: skip
    policy = load_policy("escalation/default.yaml")
    case = case_from_episode(
        run="r", episode="e", prompt=prompt, candidates={"c0": "hello"},
        sources={"c0": "draft"}, order=["c0"], proposed="c0", triggers=("low_confidence",),
        violations={"c0": ()}, strategy="none", published=[draft, critique],
        message_ids=[draft.id, critique.id], policy=policy,
    )  # fmt: skip
    assert isinstance(case, CaseSubmission)
    assert case.reason == "low_confidence; agents proposed c0"
    assert [c.id for c in case.candidates] == ["c0"] and case.proposed == "c0"
    assert case.details["critiques"][0]["payload"]["rationale"] == "hmm"
    assert "drafts" not in case.details and set(DETAIL_KEYS) >= {"critique", "audit"}
    assert case.details["context"] == {"region": "eu"}
    assert case.priority == policy.case_priority(("low_confidence",))
    assert case.message_ids == (draft.id, critique.id)


def test_the_cast_is_found_by_capability() -> None:
    agents = {
        name: create_agent(role, name, None)
        for name, role in [("base", "base"), ("critic", "critic"), ("judge", "judge"),
                           ("fixer", "reviser"), ("people", "human")]
    }  # fmt: skip
    edges = [
        SimpleNamespace(supervisor="critic", subject="base", mode="every"),
        SimpleNamespace(supervisor="judge", subject="base", mode="every"),  # cannot assess
        SimpleNamespace(supervisor="judge", subject="critic", mode="on-flag"),
        SimpleNamespace(supervisor="people", subject="judge", mode="on-flag"),  # cannot audit
    ]
    cast = Cast.of("base", agents, edges)
    assert [e.supervisor for e in cast.assessors] == ["critic"]
    assert {k: [e.supervisor for e in v] for k, v in cast.auditors.items()} == {
        "critic": ["judge"],
        "base": ["critic", "judge"],  # audits follow reports: the base reports none
    }
    assert (cast.reviser, cast.judge) == ("fixer", "judge")
    with pytest.raises(ConfigError, match="cannot draft"):
        Cast.of("critic", agents, edges)
