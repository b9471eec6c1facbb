"""The main job's time and quality, against a baseline commit measured in the same run.

Runs ``oversight run HIERARCHY`` as a user would (a fresh process: imports, model load, every
episode, rows, summary) for this checkout and, with ``--baseline-ref``, for another commit
checked out in a temporary git worktree and run with the same interpreter. Each variant runs
``--repeats`` times in turn and its median run counts. Reports per variant: process wall time,
the run's own episode time, tokens, the summary's counts (consensus / escalated / failed,
triggers, target sources) and how drafts ended (cut by the token limit, stopped looping).

    python benchmarks/main_job.py --baseline-ref ddb669a --repeats 1 \
        --out benchmarks/results/main_job_endings_epyc.json

Extra variants of this checkout's hierarchy: ``--variant NAME:KEY=VALUE,...`` rewrites
``settings`` keys or ``models.smollm.options`` keys (``options.max_batch_size=32``) in a copy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from oversight.devices import detect
from oversight.paths import standalone_hierarchy

ROOT = Path(__file__).resolve().parents[1]


def _variant_hierarchy(source: Path, changes: dict[str, str], out: Path) -> Path:
    """A copy of ``source`` with settings / model option changes (relative paths resolved)."""
    spec = standalone_hierarchy(source)
    for key, raw in changes.items():
        value = yaml.safe_load(raw)
        if key.startswith("options."):
            for model in spec.get("models", {}).values():
                if model.get("backend") in ("embedded", "transformers"):
                    model.setdefault("options", {})[key.removeprefix("options.")] = value
        else:
            spec.setdefault("settings", {})[key] = value
    out.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return out


def run_once(
    code_dir: Path, hierarchy: Path, work: Path, name: str, limit: int | None = None
) -> dict[str, Any]:
    """One ``oversight run`` in a fresh process; its wall time and summary."""
    env = {**os.environ, "PYTHONPATH": str(code_dir)}
    cmd = [
        sys.executable, "-m", "oversight", "run", str(hierarchy), "--name", name,
        "--runs-dir", str(work / "runs"), "--queue", f"sqlite:///{work / 'queue.db'}", "--json",
        *(["--limit", str(limit)] if limit else []),
    ]  # fmt: skip
    rss = work / "max_rss_kb"
    # GNU time's peak resident memory of the run, where the machine has it.
    has_time = Path("/usr/bin/time").exists()
    timer = ["/usr/bin/time", "-q", "-f", "%M", "-o", str(rss)] if has_time else []
    start = time.perf_counter()
    proc = subprocess.run([*timer, *cmd], cwd=code_dir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    summary = json.loads((work / "runs" / name / "summary.json").read_text(encoding="utf-8"))
    peak = int(rss.read_text().split()[-1]) / 1024 if rss.exists() else None
    return {"wall_s": wall, "summary": summary, "max_rss_mb": peak}


def _drafts_ended(journal: Path) -> dict[str, Any]:
    """How drafts ended, read from the journal (a baseline without ``finish`` says nothing)."""
    finishes: list[str] = []
    for line in journal.read_text(encoding="utf-8").splitlines():
        payload = json.loads(line).get("payload", {})
        if payload.get("kind") == "draft":
            finishes.append(payload.get("finish", ""))
    return {f or "unreported": finishes.count(f) for f in sorted(set(finishes))}


def describe(runs: list[dict[str, Any]], work_dirs: list[Path], name: str) -> dict[str, Any]:
    order = sorted(range(len(runs)), key=lambda i: runs[i]["wall_s"])
    mid = order[(len(order) - 1) // 2]
    summary = runs[mid]["summary"]
    invocation = summary.get("this_invocation", {})
    feedback = summary.get("feedback", {})
    return {
        "wall_s_process": round(runs[mid]["wall_s"], 1),
        "runs_s": [round(r["wall_s"], 1) for r in runs],
        "run_wall_s": invocation.get("wall_seconds"),
        "max_rss_mb": runs[mid]["max_rss_mb"],
        "counts": {k: summary.get(k) for k in ("episodes", "consensus", "escalated", "failed")},
        "escalation_triggers": summary.get("escalation_triggers"),
        "targets_per_source": summary.get("targets_per_source"),
        "answers": feedback.get("answers"),
        "drafts_ended": _drafts_ended(work_dirs[mid] / "runs" / name / "journal.jsonl"),
        "precision": summary.get("precision"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hierarchy", nargs="?", default="roles/embedded.yaml")
    parser.add_argument(
        "--baseline-ref", action="append", default=[], help="a git commit to compare (repeat)"
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="the first N prompts only")
    parser.add_argument("--variant", action="append", default=[], help="NAME:KEY=VALUE,...")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="main-job-") as tmp:
        base = Path(tmp)
        variants: dict[str, tuple[Path, Path]] = {"this": (ROOT, ROOT / args.hierarchy)}
        for ref in args.baseline_ref:
            tree = base / f"baseline-{ref}"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(tree), ref],
                cwd=ROOT, check=True, capture_output=True,
            )  # fmt: skip
            # Compiled once here, so the baseline's first run does not pay for its .pyc files.
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "oversight")])
            variants[f"baseline {ref}"] = (tree, tree / args.hierarchy)
        for spec in args.variant:
            name, _, changes = spec.partition(":")
            pairs = dict(c.split("=", 1) for c in changes.split(",") if c)
            path = _variant_hierarchy(ROOT / args.hierarchy, pairs, base / f"{name}.yaml")
            variants[name] = (ROOT, path)
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}
        dirs: dict[str, list[Path]] = {k: [] for k in variants}
        try:
            for i in range(args.repeats):
                for key, (code, hierarchy) in variants.items():
                    work = base / f"{len(dirs[key])}-{abs(hash(key))}"
                    work.mkdir()
                    runs[key].append(run_once(code, hierarchy, work, "job", args.limit))
                    dirs[key].append(work)
                    print(f"{key} run {i + 1}: {runs[key][-1]['wall_s']:.1f} s", file=sys.stderr)
        finally:
            for ref in args.baseline_ref:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(base / f"baseline-{ref}")],
                    cwd=ROOT, capture_output=True,
                )  # fmt: skip
        report = {
            "benchmark": "main_job",
            "command": f"oversight run {args.hierarchy} (a fresh process per run)",
            "machine": detect().as_dict(),
            "load_average_at_end": os.getloadavg(),
            "repeats": args.repeats,
            "timing": "variants run in turn; the median run of each counts",
            "variants": {k: describe(runs[k], dirs[k], "job") for k in variants},
        }
    report["median_wall_s"] = {k: v["wall_s_process"] for k, v in report["variants"].items()}
    text = json.dumps(report, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
