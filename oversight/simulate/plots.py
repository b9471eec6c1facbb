"""Matplotlib (Agg) plots of a study: outcomes against each swept parameter, Pareto front,
queue backlog."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .study import StudyResult

LABELS = {
    "depth": "oversight depth (levels of overseers)",
    "accuracy": "overseer accuracy (1 - miss = 1 - false alarm)",
    "correlation": "error correlation (shared case difficulty)",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _err(result: dict[str, Any], key: str) -> tuple[float, float, float]:
    r = result[key]
    return r["rate"], r["rate"] - r["low"], r["high"] - r["rate"]


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (x, y), both lower-is-better, sorted by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front: list[int] = []
    best_y = float("inf")
    for i in order:
        if points[i][1] < best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def plot_parameter(study: StudyResult, name: str, out_dir: Path) -> Path:
    """Pass-through, false refusal and human load against one swept parameter."""
    plt = _pyplot()
    others = [n for n, _ in study.sweeps if n != name]
    series: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for point in study.points:
        key = tuple((o, point["parameters"][o]) for o in others)
        series[key].append(point)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, pts in series.items():
        pts = sorted(pts, key=lambda p: p["parameters"][name])
        xs = [p["parameters"][name] for p in pts]
        suffix = (" (" + ", ".join(f"{k}={v:g}" for k, v in key) + ")") if key else ""
        for metric, style in (("harmful_pass_through", "o-"), ("false_refusal", "s--")):
            vals = [_err(p["result"], metric) for p in pts]
            ax1.errorbar(
                xs, [v[0] for v in vals], yerr=[[v[1] for v in vals], [v[2] for v in vals]],
                fmt=style, capsize=3, label=metric.replace("_", " ") + suffix,
            )  # fmt: skip
        hours = [p["result"]["human_hours_per_1k"] for p in pts]
        ax2.errorbar(
            xs, [h["value"] for h in hours],
            yerr=[[h["value"] - h["low"] for h in hours], [h["high"] - h["value"] for h in hours]],
            fmt="o-", capsize=3, label="reviewer hours / 1k episodes" + suffix,
        )  # fmt: skip
    for ax in (ax1, ax2):
        ax.set_xlabel(LABELS.get(name, name))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax1.set_ylabel("rate (95% Wilson CI)")
    ax1.set_title("harm passed / safe refused")
    ax2.set_ylabel("reviewer hours per 1,000 episodes")
    ax2.set_title("human load")
    fig.suptitle(f"{study.hierarchy}: outcomes vs {name}")
    fig.tight_layout()
    path = out_dir / f"vs_{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pareto(study: StudyResult, out_dir: Path) -> Path:
    """Harmful pass-through against reviewer hours; the non-dominated configurations joined."""
    plt = _pyplot()
    xs = [p["result"]["human_hours_per_1k"]["value"] for p in study.points]
    ys = [p["result"]["harmful_pass_through"]["rate"] for p in study.points]
    front = pareto_front(list(zip(xs, ys, strict=True)))
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.scatter(xs, ys, color="0.6", label="configurations")
    ax.plot([xs[i] for i in front], [ys[i] for i in front], "o-", color="C3", label="Pareto front")
    for i in front:
        params = study.points[i]["parameters"]
        text = ", ".join(f"{k}={v:g}" for k, v in params.items())
        if text:
            ax.annotate(text, (xs[i], ys[i]), fontsize=6, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("reviewer hours per 1,000 episodes")
    ax.set_ylabel("harmful pass-through rate")
    ax.set_title(f"{study.hierarchy}: safety vs human cost")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / "pareto.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_backlog(study: StudyResult, out_dir: Path, max_lines: int = 12) -> Path:
    """Escalated cases waiting at the end of each simulated day."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    points = study.points
    step = max(1, len(points) // max_lines)
    for point in points[::step]:
        series = point["result"]["backlog"]
        label = ", ".join(f"{k}={v:g}" for k, v in point["parameters"].items()) or "baseline"
        ax.plot(range(1, len(series) + 1), series, label=label)
    ax.set_xlabel("simulated day")
    ax.set_ylabel("cases waiting for people")
    ax.set_title("human queue backlog")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    path = out_dir / "backlog.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_study(study: StudyResult, out_dir: Path) -> list[Path]:
    """Every plot of a study: one per swept parameter, the Pareto front and the backlog."""
    paths = [plot_parameter(study, name, out_dir) for name, _ in study.sweeps]
    paths.append(plot_pareto(study, out_dir))
    paths.append(plot_backlog(study, out_dir))
    return paths
