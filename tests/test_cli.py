"""The command line: check's exit status and messages, schema, run --json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from oversight.cli import app

runner = CliRunner()


def test_check_accepts_the_shipped_configs() -> None:
    paths = [str(p) for p in Path("oversight/data").rglob("*.yaml")]
    result = runner.invoke(app, ["check", *paths])
    assert result.exit_code == 0, result.output
    assert result.output.count("✓") == len(paths)


def test_check_names_the_file_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nagents:\n  - {name: base, role: wizard, model: m}\n"
        "models: {m: {backend: scripted}}\n"
    )
    result = runner.invoke(app, ["check", str(bad)])
    assert result.exit_code == 2
    assert "bad.yaml" in result.output and "wizard" in result.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("principles: [\n")
    result = runner.invoke(app, ["check", str(broken)])
    assert result.exit_code == 2 and "broken.yaml" in result.output


def test_schema_prints_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert "Envelope" in json.loads(result.output)["title"]


def test_run_json_summary(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "run",
            "roles/default.yaml",
            "--limit",
            "5",
            "--runs-dir",
            str(tmp_path),
            "--queue",
            f"sqlite:///{tmp_path / 'q.db'}",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["episodes"] == 5
    assert (tmp_path / "default" / "summary.json").exists()


def test_run_with_a_missing_prompt_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["run", "--prompts", str(tmp_path / "nope.jsonl"), "--runs-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "nope.jsonl" in result.output


def test_run_exits_1_when_episodes_fail_unless_the_budget_allows(tmp_path: Path) -> None:
    prompts = tmp_path / "p.jsonl"
    # The second line is malformed JSON: its episode fails, the other three run.
    prompts.write_text(
        '{"id": "a", "prompt": "Name a fruit."}\n{"id": "b", "prompt": \n'
        '{"id": "c", "prompt": "Name a colour."}\n{"id": "d", "prompt": "Name a tree."}\n'
    )

    def run(*budget: str) -> Any:
        name = f"r{len(list(tmp_path.glob('r*')))}"  # a fresh run each time
        return runner.invoke(
            app,
            ["run", "roles/default.yaml", "--prompts", str(prompts), "--runs-dir",
             str(tmp_path), "--name", name, "--queue", f"sqlite:///{tmp_path / 'q.db'}",
             "--json", *budget],
        )  # fmt: skip

    failed = run()
    assert failed.exit_code == 1, failed.output
    assert "1 of 4 episodes failed (allowed: 0" in failed.stderr
    assert json.loads(failed.stdout)["failed"] == 1  # the summary is still printed
    for budget in ("1", "25%", "0.3"):
        assert run("--max-failures", budget).exit_code == 0, budget
    assert run("--max-failures", "20%").exit_code == 1  # floor(0.2 * 4) = 0
    bad = run("--max-failures", "lots")
    assert bad.exit_code == 2 and "--max-failures 'lots'" in bad.output
