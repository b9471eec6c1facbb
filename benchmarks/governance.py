"""The main job (``oversight run roles/embedded.yaml --limit 8``) in two checkouts, timed.

Checks that per-request constitutions (one ``ConstitutionApplied`` record per episode, a
constitution variant looked up per prompt) and the new principles of the default constitution
(unassessed in the embedded hierarchy, see roles/embedded.yaml) leave the main job about as
fast. Each checkout runs in a fresh process with its own folder first on ``PYTHONPATH``; the
runs alternate (A, B, A, B, ...) so a changing machine load hits both alike.

    python benchmarks/governance.py --baseline /work/main --candidate . --repeats 2 \\
        --out benchmarks/results/governance_main_job_loaded.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def run_once(repo: Path, limit: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(repo.resolve())}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable, "-m", "oversight", "run", "roles/embedded.yaml",
                "--limit", str(limit), "--runs-dir", tmp, "--json",
            ],
            cwd=repo, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"{repo}: oversight run failed:\n{done.stderr[-2000:]}")
        summary = json.loads(done.stdout)
    return {
        "process_wall_s": round(wall, 2),
        "process_cpu_s": round(cpu, 2),
        "run_wall_s": summary["this_invocation"]["wall_seconds"],
        "episodes": summary.get("episodes"),
        "consensus": summary.get("consensus"),
        "escalated": summary.get("escalated"),
        "failed": summary.get("failed"),
        "messages": summary["this_invocation"]["messages"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--candidate", type=Path, default=Path("."))
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(args.candidate.resolve()))
    from oversight.devices import detect

    start = _loadavg()
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "candidate": []}
    for _ in range(args.repeats):
        for name, repo in (("baseline", args.baseline), ("candidate", args.candidate)):
            runs[name].append(run_once(repo, args.limit))
            print(name, runs[name][-1], file=sys.stderr)
    best = {k: min(r["run_wall_s"] for r in v) for k, v in runs.items()}
    cpu = {k: min(r["process_cpu_s"] for r in v) for k, v in runs.items()}
    device = detect("cpu")
    result = {
        "benchmark": "governance_main_job",
        "command": " ".join(["python", *sys.argv]),
        "configuration": (
            f"oversight run roles/embedded.yaml --limit {args.limit}, each checkout in a fresh "
            "process, alternating; run_wall_s is the runtime's own wall time (model load "
            "excluded), process_wall_s includes start-up and model load, process_cpu_s is the "
            "process's user+system CPU time (less sensitive to a loaded machine than wall time)"
        ),
        "machine": device.as_dict(),
        "loadavg_start": start,
        "loadavg_end": _loadavg(),
        "best_run_wall_s": best,
        "candidate_over_baseline": round(best["candidate"] / best["baseline"], 3),
        "best_process_cpu_s": cpu,
        "candidate_over_baseline_cpu": round(cpu["candidate"] / cpu["baseline"], 3),
        "runs": runs,
    }
    text = json.dumps(result, indent=1, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
