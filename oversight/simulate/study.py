"""Run a simulation (one configuration or a sweep) and write results.json, results.csv, plots."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config import SimulationConfig, apply_parameter, sweep_grid
from .engine import run_plans
from .metrics import CSV_COLUMNS, csv_row, summarise
from .plan import compile_plan


@dataclass
class StudyResult:
    """All configurations of one simulation run."""

    hierarchy: str
    """The hierarchy file (or name) simulated."""
    config: SimulationConfig
    """The settings every point started from."""
    sweeps: list[tuple[str, list[float]]]
    """The swept parameters and their values, in command-line order."""
    points: list[dict[str, Any]] = field(default_factory=list)
    """One entry per configuration: ``{"parameters": {...}, "result": {...}}``."""
    seconds: float = 0.0
    """Wall-clock time of the simulation."""

    def to_json(self) -> dict[str, Any]:
        return {
            "hierarchy": self.hierarchy,
            "config": self.config.model_dump(mode="json"),
            "sweeps": [{"name": n, "values": v} for n, v in self.sweeps],
            "seconds": round(self.seconds, 3),
            "points": self.points,
        }


def load_spec(hierarchy: Any) -> tuple[Any, str]:
    """A loaded hierarchy spec and its display name, from a path or an already-loaded spec."""
    if isinstance(hierarchy, str | Path):
        from ..hierarchy import load_hierarchy

        return load_hierarchy(hierarchy), str(hierarchy)
    return hierarchy, str(getattr(hierarchy, "name", "hierarchy"))


def run_study(
    hierarchy: Any,
    config: SimulationConfig | None = None,
    sweeps: Sequence[tuple[str, list[float]]] = (),
    *,
    progress: Callable[[int], None] | None = None,
    core: Any = None,
) -> StudyResult:
    """Simulate every point of the sweep grid (common random numbers: one seed for all points,
    so differences between points are not sampling noise of different draws)."""
    config = config or SimulationConfig()
    spec, name = load_spec(hierarchy)
    names = [n for n, _ in sweeps]
    if len(set(names)) != len(names):
        raise ConfigError(f"--sweep: a parameter is swept twice ({', '.join(names)})")
    grid = sweep_grid(list(sweeps))
    # compile every point first, so a bad point fails before any work
    plans = []
    for params in grid:
        point_config = config
        for key, value in params.items():
            point_config = apply_parameter(point_config, key, value)
        plans.append((params, point_config, compile_plan(spec, point_config, core)))
    study = StudyResult(hierarchy=name, config=config, sweeps=[(n, list(v)) for n, v in sweeps])
    start = time.perf_counter()
    tallies = run_plans(
        [(plan, point_config) for _, point_config, plan in plans],
        workers=config.workers,
        progress=progress,
    )
    for (params, point_config, plan), tally in zip(plans, tallies, strict=True):
        study.points.append({"parameters": params, "result": summarise(tally, plan, point_config)})
    study.seconds = time.perf_counter() - start
    return study


def write_results(study: StudyResult, out: str | Path, *, plots: bool = True) -> list[Path]:
    """Write results.json, results.csv and (optionally) the PNG plots; returns the paths."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    path = out_dir / "results.json"
    path.write_text(json.dumps(study.to_json(), indent=2) + "\n", encoding="utf-8")
    written.append(path)
    path = out_dir / "results.csv"
    params = [n for n, _ in study.sweeps]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*params, *CSV_COLUMNS])
        writer.writeheader()
        for point in study.points:
            writer.writerow({**point["parameters"], **csv_row(point["result"])})
    written.append(path)
    if plots:
        from .plots import plot_study

        written.extend(plot_study(study, out_dir))
    return written
