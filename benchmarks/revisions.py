"""Do revisions follow their critiques? The embedded hierarchy on validation prompts.

The prompts are a seeded sample of the project's own seed requests (harmful and benign,
``oversight.safety.seed``): neither the main job's built-in prompts nor any evaluation set, so the
reviser settings chosen here are not chosen on a set whose figure we report. Each variant runs
``oversight run`` on the same prompts with different reviser options and reports, from the run
summary's ``feedback``: where targets came from, how many model revisions survived the checks
and became targets, and how often a quoted violating span is gone from a model revision.

    python benchmarks/revisions.py --prompts 24 --variants base,penalty
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import yaml

VARIANTS: dict[str, dict[str, object]] = {
    "base": {},
    "penalty": {"repetition_penalty": 1.3},
    "penalty_no_few_shot": {"repetition_penalty": 1.3, "few_shot": False},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--variants", default="base,penalty")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from oversight.cli.run import run_command
    from oversight.devices import detect
    from oversight.safety.seed import generate_seed

    rows = [r for r in generate_seed(args.seed) if r.task == "request"]
    rng = random.Random(args.seed)
    harmful = rng.sample([r for r in rows if r.label == 1], args.prompts * 2 // 3)
    benign = rng.sample([r for r in rows if r.label == 0], args.prompts - len(harmful))
    prompts = [
        {"id": f"v{i}", "prompt": r.text, "labels": {"harm": "harmful" if r.label else "benign"}}
        for i, r in enumerate(harmful + benign)
    ]
    base = yaml.safe_load(Path("roles/embedded.yaml").read_text())
    result: dict[str, object] = {
        "benchmark": "revisions",
        "cpu": detect("cpu").as_dict(),
        "load_start": os.getloadavg(),
        "prompts": len(prompts),
        "harmful": len(harmful),
        "source": "oversight.safety.seed requests (validation; not the main job, not an eval set)",
        "variants": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        prompt_file = tmpdir / "prompts.jsonl"
        prompt_file.write_text("".join(json.dumps(p) + "\n" for p in prompts))
        for name in args.variants.split(","):
            spec = json.loads(json.dumps(base))
            for agent in spec["agents"]:
                if agent["role"] == "reviser":
                    agent["options"] = {**agent.get("options", {}), **VARIANTS[name]}
            spec["constitution"] = str(Path("constitutions/default.yaml").resolve())
            spec["escalation"] = str(Path("escalation/default.yaml").resolve())
            hierarchy = tmpdir / f"{name}.yaml"
            hierarchy.write_text(yaml.safe_dump(spec, sort_keys=False))
            started = time.perf_counter()
            summary = run_command(
                str(hierarchy),
                prompts=prompt_file,
                runs_dir=tmpdir / "runs",
                name=name,
                queue_url=f"sqlite:///{tmpdir / 'queue.db'}",
                show_progress=False,
            )
            feedback = summary["feedback"]
            model_sources = ("model", "few_shot", "best_of_n")
            revisions = feedback["revisions"]["by_source"]
            targets = feedback["targets"]["by_source"]
            result["variants"][name] = {  # type: ignore[index]
                "options": VARIANTS[name],
                "wall_s": round(time.perf_counter() - started, 1),
                "model_revisions": sum(revisions.get(s, 0) for s in model_sources),
                "model_revisions_as_targets": sum(targets.get(s, 0) for s in model_sources),
                "targets_by_source": targets,
                "template_share": feedback["targets"]["template_share"],
                "quoted_span_removed_by_model": feedback["revisions"].get(
                    "model_quoted_span_removed"
                ),
                "harmful_targets_distinct_2": feedback["targets"]["harmful_targets_distinct_2"],
                "agents": feedback["agents"],
            }
            print(json.dumps({name: result["variants"][name]}), file=sys.stderr, flush=True)  # type: ignore[index]
    result["load_end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
