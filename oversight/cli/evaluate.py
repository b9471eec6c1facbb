"""``oversight evaluate``: how accurate is each overseer of a hierarchy, on labelled sets."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from ._common import err_console, user_errors


def register(app: typer.Typer) -> None:
    @app.command()
    def evaluate(
        hierarchy: Annotated[str, typer.Argument(help="Hierarchy YAML, e.g. roles/embedded.yaml.")],
        sets: Annotated[
            list[str] | None,
            typer.Option(
                "--set",
                help="A registered set (xstest_safe, harmbench, xstest_completions_gpt4, ...) or "
                "a JSONL file of labelled examples; repeat. Default: every registered set found.",
            ),
        ] = None,
        agents: Annotated[
            list[str] | None,
            typer.Option("--agent", help="Evaluate only this agent (repeat); default: all."),
        ] = None,
        limit: Annotated[
            int | None, typer.Option(min=1, help="A seeded sample of at most N per set.")
        ] = None,
        seed: Annotated[int, typer.Option(help="Seed of the --limit sample.")] = 0,
        data_dir: Annotated[
            Path | None,
            typer.Option(
                help="Folder of the registered sets (default $OVERSIGHT_DATA, ../shared/data)."
            ),
        ] = None,
        out: Annotated[
            Path | None,
            typer.Option(help="Report folder (default runs/evaluate/<hierarchy name>)."),
        ] = None,
        plots: Annotated[bool, typer.Option(help="Write reliability.png.")] = True,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    ) -> None:
        """Run every overseer (safety, critics, judge audits) on labelled sets: accuracy,
        precision / recall, AUROC, calibration error and a reliability plot, confusion matrix.
        Writes report.json, report.md, reliability.png and calibration.json (for
        `oversight simulate --calibration`)."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        from ..evaluation.harness import evaluate_agents
        from ..evaluation.report import build_report, write_report
        from ..evaluation.sets import available_sets, default_data_dir, load_set
        from ..hierarchy import load_hierarchy
        from ..paths import resolve_config

        with user_errors():
            from ..errors import InputError

            spec = load_hierarchy(resolve_config(hierarchy))
            root = data_dir or default_data_dir()
            names = list(sets or available_sets(root, agents=True))
            if not names:
                raise InputError(
                    f"no evaluation sets found under {root}: pass --data-dir (or set "
                    "$OVERSIGHT_DATA) to the folder with xstest/, harmbench/, jbb-behaviors/, "
                    "or --set my.jsonl"
                )
            loaded = [load_set(n, root, limit=limit, seed=seed) for n in names]
            total = sum(len(s.examples) for s in loaded)
            with Progress(
                "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=err_console,
                disable=as_json or not err_console.is_terminal, transient=True,
            ) as bar:  # fmt: skip
                task = bar.add_task(f"evaluating {spec.name}", total=None)
                results, seconds = evaluate_agents(
                    spec, loaded, agents=agents, progress=lambda n: bar.advance(task, n)
                )
            command = "oversight " + " ".join(shlex.quote(a) for a in sys.argv[1:])
            report = build_report(
                spec, hierarchy, loaded, results, seconds=seconds, command=command,
                limit=limit, seed=seed,
            )  # fmt: skip
            folder = out or Path("runs") / "evaluate" / spec.name
            written = write_report(report, folder, plots=plots)
        if as_json:
            typer.echo(json.dumps(report, indent=2))
            return
        for name, a in report["agents"].items():
            for key, q in a["questions"].items():
                m = q["pooled"]
                per = m["accuracy_per_class"]
                err_console.print(
                    f"{name:>20} {key:<26} n={m['n']:<5} accuracy {_pct(m['accuracy'])} "
                    f"(pos {_pct(per['positive'])}, neg {_pct(per['negative'])}) "
                    f"AUROC {m['auroc'] if m['auroc'] is not None else '-'} ECE {m['ece']}",
                    highlight=False,
                )
        err_console.print(
            f"{total} examples in {seconds:.0f}s; wrote {', '.join(map(str, written))}",
            highlight=False,
        )


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"
