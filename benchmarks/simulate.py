"""Benchmark of the recursive-oversight simulator; prints one JSON object.

* ``baseline``: the numpy engine and decision core the compiled kernels replaced
  (``tests/_reference_engine.py``, ``tests/_reference_core.py``), timed in the same run on the
  same chunks as the compiled engine (``compiled``); ``identical`` says whether their tallies
  were equal (they must be: same result per seed).
* ``single``: one configuration of a 4-level hierarchy (base + reviser at level 0, two critics
  at 1, a judge auditing them at 2, people at 3: 6 agents) over the 8 principles of
  ``constitutions/default.yaml``, ``--episodes`` episodes through ``run_study``, on one thread
  and on ``--workers`` threads of this process.
* ``sweep``: a 20-point sweep (accuracy x correlation) of ``--sweep-episodes`` each, on
  ``--workers`` threads (one pool for all points).
* ``memory``: peak traced Python/numpy memory (tracemalloc) of a short and of a ``--stream``
  run (10^8 episodes by default) with the same chunk size and ``--workers`` threads (the peak
  does not grow with the episode count: only counters and a per-day histogram outlive a
  chunk), and the process's peak RSS.

Rates are episodes per wall-clock second and, since the machine may be shared, per CPU second
of this process (``time.process_time``, all its threads). The JSON names the CPU (model, SIMD
flags), numpy and numba, and the load average at start and end.

    python benchmarks/simulate.py                      # the full run (minutes on 2 cores)
    python benchmarks/simulate.py --episodes 100000 --sweep-episodes 20000 --stream 400000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import yaml

from oversight.hierarchy import load_hierarchy
from oversight.simulate import SimulationConfig, run_study
from oversight.simulate.engine import Tally, simulate_chunk
from oversight.simulate.plan import compile_plan

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _reference_engine import simulate_chunk as reference_chunk

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


def traced_run(path: Path, episodes: int, chunk: int, workers: int) -> tuple[float, int]:
    """(seconds, peak traced bytes) of one configuration."""
    tracemalloc.start()
    start = time.perf_counter()
    run_study(path, SimulationConfig(episodes=episodes, chunk_size=chunk, workers=workers))
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak


def cpu_info() -> dict[str, object]:
    """CPU model, core count and the SIMD flags that decide numpy's and numba's code paths."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16",
              "amx_tile")  # fmt: skip
    return {"model": model, "cores": os.cpu_count(), "flags": [f for f in wanted if f in flags]}


def timed(function, *args, **kwargs) -> tuple[object, float, float]:  # type: ignore[no-untyped-def]
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = function(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def baseline(path: Path, episodes: int, chunk: int) -> dict[str, object]:
    """The numpy reference and the compiled engine on the same chunks, interleaved."""
    config = SimulationConfig(chunk_size=chunk)
    plan = compile_plan(load_hierarchy(path), config)
    chunks = [(k, min(chunk, episodes - first), first) for k, first in
              enumerate(range(0, episodes, chunk))]  # fmt: skip
    results: dict[str, dict[str, float]] = {}
    tallies = {}
    for name, run in (("numpy_reference", reference_chunk), ("compiled", simulate_chunk)):
        tally = Tally()
        wall = cpu = 0.0
        for k, n, first in chunks:
            _, w, c = timed(run, plan, config, np.random.default_rng([config.seed, k]), n,
                            first, tally)  # fmt: skip
            wall, cpu = wall + w, cpu + c
        tallies[name] = tally
        results[name] = {
            "seconds": round(wall, 3),
            "episodes_per_second": round(episodes / wall),
            "episodes_per_cpu_second": round(episodes / cpu),
        }
    a, b = tallies["numpy_reference"], tallies["compiled"]
    identical = all(
        np.array_equal(getattr(a, f), getattr(b, f)) if f == "daily_escalations"
        else getattr(a, f) == getattr(b, f)
        for f in a.__dataclass_fields__
    )  # fmt: skip
    return {
        "episodes": episodes,
        "chunk_size": chunk,
        **results,
        "identical": identical,
        "speedup_wall": round(
            results["numpy_reference"]["seconds"] / results["compiled"]["seconds"], 2
        ),
        "speedup_cpu": round(
            results["compiled"]["episodes_per_cpu_second"]
            / results["numpy_reference"]["episodes_per_cpu_second"],
            2,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1_000_000)
    parser.add_argument(
        "--baseline-episodes",
        type=int,
        default=262_144,
        help="episodes for the numpy reference vs compiled comparison",
    )
    parser.add_argument("--sweep-episodes", type=int, default=1_000_000)
    parser.add_argument("--stream", type=int, default=100_000_000)
    parser.add_argument("--chunk-size", type=int, default=32_768)
    parser.add_argument("--workers", type=int, default=2, help="threads (results unchanged)")
    args = parser.parse_args()  # fmt: skip
    load_start = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(HIERARCHY, sort_keys=False), encoding="utf-8")
        run_study(path, SimulationConfig(episodes=1000))  # imports and compiled kernels

        base = baseline(path, args.baseline_episodes, args.chunk_size)

        single = {}
        for workers in sorted({1, args.workers}):
            config = SimulationConfig(
                episodes=args.episodes, chunk_size=args.chunk_size, workers=workers
            )
            study, wall, cpu = timed(run_study, path, config)
            r = study.points[0]["result"]  # type: ignore[attr-defined]
            single[f"workers_{workers}"] = {
                "seconds": round(wall, 3),
                "episodes_per_second": round(args.episodes / wall),
                "episodes_per_cpu_second": round(args.episodes / cpu),
            }

        sweeps = [("accuracy", [0.8, 0.85, 0.9, 0.95, 0.99]), ("correlation", [0.0, 0.3, 0.6, 0.9])]
        config = SimulationConfig(
            episodes=args.sweep_episodes, chunk_size=args.chunk_size, workers=args.workers
        )
        sweep, sweep_seconds, sweep_cpu = timed(run_study, path, config, sweeps)

        _, short_peak = traced_run(path, 2 * args.chunk_size, args.chunk_size, args.workers)
        stream_s, stream_peak = traced_run(path, args.stream, args.chunk_size, args.workers)

    import numba

    best = max(v["episodes_per_second"] for v in single.values())

    print(json.dumps({
        "benchmark": "simulate",
        "command": "python benchmarks/simulate.py " + " ".join(sys.argv[1:]),
        "cpu": cpu_info(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "hierarchy": {"levels": 4, "agents": 6, "principles": 8},
        "baseline": base,
        "single": {"episodes": args.episodes, **single},
        "model_calls_per_episode": round(r["model_calls_per_episode"], 2),
        "escalation_rate": round(r["escalation"]["rate"], 4),
        "sweep": {"points": len(sweep.points), "episodes_per_point": args.sweep_episodes,  # type: ignore[attr-defined]
                  "workers": args.workers, "seconds": round(sweep_seconds, 2),
                  "episodes_per_second": round(len(sweep.points) * args.sweep_episodes  # type: ignore[attr-defined]
                                               / sweep_seconds),
                  "episodes_per_cpu_second": round(len(sweep.points) * args.sweep_episodes  # type: ignore[attr-defined]
                                                   / sweep_cpu)},
        "memory": {"chunk_size": args.chunk_size,
                   "peak_traced_mb_short_run": round(short_peak / 2**20, 1),
                   "short_run_episodes": 2 * args.chunk_size,
                   "peak_traced_mb_stream_run": round(stream_peak / 2**20, 1),
                   "stream_run_episodes": args.stream,
                   "stream_run_seconds": round(stream_s, 1),
                   "workers": args.workers,
                   "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                       1)},
        # issue 12's goals, on this run's figures (a loaded machine's wall rates understate them)
        "goals": {"single_1e6_per_second": best >= 1_000_000,
                  "sweep_20x1e6_within_30_s": len(sweep.points) * args.sweep_episodes  # type: ignore[attr-defined]
                  >= 20_000_000 and sweep_seconds <= 30.0,
                  "stream_1e8_bounded": args.stream >= 100_000_000
                  and stream_peak <= 2 * short_peak},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
