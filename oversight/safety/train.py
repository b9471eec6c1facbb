"""Train the safety classifiers: ``python -m oversight.safety.train``.

Steps, all seeded:

1. build the training rows: the project's seed set (:mod:`oversight.safety.seed`), AdvBench
   behaviours (harmful) and the benign instruction sets (self-instruct seed tasks, Vicuna and
   MT-Bench questions; their reference answers serve as compliant responses);
2. drop every row that is a near-duplicate of an evaluation prompt (every set of
   :mod:`oversight.evaluation.sets`: XSTest, HarmBench test, JBB harmful and benign) by the
   project's one check, :mod:`oversight.dedup` (exact, normalised, content-word Jaccard >= 0.5,
   MiniLM cosine >= 0.9);
3. write the rows that remain to ``oversight/safety/data/seed_{request,response}.jsonl``;
4. run the frozen bottom of MiniLM once over every text, then fine-tune each task's top layers
   and head for a few epochs (AdamW, binary cross-entropy, class-balanced);
5. save ``weights/{request,response}.safetensors`` (float16) and ``weights/meta.json``.
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
from ..evaluation.sets import available_sets, evaluation_texts
from ._encoder import Encoder, _torch, make_head
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
        text = task["instruction"] + (f"\n\n{inst['input']}" if inst["input"] else "")
        rows.append(SeedRow("request", text, 0, "self_instruct"))
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


def _bottom_all(enc: Encoder, texts: Sequence[str], batch: int = 64) -> tuple[list[Any], Any]:
    """Per-text frozen activations (unpadded) and the stock embeddings."""
    torch = enc.torch
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    hidden: list[Any] = [None] * len(texts)
    embs: list[Any] = [None] * len(texts)
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        h, mask, emb = enc.bottom([texts[i] for i in idx])
        for j, i in enumerate(idx):
            hidden[i] = h[j, : int(mask[j].sum())].clone()
            embs[i] = emb[j]
        if (start // batch) % 10 == 0:
            _log(f"encoded {start + len(idx)}/{len(texts)}")
    return hidden, torch.stack(embs)


def _pad(torch: Any, items: list[Any]) -> tuple[Any, Any]:
    longest = max(x.shape[0] for x in items)
    hidden = torch.zeros(len(items), longest, items[0].shape[1])
    mask = torch.zeros(len(items), longest, dtype=torch.long)
    for i, x in enumerate(items):
        hidden[i, : x.shape[0]] = x
        mask[i, : x.shape[0]] = 1
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
) -> Any:
    """Fine-tune one task's top layers + head on cached bottom activations."""
    torch = enc.torch
    torch.manual_seed(seed)
    rng = random.Random(seed)
    head = make_head(enc)
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


def train(
    *,
    out_dir: Path = WEIGHTS_DIR,
    data_root: Path | None = None,
    seed: int = 0,
    epochs: int = 3,
    layers: int = 1,
    threads: int = 2,
    write_seed: bool = True,
) -> dict[str, Any]:
    """Build the data, de-duplicate against evaluation sets, fine-tune, save. Returns a report."""
    torch = _torch()
    from safetensors.torch import save_file

    torch.set_num_threads(threads)
    started = time.monotonic()
    root = data_root or default_data_root()
    rows = generate_seed(seed) + external_rows(root)
    enc = Encoder(split=6 - layers)
    texts = [r.text for r in rows]
    hidden, embs = _bottom_all(enc, texts)
    names = available_sets(root)
    if not names:
        raise InputError(
            f"no evaluation sets under {root}: training must be checked against them; pass "
            "--data (or set $OVERSIGHT_DATA) to the folder with xstest/, harmbench/, jbb-behaviors/"
        )
    refs = evaluation_texts(root, names)
    ref_texts = list(dict.fromkeys(t for ts in refs.values() for t in ts))
    _, ref_embs = _bottom_all(enc, ref_texts)
    table = {t: e for t, e in zip(texts, embs.numpy(), strict=True)}
    ref_table = {t: e for t, e in zip(ref_texts, ref_embs.numpy(), strict=True)}

    def lookup(batch: list[str]) -> Any:
        import numpy as np

        return np.stack([table[t] if t in table else ref_table[t] for t in batch])

    check = NearDuplicateCheck(refs, embed=lookup)
    kept, overlap = check.filter(list(range(len(rows))), lambda i: texts[i])
    _log(overlap.line("training rows"))
    keep = [False] * len(rows)
    for i in kept:
        keep[i] = True
    dropped = {t: 0 for t in TASKS}
    for row, k in zip(rows, keep, strict=True):
        dropped[row.task] += not k
    report: dict[str, Any] = {
        "seed": seed,
        "epochs": epochs,
        "layers": layers,
        "dropped_near_duplicates": dropped,
        "near_duplicates": overlap.as_dict(),
        "rows": {},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for task in TASKS:
        idx = [i for i, r in enumerate(rows) if r.task == task and keep[i]]
        if write_seed:
            _write_jsonl(
                SEED_DATA_DIR / f"seed_{task}.jsonl",
                [rows[i] for i in idx if rows[i].family not in _EXTERNAL],
            )
        labels = [rows[i].label for i in idx]
        head = train_head(enc, [hidden[i] for i in idx], labels, epochs=epochs, seed=seed)
        state = {k: v.detach().to(torch.float16).contiguous() for k, v in head.state_dict().items()}
        save_file(state, str(out_dir / f"{task}.safetensors"))
        report["rows"][task] = {"total": len(idx), "positive": sum(labels)}
    meta = {
        "layers": layers,
        "threshold": {"request": 0.5, "response": 0.5},
        "trained_with": report,
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


_EXTERNAL = {"advbench", "self_instruct", "self_instruct_answer", "vicuna_bench", "mt_bench"}


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where to save the weights")
    p.add_argument("--data", type=Path, default=None, help="folder with the data sets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--layers", type=int, default=1, help="top MiniLM layers to fine-tune (1-6)")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    report = train(
        out_dir=a.out,
        data_root=a.data,
        seed=a.seed,
        epochs=a.epochs,
        layers=a.layers,
        threads=a.threads,
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
