"""Safety benchmark: the safety classifier and refusal detector on the evaluation sets.

    python benchmarks/safety.py [--data ../shared/data] [--weights DIR]

Prints one JSON object:

* ``xstest``: share of the 250 safe prompts allowed, of the 200 unsafe flagged, AUROC of P(harm);
* ``harmbench_test_flagged`` (320, contextual rows rendered as context + ``---`` + behaviour),
  ``jbb_harmful_flagged``, ``jbb_benign_allowed``;
* ``jailbreaks_flagged``: in-the-wild templates and JailbreakBench PAIR / GCG / JBC /
  random-search prompts (non-null prompts only), each with its count;
* ``refusal``: agreement of the refusal detector with XSTest completions' human labels
  (full compliance vs any refusal) per model file and overall, next to phrase matching.

None of these sets is used for training (train.py drops near-duplicates of the prompt sets).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from oversight.evaluation.sets import harmbench_prompt
from oversight.safety.classifier import SafetyClassifier
from oversight.safety.refusal import RefusalDetector, phrase_refusal
from oversight.safety.train import default_data_root

LIMIT: int | None = None


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = [{k.lower(): v for k, v in row.items()} for row in csv.DictReader(f)]
    return rows[:: max(1, len(rows) // LIMIT)][:LIMIT] if LIMIT else rows


def _share(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


def _log(message: str) -> None:
    print(f"[benchmarks/safety] {message}", file=sys.stderr, flush=True)


def _auroc(scores: list[float], labels: list[int]) -> float | None:
    s = np.asarray(scores)
    y = np.asarray(labels)
    pos, neg = s[y == 1], s[y == 0]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return round(float(greater / (len(pos) * len(neg))), 4)


def _flag_rate(clf: SafetyClassifier, texts: list[str]) -> float | None:
    verdicts = clf.assess_many(texts)
    return _share(sum(v.flagged for v in verdicts), len(verdicts))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="first N rows of each set (smoke test)")
    a = p.parse_args()
    global LIMIT
    LIMIT = a.limit
    root = a.data or default_data_root()
    started = time.monotonic()
    clf = SafetyClassifier(a.weights, threads=a.threads)
    out: dict[str, object] = {}

    xs = _csv(root / "xstest" / "xstest_prompts.csv")
    verdicts = clf.assess_many([r["prompt"] for r in xs])
    safe = [v for v, r in zip(verdicts, xs, strict=True) if r["label"] == "safe"]
    unsafe = [v for v, r in zip(verdicts, xs, strict=True) if r["label"] == "unsafe"]
    out["xstest"] = {
        "safe_allowed": _share(sum(not v.flagged for v in safe), len(safe)),
        "unsafe_flagged": _share(sum(v.flagged for v in unsafe), len(unsafe)),
        "auroc": _auroc([v.harm for v in verdicts], [int(r["label"] == "unsafe") for r in xs]),
        "n_safe": len(safe),
        "n_unsafe": len(unsafe),
    }
    _log(f"xstest {out['xstest']}")
    hb = _csv(root / "harmbench" / "harmbench_behaviors_text_test.csv")
    hb_prompts = [harmbench_prompt(r["behavior"], r["contextstring"]) for r in hb]
    out["harmbench_test_flagged"] = _flag_rate(clf, hb_prompts)
    jbb = root / "jbb-behaviors"
    out["jbb_harmful_flagged"] = _flag_rate(
        clf, [r["goal"] for r in _csv(jbb / "harmful-behaviors.csv")]
    )
    benign = clf.assess_many([r["goal"] for r in _csv(jbb / "benign-behaviors.csv")])
    out["jbb_benign_allowed"] = _share(sum(not v.flagged for v in benign), len(benign))

    jail: dict[str, dict[str, float | None]] = {}
    wild = json.loads(
        (root / "jailbreak-prompts-in-the-wild" / "inthewild_jailbreak_llms.json").read_text(
            encoding="utf-8"
        )
    )[:LIMIT]
    jail["in_the_wild"] = {"flagged": _flag_rate(clf, wild), "n": len(wild)}
    arts = root / "jailbreakbench-artifacts" / "attack-artifacts"
    for name, sub in [
        ("PAIR", "PAIR/black_box"),
        ("GCG", "GCG/transfer"),
        ("JBC", "JBC/manual"),
        ("random_search", "prompt_with_random_search/black_box"),
    ]:
        doc = json.loads((arts / sub / "gpt-4-0125-preview.json").read_text(encoding="utf-8"))
        prompts = [j["prompt"] for j in doc["jailbreaks"] if j["prompt"]][:LIMIT]
        jail[name] = {"flagged": _flag_rate(clf, prompts), "n": len(prompts)}
    out["jailbreaks_flagged"] = jail
    _log(f"jailbreaks {jail}")

    detector = RefusalDetector(clf)
    per_file: dict[str, dict[str, float | None]] = {}
    total = agree = agree_phrase = 0
    for path in sorted((root / "xstest" / "model_completions").glob("*.csv")):
        rows = _csv(path)
        gold = [r["final_label"] != "1_full_compliance" for r in rows]
        judged = detector.judge_many([(r["prompt"], r["completion"]) for r in rows])
        pred = [not j.complied for j in judged]
        phrase = [phrase_refusal(r["completion"]) for r in rows]
        a_m = sum(p == g for p, g in zip(pred, gold, strict=True))
        a_p = sum(p == g for p, g in zip(phrase, gold, strict=True))
        name = path.stem.replace("xstest_v2_completions_", "")
        per_file[name] = {
            "agreement": round(a_m / len(rows), 4),
            "phrase_agreement": round(a_p / len(rows), 4),
            "n": len(rows),
        }
        total += len(rows)
        agree += a_m
        agree_phrase += a_p
    out["refusal"] = {
        "agreement": round(agree / total, 4),
        "phrase_agreement": round(agree_phrase / total, 4),
        "n": total,
        "per_file": per_file,
    }
    out["seconds"] = round(time.monotonic() - started, 1)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
