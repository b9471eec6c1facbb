"""``oversight simulate``: recursive-oversight studies of a hierarchy with simulated agents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..errors import OversightError


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        hierarchy: Annotated[str, typer.Argument(help="Hierarchy file, e.g. roles/recursive.yaml")],
        episodes: Annotated[
            int | None,
            typer.Option(
                "--episodes",
                "-n",
                min=1,
                help="Episodes per configuration (default: the settings file's, else 100,000).",
            ),
        ] = None,
        sweep: Annotated[
            list[str] | None,
            typer.Option(
                "--sweep",
                help="NAME=V1,V2,... (repeatable; the grid of all combinations is simulated). "
                "E.g. depth=1,2,3 accuracy=0.8,0.9 correlation=0,0.3,0.6.",
            ),
        ] = None,
        seed: Annotated[
            int | None,
            typer.Option(help="Seed, the same for every point (default: the settings', else 0)."),
        ] = None,
        out: Annotated[
            Path, typer.Option(help="Directory for results.json, results.csv and plots.")
        ] = Path("simulation"),
        settings: Annotated[
            Path | None,
            typer.Option(help="YAML of simulation settings (case_mix, human_capacity, ...)."),
        ] = None,
        calibration: Annotated[
            Path | None,
            typer.Option(
                help="JSON of measured confusion rates per model, e.g. the calibration.json of "
                "`oversight evaluate` (docs/simulation.md); or `calibration:` in --settings."
            ),
        ] = None,
        chunk_size: Annotated[
            int | None,
            typer.Option(min=1, help="Episodes simulated at once (bounds memory; default 32,768)."),
        ] = None,
        workers: Annotated[
            int | None,
            typer.Option(
                min=1, help="Threads simulating chunks in parallel (same results; default: cores)."
            ),
        ] = None,
        plots: Annotated[bool, typer.Option(help="Write PNG plots.")] = True,
        as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
    ) -> None:
        """Simulate a hierarchy with agents of known accuracy: harm passed, safe refused,
        escalations, reviewer hours, queue backlog and cost, with 95% confidence intervals."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        from ..simulate import load_calibration, parse_sweep, run_study, write_results
        from ..simulate.config import load_simulation_config, sweep_grid

        console = Console(stderr=True)
        try:
            given = dict(episodes=episodes, seed=seed, chunk_size=chunk_size, workers=workers)
            # Only what the command line says overrides the settings file.
            overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
            config = load_simulation_config(settings, **overrides)
            if calibration is None and config.calibration is not None:
                # ``calibration:`` in the settings file, relative to that file
                assert settings is not None
                calibration = settings.parent / config.calibration
            if calibration is not None:
                from ..hierarchy import load_hierarchy
                from ..paths import resolve_config

                spec = load_hierarchy(resolve_config(hierarchy))
                overrides["model_options"] = load_calibration(calibration, hierarchy=spec)
                config = load_simulation_config(settings, **overrides)
            sweeps = [parse_sweep(s) for s in sweep or []]
            grid = sweep_grid(sweeps)
            points = len(grid)
            total = sum(int(p.get("episodes", config.episodes)) for p in grid)
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
                disable=as_json or not console.is_terminal,
                transient=True,
            ) as progress:
                task = progress.add_task(f"simulating {points} configuration(s)", total=total)
                study = run_study(
                    hierarchy, config, sweeps, progress=lambda n: progress.advance(task, n)
                )
            written = write_results(study, out, plots=plots)
        except OversightError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, highlight=False)
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps(study.to_json(), indent=2))
            return
        for point in study.points:
            r = point["result"]
            label = ", ".join(f"{k}={v:g}" for k, v in point["parameters"].items()) or "baseline"
            typer.echo(
                f"{label}: harm passed {_pct(r['harmful_pass_through'])}, safe refused "
                f"{_pct(r['false_refusal'])}, escalated {_pct(r['escalation'])}, "
                f"{r['human_hours_per_1k']['value']:.2f} reviewer h / 1k episodes"
                + ("" if r["queue_stable"] else " (queue grows: over capacity)")
            )
        typer.echo(f"{sum(p['result']['episodes'] for p in study.points):,} episodes in "
                   f"{study.seconds:.1f}s; wrote {', '.join(str(p) for p in written)}")  # fmt: skip


def _pct(rate: dict[str, float]) -> str:
    return f"{100 * rate['rate']:.2f}% [{100 * rate['low']:.2f}, {100 * rate['high']:.2f}]"
