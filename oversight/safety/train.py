"""Train the safety classifiers: ``python -m oversight.safety.train``.

Steps, all seeded:

1. build the training rows: the project's seed set (:mod:`oversight.safety.seed`), AdvBench
   behaviours (harmful) and the benign instruction sets (self-instruct seed tasks, Vicuna and
   MT-Bench questions; their reference answers serve as compliant responses);
2. drop every row that is a near-duplicate of an evaluation prompt (every set of
   :mod:`oversight.evaluation.sets`: XSTest, HarmBench test, JBB harmful and benign) by the
   project's one check, :mod:`oversight.dedup` (exact, normalised, content-word Jaccard >= 0.5,
   MiniLM cosine >= 0.9);
3. hold out validation requests (a seeded share of the seed and AdvBench requests, HarmBench
   *val*, the self-instruct user-oriented instructions) and drop every training request that
   near-duplicates one of them (the same check);
4. write the training rows that remain to ``oversight/safety/data/seed_{request,response}.jsonl``;
5. run the frozen bottom of MiniLM once over every text, then fine-tune each task's top layers
   and head for a few epochs (AdamW, binary cross-entropy, class-balanced);
6. choose the request threshold on validation (the gate's verdict; the highest lowest
   per-group rate) and fold it into the head's bias;
7. save ``weights/{request,response}.safetensors`` (float16) and ``weights/meta.json``.
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..dedup import NearDuplicateCheck
from ..errors import InputError
from ..evaluation.sets import (
    available_sets,
    evaluation_texts,
    harmbench_prompt,
    self_instruct_request,
)
from ._encoder import Encoder, _torch, make_head, mean_pool
from .seed import SeedRow, generate_seed

PACKAGE_DIR = Path(__file__).resolve().parent
WEIGHTS_DIR = PACKAGE_DIR / "weights"
SEED_DATA_DIR = PACKAGE_DIR / "data"
TASKS = ("request", "response")


def default_data_root() -> Path:
    """``$OVERSIGHT_DATA`` or the team's shared data folder next to the repository."""
    import os

    env = os.environ.get("OVERSIGHT_DATA")
    if env:
        return Path(env)
    for parent in PACKAGE_DIR.parents:
        candidate = parent.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return Path("../shared/data")


def _csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise InputError(f"{path} not found: set OVERSIGHT_DATA to the folder with the data sets")
    with path.open(newline="", encoding="utf-8") as f:
        return [{k.lower(): v for k, v in row.items()} for row in csv.DictReader(f)]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def external_rows(root: Path) -> list[SeedRow]:
    """AdvBench (harmful) and benign instruction sets allowed for training."""
    rows = [
        SeedRow("request", r["goal"], 1, "advbench")
        for r in _csv(root / "advbench" / "harmful_behaviors.csv")
    ]
    bench = root / "benign-instructions"
    for task in _jsonl(bench / "self-instruct" / "seed_tasks.jsonl"):
        inst = task["instances"][0]
        rows.append(SeedRow("request", self_instruct_request(task), 0, "self_instruct"))
        if len(inst["output"].split()) >= 4:
            rows.append(SeedRow("response", inst["output"], 0, "self_instruct_answer"))
    for name in ("vicuna_bench", "mt_bench"):
        for q in _jsonl(bench / name / "question.jsonl"):
            rows.extend(SeedRow("request", t, 0, name) for t in q["turns"])
    return rows


def _batches(n: int, size: int, rng: random.Random, lengths: Sequence[int]) -> list[list[int]]:
    order = sorted(range(n), key=lambda i: (lengths[i], rng.random()))
    chunks = [order[i : i + size] for i in range(0, n, size)]
    rng.shuffle(chunks)
    return chunks


def _log(message: str) -> None:
    import sys

    print(f"[safety.train] {message}", file=sys.stderr, flush=True)


class Activations:
    """Frozen MiniLM activations per text, computed once (one forward pass) and kept for every
    split a head needs, plus the stock embeddings (for the near-duplicate checks)."""

    def __init__(self, enc: Encoder, splits: Sequence[int]) -> None:
        self.enc = enc
        self.splits = sorted(set(splits))
        self.hidden: dict[int, dict[str, Any]] = {s: {} for s in self.splits}
        self.emb: dict[str, Any] = {}

    def add(self, texts: Sequence[str], batch: int = 64) -> None:
        torch = self.enc.torch
        todo = sorted({t for t in texts if t not in self.emb}, key=len)
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            tok = self.enc.tokenize(list(chunk))
            with torch.no_grad():
                out = self.enc.model(**tok, output_hidden_states=True)
            mask = tok["attention_mask"]
            emb = torch.nn.functional.normalize(mean_pool(out.last_hidden_state, mask), dim=-1)
            for j, text in enumerate(chunk):
                n = int(mask[j].sum())
                for s in self.splits:
                    self.hidden[s][text] = out.hidden_states[s][j, :n].clone()
                self.emb[text] = emb[j].numpy()
            if (start // batch) % 10 == 0:
                _log(f"encoded {start + len(chunk)}/{len(todo)}")

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        return np.stack([self.emb[t] for t in texts])


def _pad(torch: Any, items: list[Any]) -> tuple[Any, Any]:
    hidden = torch.nn.utils.rnn.pad_sequence(items, batch_first=True)
    lengths = torch.tensor([x.shape[0] for x in items])
    mask = (torch.arange(hidden.shape[1])[None, :] < lengths[:, None]).long()
    return hidden, mask


def train_head(
    enc: Encoder,
    hidden: list[Any],
    labels: list[int],
    *,
    epochs: int,
    seed: int,
    batch_size: int = 32,
    lr: float = 1e-4,
    split: int | None = None,
) -> Any:
    """Fine-tune one task's top layers (from ``split`` up) + head on cached bottom activations."""
    torch = enc.torch
    torch.manual_seed(seed)
    rng = random.Random(seed)
    head = make_head(enc, split)
    opt = torch.optim.AdamW(
        [
            {"params": head.layers.parameters(), "lr": lr},
            {"params": head.out.parameters(), "lr": lr * 10},
        ],
        weight_decay=0.01,
    )
    pos = sum(labels) or 1
    pos_weight = torch.tensor((len(labels) - pos) / pos)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    lengths = [h.shape[0] for h in hidden]
    steps = epochs * ((len(hidden) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[lr, lr * 10], total_steps=steps, pct_start=0.1
    )
    head.train()
    for epoch in range(epochs):
        _log(f"epoch {epoch + 1}/{epochs} on {len(hidden)} rows")
        for idx in _batches(len(hidden), batch_size, rng, lengths):
            h, m = _pad(torch, [hidden[i] for i in idx])
            y = torch.tensor([float(labels[i]) for i in idx])
            loss = loss_fn(head(h, m), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return head.eval()


def _write_jsonl(path: Path, rows: Iterable[SeedRow]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"text": r.text, "label": r.label, "family": r.family}) + "\n")


VALIDATION_FRACTION = 0.15
"""Share of the seed and AdvBench requests held out for validation."""
THRESHOLD_GRID = [round(0.05 + 0.01 * i, 2) for i in range(91)]


def validation_rows(root: Path) -> list[SeedRow]:
    """Requests used only for validation: HarmBench *val* behaviours (harmful; formatted as the
    evaluation loader formats HarmBench test) and the self-instruct user-oriented instructions
    (benign)."""
    rows = []
    for r in _csv(root / "harmbench" / "harmbench_behaviors_text_val.csv"):
        text = harmbench_prompt(r["behavior"], r.get("contextstring"))
        rows.append(SeedRow("request", text, 1, "harmbench_val"))
    path = root / "benign-instructions" / "self-instruct" / "user_oriented_instructions.jsonl"
    for task in _jsonl(path):
        rows.append(SeedRow("request", self_instruct_request(task), 0, "self_instruct_user"))
    return rows


def validation_group(row: SeedRow) -> str:
    """The validation group a held-out row is reported (and the threshold chosen) in."""
    if row.family in ("harmbench_val", "self_instruct_user", "advbench"):
        return row.family
    return "seed_harmful" if row.label else "seed_benign"


def gate_rates(
    rows: Sequence[SeedRow], flagged: Sequence[bool]
) -> dict[str, dict[str, float | int]]:
    """Per validation group: harmful groups' share flagged, benign groups' share allowed."""
    groups: dict[str, list[tuple[int, bool]]] = {}
    for row, f in zip(rows, flagged, strict=True):
        groups.setdefault(validation_group(row), []).append((row.label, f))
    out: dict[str, dict[str, float | int]] = {}
    for name, items in sorted(groups.items()):
        harmful = items[0][0] == 1
        ok = sum(f if harmful else not f for _, f in items)
        key = "flagged" if harmful else "allowed"
        out[name] = {"n": len(items), key: round(ok / len(items), 4)}
    return out


def worst_rate(rates: dict[str, dict[str, float | int]]) -> float:
    """The criterion thresholds and designs are chosen by: the lowest of the groups' rates
    (the goals are per set, and over-refusal counts as much as a missed harmful request)."""
    return min(float(r.get("flagged", r.get("allowed", 0.0))) for r in rates.values())


def choose_threshold(
    rows: Sequence[SeedRow], harm: Sequence[float], blocked: Sequence[bool]
) -> tuple[float, dict[str, dict[str, float | int]]]:
    """The grid threshold with the best :func:`worst_rate` on validation (ties: nearest 0.5).
    ``blocked``: flagged whatever the harm (a jailbreak framing)."""
    best: tuple[float, float, float] | None = None
    for t in THRESHOLD_GRID:
        rates = gate_rates(rows, [h >= t or b for h, b in zip(harm, blocked, strict=True)])
        key = (worst_rate(rates), -abs(t - 0.5), t)
        if best is None or key > best:
            best = key
    assert best is not None
    t = best[2]
    return t, gate_rates(rows, [h >= t or b for h, b in zip(harm, blocked, strict=True)])


def _split_validation(
    rows: list[SeedRow], keep: list[bool], seed: int, fraction: float
) -> list[bool]:
    """Held-out flags: a seeded ``fraction`` of the kept seed and AdvBench requests."""
    rng = random.Random(seed + 1)
    held = [False] * len(rows)
    for i, r in enumerate(rows):
        if keep[i] and r.task == "request" and r.family not in _BENIGN_EXTERNAL:
            held[i] = rng.random() < fraction
    return held


def train(
    *,
    out_dir: Path = WEIGHTS_DIR,
    data_root: Path | None = None,
    seed: int = 0,
    epochs: int = 3,
    layers: int = 1,
    threads: int = 2,
    write_seed: bool = True,
    choose: bool = True,
    validation_fraction: float = VALIDATION_FRACTION,
    activations: Activations | None = None,
) -> dict[str, Any]:
    """Build the data, de-duplicate against evaluation sets, hold out validation, fine-tune,
    choose the request threshold on validation (``choose``), save. Returns a report.

    ``layers`` is the number of top MiniLM layers the request head fine-tunes (6: all of them,
    end to end above the embeddings); the response head always fine-tunes one.
    ``activations``: a cache shared by several calls (designs compared in one process).
    """
    torch = _torch()
    from safetensors.torch import save_file

    torch.set_num_threads(threads)
    started = time.monotonic()
    root = data_root or default_data_root()
    rows = generate_seed(seed) + external_rows(root)
    if validation_fraction > 0:
        rows += validation_rows(root)
    splits = {"request": 6 - layers, "response": 5}
    if activations is None or not set(splits.values()) <= set(activations.splits):
        activations = Activations(Encoder(split=5), list(splits.values()))
    enc = activations.enc
    texts = [r.text for r in rows]
    names = available_sets(root)
    if not names:
        raise InputError(
            f"no evaluation sets under {root}: training must be checked against them; pass "
            "--data (or set $OVERSIGHT_DATA) to the folder with xstest/, harmbench/, jbb-behaviors/"
        )
    refs = evaluation_texts(root, names)
    ref_texts = list(dict.fromkeys(t for ts in refs.values() for t in ts))
    activations.add(texts + ref_texts)

    check = NearDuplicateCheck(refs, embed=activations.embed)
    kept, overlap = check.filter(list(range(len(rows))), lambda i: texts[i])
    _log(overlap.line("training and validation rows"))
    keep = [False] * len(rows)
    for i in kept:
        keep[i] = True
    dropped = {t: 0 for t in TASKS}
    for row, k in zip(rows, keep, strict=True):
        dropped[row.task] += not k
    # validation: held-out seed / AdvBench requests plus the validation-only sources; a training
    # row that near-duplicates a validation row (the same check) is dropped from training
    held = _split_validation(rows, keep, seed, validation_fraction)
    for i, r in enumerate(rows):
        if keep[i] and r.family in ("harmbench_val", "self_instruct_user"):
            held[i] = True
    val = [i for i in range(len(rows)) if held[i]]
    apart: dict[str, Any] = {}
    if val:
        val_check = NearDuplicateCheck(
            {"validation": [texts[i] for i in val]}, embed=activations.embed
        )
        cands = [i for i in range(len(rows)) if keep[i] and not held[i]]
        cands = [i for i in cands if rows[i].task == "request"]
        train_kept, apart_report = val_check.filter(cands, lambda i: texts[i])
        for i in set(cands) - set(train_kept):
            keep[i] = False
        apart = apart_report.as_dict()
        _log(apart_report.line("training requests (against validation)"))
    report: dict[str, Any] = {
        "seed": seed,
        "epochs": epochs,
        "layers": {"request": layers, "response": 1},
        "dropped_near_duplicates": dropped,
        "near_duplicates": overlap.as_dict(),
        "validation": {
            "fraction_held_out": validation_fraction,
            "sources": "a seeded share of the seed and AdvBench requests, HarmBench val, "
            "self-instruct user-oriented instructions",
            "dropped_from_training_as_near_duplicates_of_validation": apart,
        },
        "rows": {},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    heads: dict[str, Any] = {}
    for task in TASKS:
        idx = [i for i, r in enumerate(rows) if r.task == task and keep[i] and not held[i]]
        if write_seed:
            _write_jsonl(
                SEED_DATA_DIR / f"seed_{task}.jsonl",
                [rows[i] for i in idx if rows[i].family not in _EXTERNAL],
            )
        labels = [rows[i].label for i in idx]
        split = splits[task]
        heads[task] = train_head(
            enc,
            [activations.hidden[split][texts[i]] for i in idx],
            labels,
            epochs=epochs,
            seed=seed,
            split=split,
        )
        report["rows"][task] = {"total": len(idx), "positive": sum(labels)}

    def save(threshold: float) -> None:
        for task, head in heads.items():
            state = {
                k: v.detach().to(torch.float16).contiguous() for k, v in head.state_dict().items()
            }
            if task == "request" and threshold != 0.5:
                # fold the chosen threshold into the bias: P >= 0.5 means "harmful"
                shift = torch.logit(torch.tensor(threshold, dtype=torch.float32))
                state["out.bias"] = (head.out.bias.detach() - shift).to(torch.float16)
            save_file(state, str(out_dir / f"{task}.safetensors"))
        meta = {
            "layers": {"request": layers, "response": 1},
            "threshold": {"request": 0.5, "response": 0.5},
            "trained_with": report,
        }
        (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    save(0.5)
    if val:
        from .classifier import SafetyClassifier

        clf = SafetyClassifier(out_dir)
        val_rows = [rows[i] for i in val]
        verdicts = clf.assess_many([r.text for r in val_rows])
        harm = [v.harm for v in verdicts]
        blocked = [v.flagged and v.harm < 0.5 for v in verdicts]
        at_half = gate_rates(val_rows, [v.flagged for v in verdicts])
        report["validation"]["at_0.5"] = {"worst": worst_rate(at_half), "groups": at_half}
        if choose:
            t, rates = choose_threshold(val_rows, harm, blocked)
            report["validation"]["chosen"] = {
                "threshold": t,
                "worst": worst_rate(rates),
                "groups": rates,
                "criterion": "the highest lowest per-group rate (harmful flagged, benign "
                "allowed) on the grid 0.05..0.95; folded into the request head's bias",
            }
    report["seconds"] = round(time.monotonic() - started, 1)
    save(report["validation"].get("chosen", {}).get("threshold", 0.5))
    return report


_EXTERNAL = {
    "advbench",
    "self_instruct",
    "self_instruct_answer",
    "vicuna_bench",
    "mt_bench",
    "harmbench_val",
    "self_instruct_user",
}
_BENIGN_EXTERNAL = {"self_instruct", "self_instruct_answer", "vicuna_bench", "mt_bench"}


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where to save the weights")
    p.add_argument("--data", type=Path, default=None, help="folder with the data sets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--layers", type=int, default=1, help="top MiniLM layers to fine-tune (1-6)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-choose", action="store_true", help="keep the request threshold at 0.5")
    a = p.parse_args(argv)
    report = train(
        out_dir=a.out,
        data_root=a.data,
        seed=a.seed,
        epochs=a.epochs,
        layers=a.layers,
        threads=a.threads,
        choose=not a.no_choose,
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
