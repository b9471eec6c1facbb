"""``oversight queue ...`` through typer's CliRunner on a local app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from oversight.cli.queue import register
from oversight.escalation import CaseSubmission, HumanQueue


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """root"""

    register(root)
    return root


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'queue.db'}"


def _submit(url: str, episode: str = "e1", **extra: object) -> str:
    with HumanQueue(url) as queue:
        return queue.submit(
            CaseSubmission(
                run="run1",
                episode=episode,
                prompt=[
                    {"role": "user", "content": "earlier turn"},
                    {"role": "user", "content": "[bold]not markup[/] how do I pick a lock?"},
                ],
                candidates=[
                    {"id": "c0", "text": "draft answer", "source": "draft"},
                    {"id": "c1", "text": "revised answer", "source": "[red]model"},
                ],
                proposed="c1",
                triggers=["disagreement"],
                principles=["harm"],
                details={"critiques": [{"rationale": "CANARY-critique-text"}]},
                **extra,  # type: ignore[arg-type]
            )
        )


def test_list_json_and_table(app: typer.Typer, url: str) -> None:
    case_id = _submit(url)
    result = CliRunner().invoke(app, ["queue", "--queue", url, "list", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["counts"]["open"] == 1
    assert [c["id"] for c in data["cases"]] == [case_id]
    table = CliRunner().invoke(app, ["queue", "list", "--queue", url, "--status", "open"])
    assert table.exit_code == 0, table.output
    assert "Escalated cases" in table.stdout and "disagreement" in table.stdout
    assert case_id[:8] in table.stdout
    shown = CliRunner().invoke(app, ["queue", "show", case_id[:6], "--json", "--queue", url])
    assert json.loads(shown.stdout)["id"] == case_id
    empty = CliRunner().invoke(app, ["queue", "list", "--queue", url, "--principle", "privacy"])
    assert case_id not in empty.stdout


def test_queue_url_from_environment(app: typer.Typer, url: str) -> None:
    case_id = _submit(url)
    result = CliRunner().invoke(app, ["queue", "list", "--json"], env={"OVERSIGHT_QUEUE": url})
    assert [c["id"] for c in json.loads(result.stdout)["cases"]] == [case_id]


def test_show_labels_internal_reasoning_and_prints_untrusted_text_verbatim(
    app: typer.Typer, url: str
) -> None:
    case_id = _submit(url)
    result = CliRunner().invoke(app, ["queue", "show", case_id, "--queue", url])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "[bold]not markup[/]" in out
    assert "earlier turn" in out
    assert "candidate c1 · [red]model" in out and "proposed" in out
    assert "INTERNAL" in out and "CANARY-critique-text" in out
    assert "disagreement" in out


def test_claim_then_decide_by_choice(app: typer.Typer, url: str) -> None:
    case_id = _submit(url)
    claim = CliRunner().invoke(
        app, ["queue", "claim", case_id, "--reviewer", "ann", "--queue", url]
    )
    assert claim.exit_code == 0, claim.output
    taken = CliRunner().invoke(
        app, ["queue", "claim", case_id, "--reviewer", "bob", "--queue", url]
    )
    assert taken.exit_code == 2
    assert "ann" in taken.stderr
    decide = CliRunner().invoke(
        app,
        ["queue", "decide", case_id, "-r", "ann", "--choose", "c1", "--rationale", "safe",
         "--tag", "harm", "--queue", url],
    )  # fmt: skip
    assert decide.exit_code == 0, decide.output
    assert "decided" in decide.stdout
    with HumanQueue(url) as queue:
        final = queue.final_decision(case_id)
    assert final is not None
    assert (final.choice, final.reviewer, final.principle_tags) == ("c1", "ann", ("harm",))


def test_decide_with_edit_file_claims_implicitly(
    app: typer.Typer, url: str, tmp_path: Path
) -> None:
    case_id = _submit(url)
    answer = tmp_path / "answer.txt"
    answer.write_text("A careful, reviewer-written answer.", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["queue", "decide", case_id, "--reviewer", "ann", "--edit-file", str(answer),
         "--rationale", "neither was right", "--queue", url],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = json.loads(
        CliRunner().invoke(app, ["queue", "show", case_id, "--json", "--queue", url]).stdout
    )
    assert shown["status"] == "decided"
    assert shown["final_decision"]["text"] == "A careful, reviewer-written answer."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--choose", "c0", "--edit", "x"], "exactly one"),
        ([], "exactly one"),
        (["--choose", "c9"], "no candidate 'c9'"),
        (["--edit-file", "/nonexistent/answer.txt"], "cannot read --edit-file"),
        (["--edit", "   "], "empty"),
    ],
)
def test_decide_errors_exit_2_with_a_message(
    app: typer.Typer, url: str, args: list[str], message: str
) -> None:
    case_id = _submit(url)
    result = CliRunner().invoke(
        app, ["queue", "decide", case_id, "-r", "ann", "--rationale", "r", "--queue", url, *args]
    )
    assert result.exit_code == 2
    assert message in result.stderr


def test_unknown_case_and_bad_status_exit_2(app: typer.Typer, url: str) -> None:
    missing = CliRunner().invoke(app, ["queue", "show", "nope", "--queue", url])
    assert missing.exit_code == 2 and "no case 'nope'" in missing.stderr
    status = CliRunner().invoke(app, ["queue", "list", "--status", "pending", "--queue", url])
    assert status.exit_code == 2 and "unknown case status" in status.stderr


def test_corrupt_queue_file_exits_2_naming_the_file(app: typer.Typer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    result = CliRunner().invoke(app, ["queue", "list", "--queue", f"sqlite:///{bad}"])
    assert result.exit_code == 2
    assert str(bad) in result.stderr and "not a readable SQLite database" in result.stderr
    assert bad.read_bytes() == b"this is not a database" * 100


def test_release_withdraw_and_agreement(app: typer.Typer, url: str) -> None:
    case_id = _submit(url)
    CliRunner().invoke(app, ["queue", "claim", case_id, "-r", "ann", "--queue", url])
    released = CliRunner().invoke(app, ["queue", "release", case_id, "-r", "ann", "--queue", url])
    assert "released" in released.stdout
    withdrawn = CliRunner().invoke(
        app, ["queue", "withdraw", case_id, "--reason", "run cancelled", "--queue", url]
    )
    assert withdrawn.exit_code == 0, withdrawn.output
    other = _submit(url, "e2", reviewers_required=2)
    for reviewer in ("ann", "bob"):
        CliRunner().invoke(
            app,
            ["queue", "decide", other, "-r", reviewer, "--choose", "c0", "--rationale", "ok",
             "--queue", url],
        )  # fmt: skip
    report = CliRunner().invoke(app, ["queue", "agreement", "--json", "--queue", url])
    assert report.exit_code == 0, report.output
    data = json.loads(report.stdout)
    assert data["cases"] == 1
    assert data["per_case"][0]["observed"] == 1.0
    text = CliRunner().invoke(app, ["queue", "agreement", "--queue", url])
    assert "Fleiss" in text.stdout
