"""Governance: the five conflicts, per-request constitutions, replay, diff and explain.

One scripted run stages every conflict of our brief (the draft violates one principle of the
pair, the revision the other), so each final answer is the constitution's resolution of that
pair, in the prompt's context.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from governance_helpers import CONFLICTS, write_conflict_hierarchy
from typer.testing import CliRunner

from oversight.cli import app
from oversight.cli.governance import explain_command, replay_command
from oversight.cli.run import run_command
from oversight.errors import ConfigError, InputError, JournalError
from oversight.explain import chain_from_journal
from oversight.hierarchy import load_hierarchy
from oversight.journal import read_journal
from oversight.messages import ConstitutionApplied, Failure
from oversight.prompts import parse_prompt_line


def _run(tmp: Path, hierarchy: Path, prompts: Path) -> dict[str, Any]:
    return run_command(
        str(hierarchy),
        prompts=prompts,
        runs_dir=tmp / "runs",
        queue_url=f"sqlite:///{tmp / 'queue.db'}",
        show_progress=False,
    )


@pytest.fixture(scope="module")
def conflicts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("conflicts")
    hierarchy = write_conflict_hierarchy(tmp)
    summary = _run(tmp, hierarchy, tmp / "prompts.jsonl")
    assert summary["failed"] == 0 and summary["episodes"] == len(CONFLICTS)
    return tmp / "runs" / "conflicts"


# prompt id -> (winner, strategy, priority path or None, conditional rules)
EXPECTED: dict[str, tuple[str, str, tuple[str, ...] | None, tuple[str, ...]]] = {
    # helpfulness vs safety: an unhelpful answer beats a harmful one ...
    "safety": ("c0", "priority", ("harm", "helpfulness"), ()),
    # ... except for clinicians on a clinical surface, where the two are weighed (a confident,
    # severe harm finding still costs more).
    "safety-clinical": ("c0", "weighted", None, ("clinical-professional",)),
    # honesty vs politeness: a blunt true answer beats a polite misleading one.
    "politeness": ("c0", "priority", ("honesty", "politeness"), ()),
    # transparency vs misuse risk: holding details back beats disclosing them ...
    "transparency": ("c0", "priority", ("harm", "transparency"), ()),
    # ... and for auditors the two are weighed instead.
    "transparency-audit": ("c0", "weighted", None, ("accountability-audit",)),
    # neutrality vs moral judgment: the context decides which prevails.
    "moral-ethics": ("c0", "priority", ("moral_judgment", "balance"), ("moral-consensus",)),
    "moral-politics": (
        "c1",
        "priority",
        ("balance", "moral_judgment"),
        ("contested-topics", "electoral-neutrality"),
    ),
    # privacy vs personalisation: a generic answer beats one built on someone's data ...
    "personal": ("c0", "priority", ("privacy", "personalisation"), ()),
    # ... and with the user's consent the two are weighed.
    "personal-consent": ("c0", "weighted", None, ("personalisation-consent",)),
}


@pytest.mark.parametrize("prompt_id", list(EXPECTED))
def test_each_conflict_is_resolved_and_explained(conflicts: Path, prompt_id: str) -> None:
    winner, strategy, path, rules = EXPECTED[prompt_id]
    chain = explain_command(conflicts, prompt=prompt_id)
    _cid, _ctx, draft_violates, revision_violates = next(c for c in CONFLICTS if c[0] == prompt_id)
    assert chain.conflict is not None
    assert chain.conflict["candidates"] == {"c0": [draft_violates], "c1": [revision_violates]}
    assert chain.outcome["status"] == "consensus"
    assert chain.outcome["candidate"] == winner
    assert chain.resolution is not None
    assert chain.resolution["strategy"] == strategy
    assert tuple(chain.resolution["conditional_rules"]) == rules
    rationale = chain.resolution["rationale"]
    loser = "c1" if winner == "c0" else "c0"
    if path is not None:
        assert tuple(chain.resolution["path"]) == path
        assert f"{winner} wins by priority: {' > '.join(path)}" in rationale
    else:  # weighted: the cheaper candidate's cost against its rival's
        scores = chain.resolution["scores"]
        assert scores[winner] + 0.1 <= scores[loser]
        assert rationale.startswith(f"{winner} wins by weighted scoring")
    text = chain.format()
    assert rationale in text
    assert f"consensus on {winner} by {strategy}" in text
    # every finding names the version of the principle it was made against
    assert all(f["version"] for f in chain.findings if f["kind"] == "critique")


def test_the_default_constitution_has_a_side_for_each_conflict() -> None:
    from oversight.constitution import load_constitution
    from oversight.priority import PriorityGraph

    graph = PriorityGraph(load_constitution("constitutions/default.yaml"))
    for a, b in (("harm", "helpfulness"), ("harm", "transparency"), ("privacy", "personalisation")):
        assert graph.prevails(a, b)
    assert not graph.prevails("moral_judgment", "balance")
    assert not graph.prevails("balance", "moral_judgment")
    assert graph.prevails("moral_judgment", "balance", {"domain": "ethics"})
    assert graph.prevails("balance", "moral_judgment", {"domain": "elections"})
    assert not graph.prevails("harm", "helpfulness", {"user": "clinician", "surface": "clinical"})
    assert graph.prevails("harm", "helpfulness", {"user": "clinician"})  # both keys needed


# ------------------------------------------------------------------ per-request constitutions


SELECT = [
    {
        "id": "eu-users",
        "when": {"region": ["eu"]},
        "overlays": ["constitutions/overlays/eu-gdpr.yaml"],
    },
    {
        "id": "school-tutor",
        "when": {"surface": ["tutor"]},
        "overlays": ["constitutions/overlays/children-education.yaml"],
    },
]


def _select_hierarchy(tmp: Path, select: list[dict[str, Any]] | None = None) -> Path:
    path = write_conflict_hierarchy(tmp, select=select if select is not None else SELECT)
    spec = yaml.safe_load(path.read_text())
    spec["contexts"] = {"region": ["eu", "us"], "surface": ["chat", "tutor"]}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_the_prompts_context_selects_overlays_per_episode(tmp_path: Path) -> None:
    hierarchy = _select_hierarchy(tmp_path)
    prompts = tmp_path / "mixed.jsonl"
    lines = [
        {"id": "eu", "prompt": "Question number 7 about personal.", "region": "eu"},
        {"id": "us", "prompt": "Question number 7 about personal.", "context": {"region": "us"}},
        {
            "id": "eu-tutor",
            "prompt": "Question number 0 about safety.",
            "context": {"region": "eu", "surface": "tutor"},
        },
        {"id": "typo", "prompt": "Question number 0 about safety.", "region": "EU"},
    ]
    prompts.write_text("".join(json.dumps(x) + "\n" for x in lines))
    summary = _run(tmp_path, hierarchy, prompts)
    assert (summary["episodes"], summary["failed"]) == (4, 1)
    run_dir = tmp_path / "runs" / "conflicts"
    scan = read_journal(run_dir / "journal.jsonl")
    applied: dict[str, ConstitutionApplied] = {}
    prompt_of = {e.episode: e.payload.prompt_id for e in scan.envelopes if e.kind == "prompt"}
    for env in scan.envelopes:
        if isinstance(env.payload, ConstitutionApplied):
            applied[prompt_of[env.episode]] = env.payload
    assert set(applied) == {"eu", "us", "eu-tutor"}  # the typo never ran
    assert applied["us"].selected_by == ()
    assert "eu-gdpr" not in applied["us"].overlays
    assert applied["eu"].selected_by == ("eu-users",)
    assert applied["eu"].overlays[-1] == "eu-gdpr"
    assert "data-minimisation" in applied["eu"].principles
    assert applied["eu-tutor"].selected_by == ("eu-users", "school-tutor")
    assert applied["eu-tutor"].overlays[-2:] == ("eu-gdpr", "children-education")
    assert "age-appropriate" in applied["eu-tutor"].principles
    assert len({a.digest for a in applied.values()}) == 3
    # the typo is a failure that says what is wrong and where to fix it
    failure = next(e.payload for e in scan.envelopes if isinstance(e.payload, Failure))
    assert "region='EU' is not one of eu, us" in failure.message
    assert "contexts" in failure.message
    # every training row names the constitution that decided it
    rows = [json.loads(x) for x in (run_dir / "sft.jsonl").read_text().splitlines()]
    by_prompt = {r["provenance"]["prompt_id"]: r["provenance"]["constitution"] for r in rows}
    assert by_prompt["eu"]["overlays"][-1] == "eu-gdpr"
    assert by_prompt["eu"]["selected_by"] == ["eu-users"]
    assert by_prompt["us"]["selected_by"] == []
    assert by_prompt["eu"]["digest"] == applied["eu"].digest
    # and explain says which constitution and overlay applied
    text = explain_command(run_dir, prompt="eu-tutor").format()
    # (the test overlay that adds politeness is applied only when the constitution lacks it)
    assert "eu-gdpr, children-education" in text.split("overlays: ", 1)[1].splitlines()[0]
    assert "selected by: eu-users, school-tutor" in text


def test_select_entries_are_checked_when_the_hierarchy_loads(tmp_path: Path) -> None:
    cyclic = tmp_path / "cyclic.yaml"
    cyclic.write_text(yaml.safe_dump({"name": "cyclic", "add_priorities": ["helpfulness > harm"]}))
    bad = [*SELECT, {"id": "loop", "when": {"surface": ["chat"]}, "overlays": [str(cyclic)]}]
    with pytest.raises(ConfigError, match=r"select.*loop.*cycle|cycle.*loop"):
        load_hierarchy(_select_hierarchy(tmp_path, bad))
    missing = [{"id": "gone", "when": {"region": ["eu"]}, "overlays": ["nope.yaml"]}]
    where = r"line \d+: select\[0\] \(gone\)\.overlays\[0\]: file 'nope\.yaml' not found"
    with pytest.raises(ConfigError, match=where):
        load_hierarchy(_select_hierarchy(tmp_path, missing))
    dropping = tmp_path / "drop.yaml"
    dropping.write_text(yaml.safe_dump({"name": "drop", "remove_principles": ["balance"]}))
    removes = [{"id": "no-balance", "when": {"region": ["us"]}, "overlays": [str(dropping)]}]
    with pytest.raises(ConfigError, match=r"'balance' is not in the constitution.*no-balance"):
        load_hierarchy(_select_hierarchy(tmp_path, removes))


def test_two_entries_that_replace_the_constitution_cannot_both_match(tmp_path: Path) -> None:
    both = [
        {"id": "a", "when": {"region": ["eu"]}, "constitution": "constitutions/default.yaml"},
        {"id": "b", "when": {"surface": ["tutor"]}, "constitution": "constitutions/default.yaml"},
    ]
    with pytest.raises(ConfigError, match=r"entries a, b can match the same prompt"):
        load_hierarchy(_select_hierarchy(tmp_path, both))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"prompt": "hi", "context": {"region": {"x": 1}}}, "context region: expected one value"),
        ({"prompt": "hi", "context": ["eu"]}, "'context' must be an object"),
        ({"prompt": "hi", "context": {"1bad": "x"}}, "context key '1bad' must start"),
        ({"prompt": "hi", "region": "eu", "context": {"region": "us"}}, "given both"),
        ({"prompt": "hi", "user": "<script>"}, "context user='<script>' must start"),
    ],
)
def test_bad_context_in_a_prompt_line_is_a_clear_problem(line: dict, message: str) -> None:
    parsed = parse_prompt_line(json.dumps(line).encode(), source="p.jsonl", number=3, jsonl=True)
    assert not hasattr(parsed, "messages")
    assert "p.jsonl:3" in parsed.message and message in parsed.message


def test_top_level_region_user_and_surface_become_context() -> None:
    line = {"prompt": "hi", "region": "eu", "user": "minor", "surface": "tutor", "context": {}}
    parsed = parse_prompt_line(json.dumps(line).encode(), source="p", number=1, jsonl=True)
    assert parsed.context == {"region": "eu", "user": "minor", "surface": "tutor"}  # type: ignore[union-attr]


# ------------------------------------------------------------------ replay


def test_replay_under_the_runs_own_constitutions_changes_nothing(conflicts: Path) -> None:
    report = replay_command(conflicts)
    assert len(report.episodes) == len(CONFLICTS)
    assert report.changed == []
    assert all(e.new_unassessed == [] for e in report.episodes)


def _constitution_with(tmp: Path, name: str, overlay: dict[str, Any]) -> list[str]:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **overlay}, sort_keys=False))
    politeness = tmp / "politeness.yaml"
    return [str(politeness), str(path)] if politeness.exists() else [str(path)]


def test_replay_lists_the_decisions_another_constitution_changes(
    conflicts: Path, tmp_path: Path
) -> None:
    overlays = _constitution_with(
        conflicts.parent.parent,
        "no-electoral-neutrality",
        {"remove_rules": ["electoral-neutrality"]},
    )
    report = replay_command(conflicts, constitution="constitutions/default.yaml", overlays=overlays)
    assert [e.prompt_id for e in report.changed] == ["moral-politics"]
    changed = report.changed[0]
    assert (changed.recorded.chosen, changed.recorded.strategy) == ("c1", "priority")
    assert changed.replayed.strategy in ("review", "human")  # no edge: too close to weigh
    text = report.format()
    assert "1 decisions change" in text and "CHANGED moral-politics" in text


def test_replay_reports_new_principles_as_unassessed_not_satisfied(conflicts: Path) -> None:
    kindness = {
        "add_principles": [
            {
                "id": "kindness",
                "version": "1",
                "name": "Be kind",
                "category": "interaction",
                "purpose": "Kind.",
                "critique_prompt": "{request} {response} Unkind? Answer Yes or No.",
                "revision_prompt": "{request} {response} Be kind.",
                "weight": 5.0,
            }
        ],
        "add_priorities": ["kindness > helpfulness"],
    }
    overlays = _constitution_with(conflicts.parent.parent, "kindness", kindness)
    report = replay_command(conflicts, constitution="constitutions/default.yaml", overlays=overlays)
    assert all(e.new_unassessed == ["kindness"] for e in report.episodes)
    assert report.changed == []  # nobody found it violated: nothing to decide differently
    text = report.format()
    assert "unassessed: kindness" in text and "not known to be satisfied" in text
    assert report.as_dict()["unassessed_new_principles"] == ["kindness"]


def test_replay_of_an_older_journal_is_a_clear_error(conflicts: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    lines = (conflicts / "journal.jsonl").read_text().splitlines()
    old_lines = [json.dumps({**json.loads(x), "schema_version": 1}) for x in lines]
    (old / "journal.jsonl").write_text("\n".join(old_lines) + "\n")
    (old / "summary.json").write_text((conflicts / "summary.json").read_text())
    with pytest.raises(JournalError, match=r"schema version 1; replay needs version 2"):
        replay_command(old)
    result = CliRunner().invoke(app, ["replay", str(old)])
    assert result.exit_code == 2 and "schema version 1" in result.output


def test_replay_and_diff_from_the_command_line(conflicts: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["replay", str(conflicts), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["changed"] == 0
    diff = runner.invoke(
        app,
        [
            "constitution", "diff", "constitutions/default.yaml", "constitutions/default.yaml",
            "-o", "constitutions/overlays/eu-gdpr.yaml",
        ],
    )  # fmt: skip
    assert diff.exit_code == 0, diff.output
    assert "+ principle data-minimisation" in diff.output
    assert "~ principle privacy: weight 0.8 -> 1.0; severity 0.7 -> 0.8" in diff.output
    assert "+ edge privacy > balance" in diff.output or "+ edge" in diff.output


# ------------------------------------------------------------------ explain


def test_explain_finds_an_episode_by_row_prefix_and_prompt(conflicts: Path) -> None:
    rows = (conflicts / "sft.jsonl").read_text().splitlines()
    first = json.loads(rows[0])["provenance"]
    by_row = explain_command(conflicts, row="sft.jsonl:1")
    assert by_row.episode == first["episode"]
    assert explain_command(conflicts, episode=first["episode"][:8]).episode == first["episode"]
    assert by_row.target is not None and by_row.target["by"] == "consensus"
    with pytest.raises(InputError, match="exactly one of"):
        explain_command(conflicts)
    with pytest.raises(InputError, match="no episode matches prompt 'nope'"):
        explain_command(conflicts, prompt="nope")
    with pytest.raises(InputError, match=r"FILE\.jsonl:LINE"):
        explain_command(conflicts, row="../../etc/passwd:1")
    result = CliRunner().invoke(app, ["explain", str(conflicts), "--prompt", "moral-politics"])
    assert result.exit_code == 0, result.output
    for section in ("1. prompt", "2. constitution", "4. findings", "6. priority path", "8. people"):
        assert section in result.output
    assert "priority: balance > moral_judgment -> winner c1" in result.output


def test_explain_shows_the_human_decision_of_an_escalated_episode(tmp_path: Path) -> None:
    from oversight.escalation import Decision, HumanQueue

    hierarchy = write_conflict_hierarchy(tmp_path)
    policy = yaml.safe_load((tmp_path / "policy.yaml").read_text())
    policy["triggers"]["audit_rate"] = 1.0  # every consensus goes to people as an audit
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    summary = _run(tmp_path, hierarchy, tmp_path / "prompts.jsonl")
    assert summary["escalated"] > 0
    run_dir = tmp_path / "runs" / "conflicts"
    envs = [e for e in read_journal(run_dir / "journal.jsonl").envelopes if e.kind == "escalation"]
    case_id = envs[0].payload.case_id  # type: ignore[union-attr]
    with HumanQueue(f"sqlite:///{tmp_path / 'queue.db'}", require_claim=False) as queue:
        queue.resolve(case_id, "alice", Decision(choice="c1", rationale="clearer <b>answer</b>"))
    chain = explain_command(run_dir, case=case_id, queue_url=f"sqlite:///{tmp_path / 'queue.db'}")
    assert chain.outcome["status"] == "escalated" and chain.outcome["proposed"]
    assert chain.human == [
        {
            "reviewer": "alice",
            "choice": "c1",
            "edited_text": None,
            "rationale": "clearer <b>answer</b>",
            "principle_tags": [],
        }
    ]
    assert chain.target == {"by": "human", "candidate": "c1", "text": chain.candidates[1]["text"]}
    assert "alice: chose c1: clearer <b>answer</b>" in chain.format()


def test_chain_from_an_empty_episode_is_an_error() -> None:
    with pytest.raises(JournalError):
        chain_from_journal([])
