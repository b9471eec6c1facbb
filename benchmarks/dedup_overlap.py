"""How much of the project's training text the near-duplicate check (oversight.dedup) drops.

    python benchmarks/dedup_overlap.py [--data ../shared/data] [--no-embeddings]

Checks, against every evaluation set of the registry found under the data folder:

* ``shipped_safety_requests``: the request rows the shipped safety classifier was trained on
  (``oversight/safety/data/seed_request.jsonl``; written by ``oversight safety train`` after
  its earlier check, normalised text or MiniLM cosine > 0.9, had dropped near-duplicates);
* ``external_requests``: AdvBench and the benign instruction sets (self-instruct, Vicuna,
  MT-Bench), the public prompts the safety training and ``examples/train_cycle.py`` draw on.

Prints one JSON object: drops per kind (exact, normalised, jaccard, embedding) and per
evaluation set, a few examples, the machine (CPU model and flags, load average before and
after) and the seconds taken.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from oversight.dedup import evaluation_check
from oversight.evaluation.sets import default_data_dir
from oversight.safety.train import SEED_DATA_DIR, external_rows


def _cpu() -> dict[str, object]:
    info: dict[str, object] = {"model": "", "flags": []}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and not info["model"]:
            info["model"] = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not info["flags"]:
            flags = set(line.split(":", 1)[1].split())
            info["flags"] = sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    info["cores"] = os.cpu_count()
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--data", type=Path, default=None, help="folder with the evaluation sets")
    ap.add_argument("--no-embeddings", action="store_true", help="skip the MiniLM check")
    args = ap.parse_args()
    root = args.data or default_data_dir()
    load_start = os.getloadavg()
    started = time.monotonic()
    check = evaluation_check(root, embed=None if args.no_embeddings else "minilm")
    if check is None:
        raise SystemExit(f"no evaluation sets under {root}: pass --data")
    shipped = [
        json.loads(line)["text"]
        for line in (SEED_DATA_DIR / "seed_request.jsonl").read_text().splitlines()
        if line.strip()
    ]
    external = [r.text for r in external_rows(root) if r.task == "request"]
    out: dict[str, object] = {"data_dir": str(root)}
    for name, texts in (("shipped_safety_requests", shipped), ("external_requests", external)):
        _, report = check.filter(texts, examples=8)
        out[name] = report.as_dict()
    out["seconds"] = round(time.monotonic() - started, 1)
    out["machine"] = {**_cpu(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
