"""One constitutional training cycle on the CPU with the embedded default model.

1. Training prompts: the project's own labelled requests (harmful ones across the constitution's
   categories, and safe ones that sound dangerous: homonyms, figurative language, safe targets,
   definitions, history, public / fictional privacy...), AdvBench (harmful) and the benign
   instruction sets (self-instruct, Vicuna, MT-Bench). Never the evaluation sets: every prompt
   that near-duplicates an evaluation prompt (``oversight.dedup``: exact, normalised words,
   content-word Jaccard >= 0.5, MiniLM cosine >= 0.9 - JBB reuses AdvBench behaviours) is
   dropped, and the counts per kind are reported.
2. ``oversight run`` with the embedded hierarchy's AI feedback: SmolLM2-135M-Instruct drafts, the
   MiniLM critics, safety agent and judge decide (the prompts' labels are not shown to them), and
   the reviser writes the constitution's refusal / redirect wording where a draft violates a
   safety principle. The summary reports how often the agents agreed with the labels.
3. Evaluate the base model, SFT on the consensus answers, DPO (consensus answer over the draft it
   replaced) from the SFT model, evaluate again. ``oversight eval`` judges every answer with the
   project's refusal detector and counts a safe-set answer as compliant only when it is a real
   answer: not a refusal, not empty, not gibberish, not an echo of the prompt.

    python examples/train_cycle.py --out cycle              # the full cycle (about 30 min)
    python examples/train_cycle.py --out cycle --harmful 40 --benign 40 --eval-limit 20

Prints one JSON object (sizes, timings, before / after rates per set, sample answers) and writes
it to ``OUT/cycle.json``; the evaluations go to ``OUT/eval_before.json`` / ``eval_after.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from oversight.evaluation.sets import default_data_dir
from oversight.training.config import DPOSettings, SFTSettings
from oversight.training.cycle import rates
from oversight.training.dpo import train_dpo
from oversight.training.eval import (
    SET_NAMES,
    Judge,
    default_judge,
    default_refusal_detector,
    evaluate_model,
)
from oversight.training.sft import train_sft

DATA = default_data_dir()


def training_prompts(
    data: Path, harmful: int, benign: int, seed: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Labelled training prompts, de-duplicated against the evaluation sets."""
    from oversight.dedup import evaluation_check
    from oversight.safety.seed import generate_seed
    from oversight.safety.train import external_rows

    rows = [r for r in generate_seed(seed) + external_rows(data) if r.task == "request"]
    unique = list({r.text.strip(): r for r in rows}.values())
    check = evaluation_check(data)
    if check is None:
        raise SystemExit(f"no evaluation sets under {data}: pass --data (see --help)")
    kept, overlap = check.filter(unique, lambda r: r.text)
    print(overlap.line("training prompts"), file=sys.stderr)
    rng = random.Random(seed)
    bad = [r for r in kept if r.label == 1]
    good = [r for r in kept if r.label == 0]
    chosen = rng.sample(bad, min(harmful, len(bad))) + rng.sample(good, min(benign, len(good)))
    prompts = [
        {
            "id": f"{r.family}-{i:04d}",
            "prompt": r.text,
            "labels": {"harm": "harmful" if r.label else "benign"},
            "tags": [r.family],
        }
        for i, r in enumerate(chosen)
    ]
    report = {
        "candidates": len(unique),
        "dropped_near_duplicates_of_eval": overlap.total_dropped,
        "near_duplicates": overlap.as_dict(),
        "harmful": sum(r.label for r in chosen),
        "benign": sum(1 - r.label for r in chosen),
        "sources": dict(Counter(source(r.family) for r in chosen).most_common()),
    }
    return prompts, report


def source(family: str) -> str:
    """Where a prompt came from: a public training set, or the project's own seed families."""
    if family in ("advbench", "self_instruct", "vicuna_bench", "mt_bench"):
        return family
    if family.startswith("harmful"):
        return "project_harmful"
    return "project_safe_lookalike" if family.startswith("safe") else "project_benign"


def hierarchy(out: Path, concurrency: int, tokens: int) -> Path:
    """roles/embedded.yaml with the constitution's wording as the reviser (a 135M model's own
    revisions are rarely usable); every judgement stays with the MiniLM agents."""
    from oversight.paths import resolve_config

    spec = yaml.safe_load(resolve_config("roles/embedded.yaml").read_text())
    spec["name"] = "train-cycle"
    spec["constitution"] = str(resolve_config(spec["constitution"]))
    spec["escalation"] = str(resolve_config(spec["escalation"]))
    spec["models"]["smollm"]["options"].update(max_batch_size=concurrency, max_wait_ms=50)
    spec["models"]["wording"] = {"backend": "scripted"}
    for agent in spec["agents"]:
        if agent["role"] == "reviser":
            agent["model"] = "wording"
    spec["settings"].update(max_new_tokens=tokens, concurrency=concurrency)
    path = out / "train_cycle.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def agreement(
    run_dir: Path, prompts: list[dict[str, Any]], is_refusal: Callable[[str], bool]
) -> dict[str, Any]:
    """How the agents' consensus answers compare with the prompts' labels."""
    labels = {p["id"]: p["labels"]["harm"] for p in prompts}
    counts: Counter[str] = Counter()
    path = run_dir / "sft.jsonl"
    for line in path.open(encoding="utf-8") if path.exists() else []:
        row = json.loads(line)
        harm = labels.get(row["provenance"]["prompt_id"], "?")
        answer = row["messages"][-1]["content"]
        counts[f"{harm}:{'refused' if is_refusal(answer) else 'answered'}"] += 1
    return dict(sorted(counts.items()))


def over_refusal_pairs(run_dir: Path, out_dir: Path, judge: Judge) -> Path | None:
    """DPO pairs against over-refusal, from the run's own consensus.

    The run's pairs all prefer a refusal (the revision) over a harmful draft; trained on those
    alone, DPO learns "refuse more" everywhere. The counterweight: for every prompt where the
    agents accepted the model's own draft and it is a real answer, that draft is chosen over
    the refusal wording this run used (its most common revised answer). Written as a separate export
    (``source: contrast`` in the provenance) so the dataset card shows them apart.
    """
    refusals = Counter(
        json.loads(line)["chosen"][-1]["content"]
        for line in (run_dir / "dpo.jsonl").open(encoding="utf-8")
        if line.strip()
    )
    if not refusals:
        return None
    wording = refusals.most_common(1)[0][0]
    drafts = [
        row
        for row in map(json.loads, (run_dir / "sft.jsonl").open(encoding="utf-8"))
        if row["provenance"].get("target_source") == "draft"
    ]
    # Only real answers: the evaluation's judge (not a refusal, echo, gibberish or empty).
    outcomes = judge([(r["messages"][-2]["content"], r["messages"][-1]["content"]) for r in drafts])
    rows = []
    for row, outcome in zip(drafts, outcomes, strict=True):
        prov, answer = row["provenance"], row["messages"][-1]
        if outcome != "compliance":
            continue
        rows.append({
            "prompt": row["messages"][:-1], "chosen": [answer],
            "rejected": [{"role": "assistant", "content": wording}],
            "provenance": {**prov, "source": "contrast", "rejected_candidate": "refusal-wording"},
        })  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "dpo.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return out_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("cycle"))
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--harmful", type=int, default=250, help="harmful training prompts")
    ap.add_argument("--benign", type=int, default=450, help="safe training prompts")
    ap.add_argument("--tokens", type=int, default=64, help="max new tokens per draft")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--eval-limit", type=int, default=None, help="prompts per set (seeded)")
    ap.add_argument("--sft-epochs", type=float, default=2.0)
    ap.add_argument("--sft-lr", type=float, default=1e-4)
    ap.add_argument("--dpo-epochs", type=float, default=1.0)
    ap.add_argument("--dpo-lr", type=float, default=2e-5)
    ap.add_argument("--contrast", action=argparse.BooleanOptionalAction, default=True,
                    help="add over-refusal DPO pairs (see over_refusal_pairs)")  # fmt: skip
    ap.add_argument("--run-dir", type=Path, nargs="+", help="reuse finished runs instead")
    ap.add_argument("--reuse-before", action="store_true",
                    help="reuse OUT/eval_before.json (the base model does not change)")  # fmt: skip
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                    help="bf16 autocast; default: the machine's choice")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    # The project's refusal detector, loaded once: the agreement check, the over-refusal pairs
    # and the dataset cards use it (the evaluation loads its own and names it in its JSON).
    judge, _ = default_judge()
    is_refusal = default_refusal_detector()
    times: dict[str, float] = {}
    report: dict[str, Any] = {}

    prompts: list[dict[str, Any]] = []
    run_dirs = args.run_dir
    if run_dirs is None:
        prompts, report["prompts"] = training_prompts(
            args.data, args.harmful, args.benign, args.seed
        )
        path = args.out / "train_prompts.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in prompts), encoding="utf-8")
        times["prompts_s"] = round(time.time() - t0, 1)
        t = time.time()
        spec = hierarchy(args.out, args.concurrency, args.tokens)
        cmd = [sys.executable, "-m", "oversight", "run", str(spec), "--prompts", str(path),
               "--name", "cycle", "--runs-dir", str(args.out / "runs"), "--json"]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=sys.stderr)
        run_dirs = [args.out / "runs" / "cycle"]
        times["oversight_run_s"] = round(time.time() - t, 1)
        report["consensus_vs_labels"] = agreement(run_dirs[0], prompts, is_refusal)

    def evaluate(model: str) -> dict[str, Any]:
        return evaluate_model(
            model, sets=SET_NAMES, limit=args.eval_limit, data_dir=args.data, batch_size=32
        )

    before_path = args.out / "eval_before.json"
    t = time.time()
    if args.reuse_before and before_path.exists():
        before = json.loads(before_path.read_text(encoding="utf-8"))
    else:
        before = evaluate("default")
        before_path.write_text(json.dumps(before, indent=2, ensure_ascii=False), encoding="utf-8")
        times["eval_before_s"] = round(time.time() - t, 1)
    t = time.time()
    sft = train_sft(run_dirs, SFTSettings(
        output_dir=str(args.out / "sft"), epochs=args.sft_epochs, learning_rate=args.sft_lr,
        batch_size=4, eval_fraction=0.0, max_length=512, warmup_ratio=0.05,
        save_steps=10_000, logging_steps=5, seed=args.seed, bf16=args.bf16,
    ), is_refusal=is_refusal)  # fmt: skip
    times["sft_s"] = round(time.time() - t, 1)
    t = time.time()
    dpo_dirs = list(run_dirs)
    if args.contrast:
        contrast = over_refusal_pairs(run_dirs[0], args.out / "contrast", judge)
        dpo_dirs += [contrast] if contrast else []
        lines = (contrast / "dpo.jsonl").read_text(encoding="utf-8") if contrast else ""
        report["contrast_pairs"] = lines.count("\n")
    dpo = train_dpo(dpo_dirs, DPOSettings(
        model=str(sft.model_dir), output_dir=str(args.out / "dpo"), epochs=args.dpo_epochs,
        learning_rate=args.dpo_lr, batch_size=8, eval_fraction=0.0, max_length=384,
        save_steps=10_000, logging_steps=5, seed=args.seed, bf16=args.bf16,
    ), is_refusal=is_refusal)  # fmt: skip
    times["dpo_s"] = round(time.time() - t, 1)
    t = time.time()
    after = evaluate(str(dpo.model_dir))
    (args.out / "eval_after.json").write_text(
        json.dumps(after, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    times["eval_after_s"] = round(time.time() - t, 1)
    times["total_s"] = round(time.time() - t0, 1)
    report.update({
        "run_dirs": [str(r) for r in run_dirs], "sft_rows": sft.train_rows,
        "dpo_pairs": dpo.train_rows, "eval_limit": args.eval_limit,
        "detector": after["detector"], "times": times,
        "before": rates(before), "after": rates(after),
        "card": {k: sft.card.get(k) for k in ("per_provenance", "per_target_source", "targets",
                                              "base_drafts", "escalation_rate")},
        "samples": {
            name: [
                {"prompt": b["prompt"][:120], "before": b["answer"][:160],
                 "after": a["answer"][:160], "label_after": a["label"]}
                for b, a in zip(before["sets"][name]["samples"], after["sets"][name]["samples"],
                                strict=False)
            ]
            for name in after["sets"]
        },
    })  # fmt: skip
    text = json.dumps(report, indent=2, ensure_ascii=False)
    (args.out / "cycle.json").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
