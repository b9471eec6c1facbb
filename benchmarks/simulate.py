"""Benchmark of the vectorised recursive-oversight simulator; prints one JSON object.

* ``episodes_per_second``: one configuration of a 4-level hierarchy (base + reviser at level 0,
  two critics at 1, a judge auditing them at 2, people at 3: 6 agents) over the 8 principles of
  ``constitutions/default.yaml``, ``--episodes`` episodes.
* ``sweep``: a 20-point sweep (accuracy x correlation) of ``--sweep-episodes`` each.
* ``memory``: peak traced Python/numpy memory (tracemalloc) of a short and of a ``--stream``
  run with the same chunk size (the peak does not grow with the episode count: only counters
  and a per-day histogram outlive a chunk), and the process's peak RSS.

    python benchmarks/simulate.py                      # the full run (minutes on 2 cores)
    python benchmarks/simulate.py --episodes 100000 --sweep-episodes 20000 --stream 400000
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import yaml

from oversight.simulate import SimulationConfig, run_study

HIERARCHY = {
    "name": "bench-4-levels",
    "constitution": "constitutions/default.yaml",
    "escalation": "escalation/default.yaml",
    "models": {
        "base": {"backend": "simulated", "options": {"seed": 0}},
        "critic": {"backend": "simulated",
                   "options": {"seed": 1, "miss_rate": 0.1, "false_alarm_rate": 0.1,
                               "correlation": 0.3}},
        "judge": {"backend": "simulated",
                  "options": {"seed": 2, "miss_rate": 0.05, "false_alarm_rate": 0.05,
                              "correlation": 0.3}},
    },
    "agents": [
        {"name": "base", "role": "base", "model": "base"},
        {"name": "reviser", "role": "reviser", "model": "base"},
        {"name": "harm-critic", "role": "critic", "model": "critic",
         "principles": ["harm", "lawful", "privacy", "manipulation"]},
        {"name": "quality-critic", "role": "critic", "model": "critic",
         "principles": ["honesty", "balance", "fairness", "helpfulness"]},
        {"name": "judge", "role": "judge", "model": "judge"},
        {"name": "people", "role": "human"},
    ],
    "supervision": [
        {"supervisor": "harm-critic", "subject": "base", "mode": "every"},
        {"supervisor": "quality-critic", "subject": "base", "mode": "every"},
        {"supervisor": "judge", "subject": "harm-critic", "mode": "on-flag"},
        {"supervisor": "judge", "subject": "quality-critic", "mode": "sample", "rate": 0.25},
        {"supervisor": "people", "subject": "judge", "mode": "on-flag"},
    ],
    "settings": {"max_revision_rounds": 2},
}  # fmt: skip


def traced_run(path: Path, episodes: int, chunk: int) -> tuple[float, int]:
    """(seconds, peak traced bytes) of one configuration."""
    tracemalloc.start()
    start = time.perf_counter()
    run_study(path, SimulationConfig(episodes=episodes, chunk_size=chunk))
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1_000_000)
    parser.add_argument("--sweep-episodes", type=int, default=1_000_000)
    parser.add_argument("--stream", type=int, default=10_000_000)
    parser.add_argument("--chunk-size", type=int, default=32_768)
    parser.add_argument("--workers", type=int, default=1, help="processes (results unchanged)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(HIERARCHY, sort_keys=False), encoding="utf-8")
        run_study(path, SimulationConfig(episodes=1000))  # imports and compile caches

        start = time.perf_counter()
        study = run_study(
            path,
            SimulationConfig(
                episodes=args.episodes, chunk_size=args.chunk_size, workers=args.workers
            ),
        )
        single = time.perf_counter() - start
        r = study.points[0]["result"]

        sweeps = [("accuracy", [0.8, 0.85, 0.9, 0.95, 0.99]), ("correlation", [0.0, 0.3, 0.6, 0.9])]
        start = time.perf_counter()
        sweep = run_study(
            path,
            SimulationConfig(
                episodes=args.sweep_episodes, chunk_size=args.chunk_size, workers=args.workers
            ),
            sweeps,
        )
        sweep_seconds = time.perf_counter() - start

        _, short_peak = traced_run(path, 2 * args.chunk_size, args.chunk_size)
        stream_s, stream_peak = traced_run(path, args.stream, args.chunk_size)

    print(json.dumps({
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "hierarchy": {"levels": 4, "agents": 6, "principles": 8},
        "workers": args.workers,
        "episodes": args.episodes,
        "seconds": round(single, 3),
        "episodes_per_second": round(args.episodes / single),
        "model_calls_per_episode": round(r["model_calls_per_episode"], 2),
        "escalation_rate": round(r["escalation"]["rate"], 4),
        "sweep": {"points": len(sweep.points), "episodes_per_point": args.sweep_episodes,
                  "seconds": round(sweep_seconds, 2),
                  "episodes_per_second": round(len(sweep.points) * args.sweep_episodes
                                               / sweep_seconds)},
        "memory": {"chunk_size": args.chunk_size,
                   "peak_traced_mb_short_run": round(short_peak / 2**20, 1),
                   "short_run_episodes": 2 * args.chunk_size,
                   "peak_traced_mb_stream_run": round(stream_peak / 2**20, 1),
                   "stream_run_episodes": args.stream,
                   "stream_run_seconds": round(stream_s, 1),
                   "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                       1)},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
