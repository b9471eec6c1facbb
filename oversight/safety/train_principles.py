"""Train the per-principle heads: ``oversight safety train-principles``.

The labels (which is which is in ``docs/safety.md``):

* :data:`SEED_FAMILIES` - seed request families -> the principles they violate (training);
* ``data/principles.jsonl`` - the project's hand-written set, train / val / test by topic;
* :data:`CROSS_LABELS` and :func:`ordinary_pairs` - extra negatives for the pair heads;
* :data:`HARMBENCH_CATEGORIES`, :data:`JBB_CATEGORIES` - evaluation labels only
  (``benchmarks/principles.py``); HarmBench val and JBB prompts are never trained on.

The L2 strength and threshold of each head are chosen on validation rows; test rows are never
read here. Embeddings of the training texts are cached in
``~/.cache/oversight/principle-embeddings.npz``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..evaluation.sets import self_instruct_request
from ._encoder import MAX_TOKENS, _torch
from .principles import (
    HEADS,
    PROJECT_SET,
    WEIGHTS_DIR,
    Embedder,
    _log,
    _logit,
    _sigmoid,
    auroc,
    features,
)

SEED_FAMILIES: dict[str, frozenset[str]] = {
    "privacy": frozenset({"harmful_privacy"}),
    "lawful": frozenset(
        {"harmful_crime", "harmful_fraud", "harmful_cyber", "harmful_drugs", "harmful_copyright"}
    ),
    "fairness": frozenset({"harmful_discrimination", "harmful_hate"}),
    "manipulation": frozenset({"harmful_misinfo", "harmful_fraud"}),
}
"""Training labels for request heads: seed families that violate each principle (the
constitution's wording: lawful = fraud, theft, intrusion, illegal purchases, piracy; fairness =
discrimination and hate; manipulation = disinformation and deceiving people for gain)."""

HARMBENCH_CATEGORIES: dict[str, frozenset[str]] = {
    "lawful": frozenset({"illegal", "cybercrime_intrusion", "copyright"}),
    "fairness": frozenset({"harassment_bullying"}),
    "manipulation": frozenset({"misinformation_disinformation"}),
}
"""Evaluation labels: HarmBench ``SemanticCategory`` -> principles (no privacy category)."""

JBB_CATEGORIES: dict[str, frozenset[str]] = {
    "privacy": frozenset({"Privacy"}),
    "lawful": frozenset(
        {"Malware/Hacking", "Fraud/Deception", "Economic harm", "Government decision-making"}
    ),
    "fairness": frozenset({"Harassment/Discrimination"}),
    "manipulation": frozenset({"Disinformation", "Fraud/Deception"}),
}
"""Evaluation labels: JBB-Behaviors ``category`` of a *harmful* row -> principles (benign rows
are negatives for every principle)."""


@dataclass(frozen=True, slots=True)
class PrincipleExample:
    """One labelled example for one principle head."""

    principle: str
    kind: str
    """``request`` or ``pair``."""
    request: str
    response: str | None
    """The response (pair heads only)."""
    label: int
    """1 = violates the principle."""
    split: str
    """``train``, ``val`` or ``test``."""
    source: str
    """Where the label came from (``seed:<family>`` or ``project:<group>``)."""


def fit_logistic(
    x: Any,
    y: Sequence[int] | Sequence[bool],
    *,
    l2: float,
    seed: int = 0,
    dtype: str = "float32",
    max_iter: int = 300,
    balanced: bool = True,
) -> tuple[np.ndarray, float]:
    """Class-balanced L2-regularised logistic regression (L-BFGS): both classes get equal total
    weight, so the bias does not just follow the class shares. Returns (weight, bias); the
    weight in ``dtype``, in which the fit also runs. Also fits the refusal probe, and (with
    ``balanced=False``: probabilities that keep the base rate) the truthfulness notes'
    calibration in ``benchmarks/truthfulness.py``."""
    torch = _torch()
    torch.manual_seed(seed)
    xt = torch.tensor(np.asarray(x), dtype=getattr(torch, dtype))
    yt = torch.tensor(np.asarray(y), dtype=getattr(torch, dtype))
    pos = float(yt.sum())
    if pos == 0 or pos == len(yt):
        raise InputError("a principle head needs both positive and negative training rows")
    weight = (
        torch.where(yt > 0, len(yt) / (2 * pos), len(yt) / (2 * (len(yt) - pos)))
        if balanced
        else None
    )
    w = torch.zeros(xt.shape[1], dtype=xt.dtype, requires_grad=True)
    b = torch.zeros(1, dtype=xt.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Any:
        opt.zero_grad()
        logits = xt @ w + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yt, weight=weight)
        loss = loss + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy().astype(dtype), float(b.detach())


def choose_threshold(scores: Sequence[float], labels: Sequence[int]) -> float:
    """The probability threshold with the best balanced accuracy on validation rows (the
    midpoint between the two scores it falls between, so it does not sit on a row's score)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    best, best_t = -1.0, 0.5
    values = np.unique(s)
    cuts = (values[1:] + values[:-1]) / 2 if len(values) > 1 else values
    for t in cuts:
        pred = s >= t
        tpr = pred[y == 1].mean() if (y == 1).any() else 0.0
        tnr = (~pred)[y == 0].mean() if (y == 0).any() else 0.0
        if (tpr + tnr) / 2 > best:
            best, best_t = (tpr + tnr) / 2, float(t)
    return best_t


# ---------------------------------------------------------------- training data
def _seed_category(text: str, family: str) -> str:
    """The seed family, with wrapped rows traced back to the action they wrap."""
    if family != "harmful_wrapped":
        return family
    from .seed import HARMFUL_ACTIONS

    for cat, actions in HARMFUL_ACTIONS.items():
        if any(a in text for a in actions):
            return f"harmful_{cat}"
    return family


def seed_examples(rows: Sequence[Any], *, val_share: float = 0.2, seed: int = 0) -> list[Any]:
    """Request-head examples from seed request rows (``SeedRow``), split train / val."""
    rng = random.Random(seed)
    out = []
    for row in rows:
        if row.task != "request":
            continue
        family = _seed_category(row.text, row.family)
        split = "val" if rng.random() < val_share else "train"
        for principle, families in SEED_FAMILIES.items():
            label = int(family in families)
            out.append(
                PrincipleExample(
                    principle, "request", row.text, None, label, split, f"seed:{family}"
                )
            )
    return out


def project_examples(path: Path = PROJECT_SET) -> list[PrincipleExample]:
    """The hand-written set: one JSON object per line (principle, request, response, label,
    split, group)."""
    if not path.exists():
        raise InputError(f"{path} not found: the project's principle set ships with the package")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            kind = "pair" if r.get("response") else "request"
            if r["principle"] not in HEADS or kind not in HEADS[r["principle"]]:
                raise ValueError(f"no {kind} head for principle {r['principle']!r}")
            if r["split"] not in ("train", "val", "test") or r["label"] not in (0, 1):
                raise ValueError("split must be train/val/test and label 0/1")
            out.append(
                PrincipleExample(
                    r["principle"],
                    kind,
                    r["request"],
                    r.get("response"),
                    int(r["label"]),
                    r["split"],
                    f"project:{r['group']}",
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}:{n}: {exc}") from exc
    return out


CROSS_LABELS: dict[str, dict[str, str]] = {
    "honesty": {"balance": "negatives", "fairness": "negatives"},
    "balance": {"honesty": "all", "fairness": "all"},
    "fairness": {"honesty": "all", "balance": "all"},
}
"""How a pair head reads the other principles' pair rows: ``all`` = every one is a negative
(a stereotyped hiring answer is not one-sided on a contested question); ``negatives`` = only
their negatives (a one-sided or stereotyped answer may also overstate certainty, so it is
left out of honesty's labels rather than called honest)."""


def ordinary_pairs(root: Path, *, seed: int = 0) -> list[PrincipleExample]:
    """Ordinary (instruction, reference answer) pairs, negatives for every pair head.

    Self-instruct seed tasks (training data the harm head uses too) are split 80/20 into train
    and val; self-instruct user-oriented tasks, used nowhere else, are the ``test`` negatives.
    """
    base = root / "benign-instructions" / "self-instruct"
    rng = random.Random(seed)
    out = []
    for name, test in (("seed_tasks.jsonl", False), ("user_oriented_instructions.jsonl", True)):
        path = base / name
        if not path.exists():
            raise InputError(
                f"{path} not found: set OVERSIGHT_DATA to the folder with the data sets"
            )
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            task = json.loads(line)
            inst = task["instances"][0]
            request = self_instruct_request(task)
            if len(inst["output"].split()) < 3:
                continue
            split = "test" if test else ("val" if rng.random() < 0.2 else "train")
            for principle in ("honesty", "balance", "fairness"):
                out.append(
                    PrincipleExample(
                        principle,
                        "pair",
                        request,
                        inst["output"],
                        0,
                        split,
                        f"self-instruct:{name.split('.')[0]}",
                    )
                )
    return out


def pair_labels(examples: Sequence[PrincipleExample]) -> list[PrincipleExample]:
    """Each pair head's rows: its own, plus the other principles' pair rows by
    :data:`CROSS_LABELS` (so balance learns that an overconfident diagnosis is not a
    one-sided answer, and so on)."""
    out = list(examples)
    pairs = [e for e in examples if e.kind == "pair" and e.source.startswith("project:")]
    for principle, rules in CROSS_LABELS.items():
        for e in pairs:
            rule = rules.get(e.principle)
            if rule == "all" or (rule == "negatives" and e.label == 0):
                out.append(
                    PrincipleExample(
                        principle,
                        "pair",
                        e.request,
                        e.response,
                        0,
                        e.split,
                        f"{e.source} ({e.principle} row)",
                    )
                )
    return out


# ---------------------------------------------------------------- training
def train_heads(
    examples: Sequence[PrincipleExample],
    embed: Callable[..., np.ndarray],
    *,
    l2_grid: Sequence[float] = (1e-4, 1e-3, 1e-2),
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Fit every (principle, kind) head present in ``examples``.

    The L2 strength and the threshold are chosen on ``val`` rows (validation AUROC, then
    balanced accuracy); ``test`` rows are never read. Returns the tensors to save and the meta.
    """
    tensors: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    groups: dict[tuple[str, str], list[PrincipleExample]] = {}
    for ex in examples:
        groups.setdefault((ex.principle, ex.kind), []).append(ex)
    for (principle, kind), rows in groups.items():
        train = [r for r in rows if r.split == "train"]
        val = [r for r in rows if r.split == "val"]
        if not train:
            continue
        xt = features(embed, kind, [r.request for r in train], [r.response for r in train])
        yt = [r.label for r in train]
        xv = features(embed, kind, [r.request for r in val], [r.response for r in val])
        yv = [r.label for r in val]
        best: tuple[float, float, np.ndarray, float] | None = None
        for l2 in l2_grid:
            w, b = fit_logistic(xt, yt, l2=l2, seed=seed)
            score = auroc(_sigmoid(xv @ w + b).tolist(), yv) if val else None
            key = score if score is not None else 0.0
            if best is None or key > best[0]:
                best = (key, l2, w, b)
        assert best is not None
        val_auc, l2, w, b = best
        threshold = choose_threshold(_sigmoid(xv @ w + b).tolist(), yv) if val else 0.5
        tensors[f"{principle}.{kind}.weight"] = w
        tensors[f"{principle}.{kind}.bias"] = np.array([b - _logit(threshold)], dtype=np.float32)
        meta.setdefault(principle, {})[kind] = {
            "l2": l2,
            "threshold": round(threshold, 4),
            "validation_auroc": round(val_auc, 4) if val else None,
            "train": {"rows": len(train), "positive": sum(yt)},
            "val": {"rows": len(val), "positive": sum(yv)},
        }
        _log(f"{principle}.{kind}: l2={l2} val AUROC={val_auc:.3f} threshold={threshold:.3f}")
    return tensors, meta


def default_cache_file() -> Path:
    """``$XDG_CACHE_HOME/oversight/principle-embeddings.npz`` (embeddings of training texts)."""
    import os

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "oversight" / "principle-embeddings.npz"


def train_principles(
    *,
    out_dir: Path = WEIGHTS_DIR,
    data_root: Path | None = None,
    project_set: Path = PROJECT_SET,
    seed: int = 0,
    threads: int = 2,
    cache_file: Path | None = None,
) -> dict[str, Any]:
    """Build the labels, drop near-duplicates of evaluation prompts, fit, save. Returns a report."""
    from ..dedup import NearDuplicateCheck
    from ..evaluation.sets import available_sets, evaluation_texts
    from .seed import generate_seed
    from .train import default_data_root

    torch = _torch()
    torch.set_num_threads(threads)
    started = time.monotonic()
    root = data_root or default_data_root()
    embed = Embedder(cache_file=cache_file or default_cache_file())
    seed_rows = seed_examples(generate_seed(seed), seed=seed)
    own = pair_labels(
        [
            e
            for e in [*project_examples(project_set), *ordinary_pairs(root, seed=seed)]
            if e.split != "test"
        ]
    )
    # One near-duplicate check (oversight.dedup) against every evaluation set, plus HarmBench
    # val, whose labels the AUROC report uses.
    refs = {
        **evaluation_texts(root, available_sets(root)),
        "harmbench_val": harmbench_val_prompts(root),
    }
    check = NearDuplicateCheck(refs, embed=lambda t: embed(list(t), MAX_TOKENS))
    requests = list(dict.fromkeys(e.request for e in [*seed_rows, *own]))
    keep = dict(zip(requests, check.keep_mask(requests), strict=True))
    examples = [e for e in [*seed_rows, *own] if keep[e.request]]
    dropped = len({e.request for e in [*seed_rows, *own]} - {e.request for e in examples})
    tensors, meta = train_heads(examples, embed, seed=seed)
    embed.save()
    doc = save_heads(out_dir, tensors, meta)
    doc.update(
        {
            "labels": {
                "seed_families": {p: sorted(f) for p, f in SEED_FAMILIES.items()},
                "project_set": "oversight/safety/data/principles.jsonl (train and val splits)",
                "cross_labels": CROSS_LABELS,
                "ordinary_pairs": "self-instruct seed tasks (negatives for every pair head)",
            },
            "seed": seed,
            "dropped_near_duplicate_requests": dropped,
        }
    )
    (out_dir / "principles.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return {**doc, "seconds": round(time.monotonic() - started, 1)}


def save_heads(out_dir: Path, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> dict:
    """Write ``principles.safetensors`` and ``principles.json``; returns the JSON document."""
    from safetensors.numpy import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "principles.safetensors"))
    doc: dict[str, Any] = {
        "encoder": "all-MiniLM-L6-v2, frozen; mean-pooled, L2-normalised final layer",
        "max_tokens": MAX_TOKENS,
        "features": {"request": "e(request)", "pair": "[e(request), e(response), product]"},
        "heads": meta,
    }
    (out_dir / "principles.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return doc


def harmbench_val_prompts(root: Path) -> list[str]:
    """HarmBench validation behaviours: held out for the AUROC report, so never trained on."""
    import csv

    path = root / "harmbench" / "harmbench_behaviors_text_val.csv"
    if not path.exists():
        raise InputError(f"{path} not found: set OVERSIGHT_DATA to the folder with the data sets")
    with path.open(newline="", encoding="utf-8") as f:
        return [row["Behavior"] for row in csv.DictReader(f)]


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="Train the per-principle heads.")
    p.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where to save the heads")
    p.add_argument("--data", type=Path, default=None, help="folder with the data sets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    report = train_principles(out_dir=a.out, data_root=a.data, seed=a.seed, threads=a.threads)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
