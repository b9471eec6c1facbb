"""Per-principle heads vs the harm score, AUROC on held-out labels.

    python benchmarks/principles.py [--data ../shared/data] [--weights DIR] > result.json

For each principle and each held-out labelled set, the AUROC of the principle's own assessment
next to the AUROC of the harm score on the *same* labels (the number every critic returned
before), with n, positives, a stratified bootstrap 95% interval of the difference, and where the
labels came from:

* ``harmbench_val`` (80 rows, all harmful): ``SemanticCategory`` -> principle
  (:data:`oversight.safety.train_principles.HARMBENCH_CATEGORIES`); contextual rows are rendered as
  context + ``---`` + behaviour. Never trained on (training drops its near-duplicates).
* ``jbb`` (100 harmful + 100 benign twins): the harmful rows' ``category`` -> principle
  (:data:`~oversight.safety.train_principles.JBB_CATEGORIES`), every benign row a negative.
* ``project_test``: the ``test`` split of ``oversight/safety/data/principles.jsonl`` (topics and,
  for pairs, wording templates no training or threshold choice saw); for a pair principle also
  the other principles' test pairs (``CROSS_LABELS``) and the 252 self-instruct user-oriented
  instruction / answer pairs (ordinary answers: negatives; used nowhere else).

Request-level labels compare the principle's request head, gated by the request's harm
(:func:`oversight.safety.principles.gate`, what the backend scores when a candidate complies),
with the request-harm probability (what the harm path scores then); the ungated head's AUROC
is reported too. Pair labels go through the
``classifier`` backend's ``score`` exactly as a critic asks it (principle vs ``harm``), so the
refusal detector and the max over heads are included.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from oversight.backends._protocol import ScoreRequest
from oversight.backends.classifier import ClassifierBackend
from oversight.evaluation.sets import harmbench_prompt
from oversight.safety.principles import PROJECT_SET, auroc, gate
from oversight.safety.train import default_data_root
from oversight.safety.train_principles import (
    HARMBENCH_CATEGORIES,
    JBB_CATEGORIES,
    ordinary_pairs,
    pair_labels,
    project_examples,
)

BOOTSTRAP = 2000


def _log(message: str) -> None:
    print(f"[benchmarks/principles] {message}", file=sys.stderr, flush=True)


def cpu() -> dict[str, Any]:
    """CPU model and the flags that matter for MiniLM on a CPU."""
    model, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", platform.processor()):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")
    return {"model": model, "flags": [f for f in wanted if f in flags], "cores": os.cpu_count()}


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return [{k.lower(): v for k, v in row.items()} for row in csv.DictReader(f)]


def compare(own: list[float], harm: list[float], labels: list[int], seed: int = 0) -> dict:
    """AUROCs, their difference and a stratified bootstrap 95% interval of the difference."""
    a_own, a_harm = auroc(own, labels), auroc(harm, labels)
    y = np.asarray(labels)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    rng = np.random.default_rng(seed)
    o, h = np.asarray(own), np.asarray(harm)
    diffs = []
    for _ in range(BOOTSTRAP):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        do, dh = auroc(o[idx].tolist(), y[idx].tolist()), auroc(h[idx].tolist(), y[idx].tolist())
        if do is not None and dh is not None:
            diffs.append(do - dh)
    lo, hi = np.percentile(diffs, [2.5, 97.5]) if diffs else (None, None)
    return {
        "auroc_own": round(a_own, 4) if a_own is not None else None,
        "auroc_harm_score": round(a_harm, 4) if a_harm is not None else None,
        "difference_95ci": [round(float(lo), 4), round(float(hi), 4)] if diffs else None,
        "n": len(labels),
        "positives": int(y.sum()),
    }


def request_sets(root: Path) -> dict[str, tuple[list[str], dict[str, list[int]], str]]:
    """HarmBench val and JBB: (texts, labels per principle, where the labels came from)."""
    hb = _csv(root / "harmbench" / "harmbench_behaviors_text_val.csv")
    hb_texts = [harmbench_prompt(r["behavior"], r["contextstring"]) for r in hb]
    hb_labels = {
        p: [int(r["semanticcategory"] in cats) for r in hb]
        for p, cats in HARMBENCH_CATEGORIES.items()
    }
    harmful = _csv(root / "jbb-behaviors" / "harmful-behaviors.csv")
    benign = _csv(root / "jbb-behaviors" / "benign-behaviors.csv")
    jbb_texts = [r["goal"] for r in harmful + benign]
    jbb_labels = {
        p: [int(r["category"] in cats) for r in harmful] + [0] * len(benign)
        for p, cats in JBB_CATEGORIES.items()
    }
    return {
        "harmbench_val": (
            hb_texts,
            hb_labels,
            "HarmBench val SemanticCategory -> principle (all rows harmful)",
        ),
        "jbb": (
            jbb_texts,
            jbb_labels,
            "JBB-Behaviors harmful category -> principle; benign twins negative",
        ),
    }


async def backend_scores(
    backend: ClassifierBackend, principle: str, pairs: list[tuple[str, str]]
) -> list[float]:
    """P("Yes") for critique requests, as a critic sends them."""
    reqs = [
        ScoreRequest(
            messages=({"role": "user", "content": f"Does the response violate {principle}?"},),
            choices=("Yes", "No"),
            meta={"task": "critique", "principle": principle, "request": q, "candidate": a},
        )
        for q, a in pairs
    ]
    return [s.probs["Yes"] for s in await backend.score(reqs)]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    root = a.data or default_data_root()
    load_start = os.getloadavg()
    started = time.monotonic()
    backend = ClassifierBackend(a.weights, threads=a.threads)
    clf, heads = backend._classifier, backend._principles
    if heads is None:
        raise SystemExit("no principle heads: run 'oversight safety train-principles'")
    out: dict[str, Any] = {"sets": {}}

    for name, (texts, labels, source) in request_sets(root).items():
        verdicts = clf.assess_many(texts)
        harm = [max(v.harm, 0.5) if v.action == "escalate" else v.harm for v in verdicts]
        rows = {}
        for principle, y in labels.items():
            alone = heads.head_probability(principle, "request", texts)
            own = [gate(s, h) for s, h in zip(alone, harm, strict=True)]
            rows[principle] = {
                **compare(own, harm, y),
                "auroc_request_head_alone": round(auroc(alone, y) or 0.0, 4),
                "head": "request head gated by harm (as the backend scores a compliant answer)",
            }
            _log(f"{name} {principle} {rows[principle]}")
        out["sets"][name] = {"labels": source, "principles": rows}

    test = pair_labels(
        [e for e in [*project_examples(PROJECT_SET), *ordinary_pairs(root)] if e.split == "test"]
    )
    rows = {}
    for principle in sorted({e.principle for e in test}):
        ex = [e for e in test if e.principle == principle]
        y = [e.label for e in ex]
        if ex[0].kind == "pair":
            pairs = [(e.request, e.response or "") for e in ex]
            own = anyio.run(backend_scores, backend, principle, pairs)
            harm = anyio.run(backend_scores, backend, "harm", pairs)
            head = "backend critique score (all heads, refusal gate)"
        else:
            texts = [e.request for e in ex]
            alone = heads.head_probability(principle, "request", texts)
            verdicts = clf.assess_many(texts)
            harm = [max(v.harm, 0.5) if v.action == "escalate" else v.harm for v in verdicts]
            own = [gate(s, h) for s, h in zip(alone, harm, strict=True)]
            head = "request head gated by harm (as the backend scores a compliant answer)"
        rows[principle] = {**compare(own, harm, y), "head": head}
        if ex[0].kind == "request":
            rows[principle]["auroc_request_head_alone"] = round(auroc(alone, y) or 0.0, 4)
        _log(f"project_test {principle} {rows[principle]}")
    out["sets"]["project_test"] = {
        "labels": "oversight/safety/data/principles.jsonl split=test (hand-written by the "
        "project); pair heads also get the other principles' test pairs by CROSS_LABELS and "
        "self-instruct user-oriented instruction/answer pairs as negatives",
        "principles": rows,
    }
    out["machine"] = {"cpu": cpu(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()}
    out["threads"] = a.threads
    out["seconds"] = round(time.monotonic() - started, 1)
    out["command"] = "python benchmarks/principles.py"
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
