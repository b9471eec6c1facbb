"""One constitutional training cycle on the CPU with the embedded default model.

1. build training prompts: AdvBench (harmful) + Vicuna-bench and self-instruct seed tasks
   (benign); never the evaluation sets (checked: no prompt equals an eval prompt);
2. ``oversight run``: the embedded SmolLM2-135M-Instruct drafts, the scripted critics / safety /
   judge check the drafts against the constitution using the prompts' labels, and the scripted
   reviser revises violating drafts with the constitution's refusal template;
3. evaluate the base model, SFT on the consensus answers, DPO (consensus over the draft) starting
   from the SFT model, evaluate again.

    python examples/train_cycle.py --out cycle --harmful 32 --benign 32 --eval-limit 20

Prints one JSON object: sizes, timings, before / after rates per set, sample answers.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import yaml

from oversight.training.config import DPOSettings, SFTSettings
from oversight.training.dpo import train_dpo
from oversight.training.eval import SET_NAMES, evaluate_model
from oversight.training.sft import train_sft

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def eval_prompts(data: Path) -> set[str]:
    seen = {r["prompt"] for r in csv.DictReader((data / "xstest/xstest_prompts.csv").open())}
    for name in ("harmful", "benign"):
        seen |= {
            r["goal"] for r in csv.DictReader((data / f"jbb-behaviors/{name}-behaviors.csv").open())
        }
    seen |= {
        r["Behavior"]
        for r in csv.DictReader((data / "harmbench/harmbench_behaviors_text_all.csv").open())
    }
    return {s.lower().strip() for s in seen}


def training_prompts(data: Path, harmful: int, benign: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    adv = [r["goal"] for r in csv.DictReader((data / "advbench/harmful_behaviors.csv").open())]
    vicuna = [
        r["turns"][0] for r in _jsonl(data / "benign-instructions/vicuna_bench/question.jsonl")
    ]
    tasks = [
        r["instruction"]
        for r in _jsonl(data / "benign-instructions/self-instruct/seed_tasks.jsonl")
    ]
    tasks = [t for t in tasks if len(t) < 200]
    rows = [(t, "harmful", "advbench") for t in rng.sample(adv, harmful)]
    rows += [(t, "benign", "vicuna") for t in rng.sample(vicuna, benign // 2)]
    rows += [(t, "benign", "self-instruct") for t in rng.sample(tasks, benign - benign // 2)]
    banned = eval_prompts(data)
    leaked = [t for t, _, _ in rows if t.lower().strip() in banned]
    if leaked:
        raise SystemExit(f"training prompts overlap the evaluation sets: {leaked[:3]}")
    return [
        {"id": f"{src}-{i:03d}", "prompt": t, "labels": {"harm": harm}}
        for i, (t, harm, src) in enumerate(rows)
    ]


def hierarchy(out: Path) -> Path:
    from oversight.paths import resolve_config

    spec = yaml.safe_load(resolve_config("roles/default.yaml").read_text())
    spec["name"] = "train-cycle"
    spec["models"] = {
        "base": {"backend": "embedded", "options": {"max_batch_size": 32, "max_wait_ms": 50}},
        "assessor": {"backend": "scripted", "options": {"confidence": 0.9}},
    }
    for agent in spec["agents"]:
        if agent["name"] == "reviser":
            agent["model"] = "assessor"  # refusal template; a 135M reviser rarely refuses
    spec["settings"].update(max_new_tokens=48, concurrency=32)
    path = out / "train_cycle.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def rates(result: dict) -> dict:
    return {
        name: r["refusal_rate"] if r["kind"] == "harmful" else r["compliance_rate"]
        for name, r in result["sets"].items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("cycle"))
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--harmful", type=int, default=32)
    ap.add_argument("--benign", type=int, default=32)
    ap.add_argument("--eval-limit", type=int, default=20)
    ap.add_argument("--run-dir", type=Path, nargs="+", help="reuse finished runs instead")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0, times = time.time(), {}

    run_dirs = args.run_dir
    if run_dirs is None:
        prompts = args.out / "train_prompts.jsonl"
        rows = training_prompts(args.data, args.harmful, args.benign, args.seed)
        prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
        cmd = ["oversight", "run", str(hierarchy(args.out)), "--prompts", str(prompts),
               "--name", "cycle", "--runs-dir", str(args.out / "runs"), "--timeout", "1800",
               "--json"]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=sys.stderr)
        run_dirs = [args.out / "runs" / "cycle"]
    times["oversight_run_s"] = round(time.time() - t0, 1)

    def evaluate(model: str) -> dict:
        return evaluate_model(model, sets=SET_NAMES, limit=args.eval_limit, data_dir=args.data)

    t = time.time()
    before = evaluate("default")
    times["eval_before_s"] = round(time.time() - t, 1)
    t = time.time()
    sft = train_sft(run_dirs, SFTSettings(
        output_dir=str(args.out / "sft"), epochs=1, learning_rate=1e-4, batch_size=2,
        eval_fraction=0.0, max_length=384, save_steps=10_000, logging_steps=5, seed=args.seed,
    ))  # fmt: skip
    times["sft_s"] = round(time.time() - t, 1)
    t = time.time()
    dpo = train_dpo(run_dirs, DPOSettings(
        model=str(sft.model_dir), output_dir=str(args.out / "dpo"), max_steps=3,
        learning_rate=2e-5, batch_size=4, eval_fraction=0.0, max_length=384,
        save_steps=10_000, logging_steps=5, seed=args.seed,
    ))  # fmt: skip
    times["dpo_s"] = round(time.time() - t, 1)
    t = time.time()
    after = evaluate(str(dpo.model_dir))
    times["eval_after_s"] = round(time.time() - t, 1)
    times["total_s"] = round(time.time() - t0, 1)
    for name, res in (("before", before), ("after", after)):
        (args.out / f"eval_{name}.json").write_text(json.dumps(res, indent=2, ensure_ascii=False))
    print(json.dumps({
        "run_dirs": [str(r) for r in run_dirs], "sft_rows": sft.train_rows,
        "dpo_pairs": dpo.train_rows,
        "eval_limit": args.eval_limit, "detector": after["detector"], "times": times,
        "before": rates(before), "after": rates(after),
        "card": {k: sft.card[k] for k in ("per_provenance", "per_target_source", "targets",
                                          "base_drafts", "escalation_rate")},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
