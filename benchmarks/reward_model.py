"""Reward model on a real run's preference pairs, measured on another run and on HH-RLHF.

1. Training prompts as in ``examples/train_cycle.py`` (the project's labelled requests, AdvBench,
   the benign instruction sets; near-duplicates of evaluation prompts dropped), split by a seeded
   shuffle into two disjoint prompt sets;
2. two ``oversight run``s with the train-cycle hierarchy (SmolLM2-135M drafts, MiniLM agents,
   the constitution's wording as reviser): ``rm-train`` and ``rm-heldout``;
3. ``train_reward`` (TRL ``RewardTrainer``) from the embedded SmolLM2-135M-Instruct with a new
   score head on ``rm-train``'s pairs; accuracy on ``rm-heldout``'s pairs and on the HH-RLHF
   harmless-base sample (500 pairs, evaluation only), each next to the untrained model's
   accuracy on the same pairs (the baseline, measured in the same process).

    python benchmarks/reward_model.py --out rm-bench              # about 10 min on 2 CPU cores
    python benchmarks/reward_model.py --out rm-bench --train-run R1 --heldout-run R2

Prints one JSON object and writes it to ``--result`` (CPU model and flags, load averages at
start and end, sizes, timings, accuracies). The data sets are read from ``$OVERSIGHT_DATA``
(default ``../shared/data``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("OVERSIGHT_DATA") or ROOT.parent / "shared" / "data")


def cpu() -> dict[str, Any]:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (ln.split(":", 1)[1].strip() for ln in info.splitlines() if "model name" in ln), ""
    )
    flags = next(
        (ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []
    )
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {
        "model": model or platform.processor(),
        "flags": [f for f in wanted if f in flags],
        "cores": os.cpu_count(),
    }


def make_runs(
    out: Path, harmful: int, benign: int, heldout_share: float, seed: int
) -> tuple[Path, Path, dict[str, Any]]:
    sys.path.insert(0, str(ROOT / "examples"))
    from train_cycle import hierarchy, training_prompts

    prompts, report = training_prompts(DATA, harmful, benign, seed)
    random.Random(seed).shuffle(prompts)
    cut = round(len(prompts) * heldout_share)
    parts = {"rm-heldout": prompts[:cut], "rm-train": prompts[cut:]}
    spec = hierarchy(out, 16, 64)
    dirs = {}
    for name, rows in parts.items():
        path = out / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        cmd = [sys.executable, "-m", "oversight", "run", str(spec), "--prompts", str(path),
               "--name", name, "--runs-dir", str(out / "runs"), "--json"]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        dirs[name] = out / "runs" / name
    report["prompts_per_run"] = {k: len(v) for k, v in parts.items()}
    return dirs["rm-train"], dirs["rm-heldout"], report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("rm-bench"))
    ap.add_argument(
        "--result", type=Path, default=ROOT / "benchmarks/results/reward_model_cpu.json"
    )
    ap.add_argument("--harmful", type=int, default=100)
    ap.add_argument("--benign", type=int, default=100)
    ap.add_argument("--heldout-share", type=float, default=0.33)
    ap.add_argument("--train-run", type=Path)
    ap.add_argument("--heldout-run", type=Path)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--hh-limit", type=int, help="a seeded sample of N HH-RLHF pairs (all 500)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    t0 = time.time()
    times: dict[str, float] = {}
    report: dict[str, Any] = {}
    if args.train_run and args.heldout_run:
        train_run, heldout_run = args.train_run, args.heldout_run
        made = args.out / "report.json"  # what make_runs reported when it made these runs
        report = json.loads(made.read_text()) if made.is_file() else {}
    else:
        train_run, heldout_run, report = make_runs(
            args.out, args.harmful, args.benign, args.heldout_share, args.seed
        )
        times["oversight_runs_s"] = round(time.time() - t0, 1)

    from oversight.training.eval import default_refusal_detector
    from oversight.training.rm import HH_RLHF_FILE, RewardSettings, train_reward

    settings = RewardSettings(
        output_dir=str(args.out / "rm"), epochs=args.epochs, learning_rate=args.lr,
        max_length=args.max_length, batch_size=8, eval_fraction=0.0, seed=args.seed,
        bf16=True, eval_dtype="bfloat16", logging_steps=5, save_steps=10_000,
    )  # fmt: skip
    t = time.time()
    result = train_reward(
        [train_run], settings, heldout_runs=[heldout_run], hh_rlhf=DATA / HH_RLHF_FILE,
        hh_rlhf_limit=args.hh_limit, is_refusal=default_refusal_detector(), embeddings=False,
    )  # fmt: skip
    times["train_and_measure_s"] = round(time.time() - t, 1)
    times["total_s"] = round(time.time() - t0, 1)
    out = {
        "benchmark": "reward_model",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "cpu": cpu(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "base_model": "SmolLM2-135M-Instruct (embedded) + new score head",
        "runs": {"train": str(train_run), "heldout": str(heldout_run)},
        "prompts": report,
        "settings": {
            "epochs": args.epochs,
            "learning_rate": args.lr,
            "max_length": args.max_length,
            "batch_size": 8,
            "bf16_autocast": True,
            "eval_dtype": "bfloat16",
        },
        "hh_rlhf_limit": args.hh_limit,
        "train_pairs": result.train_rows,
        "accuracy": result.accuracy,
        "calibration": result.metrics.get("calibration"),
        "train_loss": result.metrics.get("train_loss"),
        "times": times,
    }
    text = json.dumps(out, indent=2)
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
