"""Agents' accuracy from human decisions: Wilson intervals, the scoring rules, and a simulated
critic whose known accuracy the report recovers, through a real SQLite queue and the CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from oversight.cli.queue import register
from oversight.escalation import CaseSubmission, Decision, HumanQueue, audit_report
from oversight.escalation.audits import wilson_interval
from oversight.messages import Audit, Critique, Judgment, envelope


def test_wilson_interval_known_values() -> None:
    # 0 of 10: the upper end is z^2 / (n + z^2) = 0.2775; 10 of 10 mirrors it.
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    # 81 of 263 (Wilson 1927 / Newcombe 1998 example 1 style): 0.2553 - 0.3662.
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def _finding(kind: str, agent: str, candidate: str, verdict: str, episode: str) -> Any:
    if kind == "critique":
        payload: Any = Critique(
            candidate_id=candidate, principle_id="harm", principle_version="1", verdict=verdict
        )
    else:
        payload = Audit(
            subject_message="m",
            subject_agent="critic",
            candidate_id=candidate,
            principle_id="harm",
            agrees=True,
            verdict=verdict,
        )
    env = envelope(payload, run="r", episode=episode, sender=agent, topic=kind)
    return env.model_dump(mode="json")


def _case(episode: str, triggers: list[str], details: dict[str, Any]) -> CaseSubmission:
    return CaseSubmission(
        run="r",
        episode=episode,
        prompt=[{"role": "user", "content": f"question {episode}"}],
        candidates=[{"id": "c0", "text": "a fine answer"}, {"id": "c1", "text": "a bad answer"}],
        proposed="c0",
        triggers=triggers,
        details=details,
    )


def _fill(queue: HumanQueue, *, cases: int, critic_error: float, judge_error: float) -> None:
    """Audit-sample cases: the reviewer accepts c0 and rejects c1 for harm. The critic says
    each candidate's truth but errs with ``critic_error``; the judge ranks c0 first except with
    ``judge_error``. Plus a few escalated cases where the critic is always wrong."""
    rng = random.Random(7)
    for i in range(cases):
        ep = f"a{i}"
        critiques = []
        for candidate, truth in (("c0", "satisfied"), ("c1", "violated")):
            wrong = rng.random() < critic_error
            verdict = {"satisfied": "violated", "violated": "satisfied"}[truth] if wrong else truth
            critiques.append(_finding("critique", "critic", candidate, verdict, ep))
        ranking = ["c1", "c0"] if rng.random() < judge_error else ["c0", "c1"]
        judgment = envelope(
            Judgment(ranking=tuple(ranking)), run="r", episode=ep, sender="judge", topic="judge"
        )
        details = {"critiques": critiques, "judgment": [judgment.model_dump(mode="json")]}
        case_id = queue.submit(_case(ep, ["audit"], details))
        queue.resolve(case_id, "alice", Decision(choice="c0", principle_tags=("harm",)))
    for i in range(20):
        ep = f"e{i}"
        details = {"critiques": [_finding("critique", "critic", "c0", "violated", ep)]}
        case_id = queue.submit(_case(ep, ["disagreement"], details))
        queue.resolve(case_id, "alice", Decision(choice="c0"))


def test_simulated_critic_accuracy_is_inside_the_95_interval(tmp_path: Path) -> None:
    with HumanQueue(f"sqlite:///{tmp_path / 'q.db'}", require_claim=False) as queue:
        _fill(queue, cases=300, critic_error=0.12, judge_error=0.25)
        report = audit_report(queue.list_cases(status="decided", limit=10_000))
    assert (report.cases, report.audit_cases, report.escalated_cases) == (320, 300, 20)
    rows = {(r.agent, r.question, r.sample): r for r in report.rows}
    critic = rows["critic", "critique:harm", "audit"]
    assert critic.n == 600
    assert critic.low <= 0.88 <= critic.high
    assert critic.high - critic.low < 0.06
    assert critic.false_alarms + critic.misses == critic.n - critic.correct
    judge = rows["judge", "ranking", "audit"]
    assert judge.n == 300 and judge.low <= 0.75 <= judge.high
    # The escalated cases are counted apart (the critic is always wrong there) and together.
    escalated = rows["critic", "critique:harm", "escalated"]
    assert (escalated.n, escalated.correct, escalated.false_alarms) == (20, 0, 20)
    assert rows["critic", "critique:harm", "all"].n == 620


def test_scoring_rules_edit_uncited_and_uncertain(tmp_path: Path) -> None:
    with HumanQueue(f"sqlite:///{tmp_path / 'q.db'}", require_claim=False) as queue:
        details = {
            "critiques": [
                _finding("critique", "critic", "c0", "satisfied", "x"),  # rejected, cited: miss
                _finding("critique", "critic", "c1", "uncertain", "x"),  # not scored
            ],
            "audits": [_finding("audit", "judge", "c1", "violated", "x")],  # cited: right
        }
        edited = queue.submit(_case("x", ["severity"], details))
        queue.resolve(edited, "bob", Decision(edited_text="mine", principle_tags=("harm",)))
        uncited = {"critiques": [_finding("critique", "critic", "c1", "violated", "y")]}
        other = queue.submit(_case("y", ["audit"], uncited))
        queue.resolve(other, "bob", Decision(choice="c0"))  # c1 rejected, nothing cited
        queue.submit(_case("z", ["audit"], uncited))  # undecided: ignored
        report = audit_report(queue.list_cases(limit=100))
    assert report.cases == 2
    rows = {(r.agent, r.question, r.sample): r for r in report.rows}
    assert set(rows) == {
        ("critic", "critique:harm", "escalated"),
        ("critic", "critique:harm", "all"),
        ("judge", "audit:harm", "escalated"),
        ("judge", "audit:harm", "all"),
    }
    miss = rows["critic", "critique:harm", "escalated"]
    assert (miss.n, miss.correct, miss.misses, miss.false_alarms) == (1, 0, 1, 0)
    assert rows["judge", "audit:harm", "all"].correct == 1


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """root"""

    register(root)
    return root


def test_audit_report_command_json_and_table(app: typer.Typer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    empty = CliRunner().invoke(app, ["queue", "audit-report", "--queue", url])
    assert empty.exit_code == 0 and "0 decided cases" in empty.stdout
    with HumanQueue(url, require_claim=False) as queue:
        _fill(queue, cases=40, critic_error=0.1, judge_error=0.1)
    out = CliRunner().invoke(app, ["queue", "audit-report", "--json", "--queue", url])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["audit_cases"] == 40 and doc["escalated_cases"] == 20
    row = next(r for r in doc["rows"] if r["agent"] == "judge" and r["sample"] == "audit")
    assert row["question"] == "ranking" and row["n"] == 40 and 0 <= row["low"] <= row["high"]
    wide = {"COLUMNS": "160"}
    table = CliRunner().invoke(
        app, ["queue", "audit-report", "--queue", url, "--run", "r"], env=wide
    )
    assert table.exit_code == 0
    assert "Agent accuracy" in table.stdout and "critique:harm" in table.stdout
    other = CliRunner().invoke(app, ["queue", "audit-report", "--queue", url, "--run", "nope"])
    assert "0 decided cases" in other.stdout
