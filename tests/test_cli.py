"""The command line: check's exit status and messages, schema, run --json."""

from __future__ import annotations

import json
from pathlib import Path

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
