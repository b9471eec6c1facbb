"""``oversight cycle``: oversight run -> SFT -> DPO -> evaluation, in rounds."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ._common import err_console, user_errors


def register(app: typer.Typer) -> None:
    @app.command()
    def cycle(
        out: Annotated[
            Path | None, typer.Option(help="Folder of the cycle's outputs (default cycle/).")
        ] = None,
        rounds: Annotated[int | None, typer.Option(help="Rounds (default 1).")] = None,
        hierarchy: Annotated[
            str | None, typer.Option(help="Hierarchy (default roles/embedded.yaml).")
        ] = None,
        config: Annotated[
            Path | None, typer.Option("--config", help="YAML of settings (field names as keys).")
        ] = None,
        harmful: Annotated[int | None, typer.Option(help="Harmful training prompts.")] = None,
        lookalike: Annotated[
            int | None, typer.Option(help="Safe training prompts that sound harmful.")
        ] = None,
        benign: Annotated[int | None, typer.Option(help="Ordinary safe training prompts.")] = None,
        eval_limit: Annotated[
            int | None, typer.Option(help="A seeded sample of N prompts per evaluation set.")
        ] = None,
        validation_limit: Annotated[
            int | None, typer.Option(help="Validation prompts per kind (harmful / safe).")
        ] = None,
        data_dir: Annotated[
            Path | None, typer.Option(help="Benchmark data (default $OVERSIGHT_DATA).")
        ] = None,
        bf16: Annotated[
            bool | None,
            typer.Option("--bf16/--fp32", help="Training precision (default: the machine's)."),
        ] = None,
        seed: Annotated[int | None, typer.Option(help="Seed.")] = None,
        track: Annotated[
            bool | None,
            typer.Option(
                "--track/--no-track",
                help="Track drift, diversity, refusals and jailbreaks per round (default on).",
            ),
        ] = None,
        jailbreak_limit: Annotated[
            int | None, typer.Option(help="JailbreakBench artifact prompts tracked (default 100).")
        ] = None,
        on_policy: Annotated[
            bool | None,
            typer.Option(
                "--on-policy/--no-on-policy",
                help="DPO pairs against the SFT model's own disagreements (default on).",
            ),
        ] = None,
        mix: Annotated[
            list[float] | None,
            typer.Option(
                help="Interpolation start + A x (trained - start) to validate (repeat; "
                "default 0.6, 0.75, 0.9)."
            ),
        ] = None,
        select: Annotated[
            str | None,
            typer.Option(help="Model choice on validation: maximin (default) or balanced."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    ) -> None:
        """Train the base model on its own overseen answers and measure what changed.

        Each stage's output stays under OUT/round-N/; the same command again resumes.
        """
        from ..training.cycle import cycle_table, load_cycle_settings, run_cycle

        with user_errors():
            settings = load_cycle_settings(
                config, out=str(out) if out else None, rounds=rounds, hierarchy=hierarchy,
                harmful=harmful, lookalike=lookalike, benign=benign, eval_limit=eval_limit,
                validation_limit=validation_limit,
                data_dir=str(data_dir) if data_dir else None, bf16=bf16, seed=seed,
                track=track, jailbreak_limit=jailbreak_limit, on_policy=on_policy,
                mix=mix or None, select=select,
            )  # fmt: skip
            # Trainers print their logs to stdout; keep stdout for the result.
            with contextlib.redirect_stdout(sys.stderr):
                report = run_cycle(settings, log=lambda m: err_console.print(f"[dim]{m}[/dim]"))
        if as_json:
            typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        else:
            typer.echo(cycle_table(report))
            typer.echo(f"report: {Path(settings.out) / 'cycle.json'}")
            if "tracking" in report:
                typer.echo(f"tracking plot: {report['tracking']['plot']}")
