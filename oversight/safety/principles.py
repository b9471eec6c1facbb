"""Per-principle assessments: one small head per principle on frozen MiniLM embeddings.

The harm head answers "is this request harmful?"; a critic for privacy, lawfulness, fairness,
manipulation, honesty or balance needs its own question. Each principle gets one or two
logistic-regression heads over the stock all-MiniLM-L6-v2 sentence embedding (mean-pooled,
L2-normalised, the encoder frozen):

* a **request** head - "would answering this request violate the principle?" - for privacy,
  lawful, fairness and manipulation; the feature is the request's embedding;
* a **pair** head - "does this response violate the principle for this request?" - for
  honesty (overconfident or invented claims), balance (a one-sided answer on a contested
  question) and fairness (a stereotyped answer); the features are the request's and the
  response's embeddings and their element-wise product.

:class:`PrincipleHeads` loads ``weights/principles.{safetensors,json}`` (a few KB) and gives
``P(violates principle)``; the ``classifier`` backend answers critiques with it. Training
(:mod:`oversight.safety.train_principles`, ``oversight safety train-principles``) reads its
labels from:

* the project's seed requests (:mod:`oversight.safety.seed`): a seed family maps to the
  principles it violates (``SEED_FAMILIES``); every other seed request is a negative;
* the project's own hand-written set ``data/principles.jsonl`` (honesty, balance, fairness
  pairs; manipulation and privacy request twins), whose ``split`` column (train / val / test,
  by topic and, for pairs, by wording template) keeps its test rows out of training and
  threshold choice; each pair head also reads the other principles' pair rows
  (``CROSS_LABELS``) and ordinary instruction / answer pairs (self-instruct seed tasks) as
  negatives.

A threshold per head is chosen on validation rows (balanced accuracy) and folded into the bias,
so ``P >= 0.5`` means "violates". No evaluation set is trained on: seed rows that are
near-duplicates of HarmBench (val and test), JBB or XSTest prompts are dropped first.
``benchmarks/principles.py`` reports held-out AUROC per principle next to the harm score's.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, PrerequisiteError
from ._encoder import MAX_TOKENS, Encoder

PACKAGE_DIR = Path(__file__).resolve().parent
WEIGHTS_DIR = PACKAGE_DIR / "weights"
PROJECT_SET = PACKAGE_DIR / "data" / "principles.jsonl"
"""The project's own hand-written labelled set (honesty, balance, fairness, manipulation)."""

HEADS: dict[str, tuple[str, ...]] = {
    "privacy": ("request",),
    "lawful": ("request",),
    "fairness": ("request", "pair"),
    "manipulation": ("request",),
    "honesty": ("pair",),
    "balance": ("pair",),
}
"""Which heads each principle has: ``request`` (judged on the request, counts only when the
candidate complies) and/or ``pair`` (judged on the request and the response together)."""

_RESPONSE_TOKENS = MAX_TOKENS
_CACHE_ROWS = 4096


def _log(message: str) -> None:
    print(f"[safety.principles] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- embeddings
class Embedder:
    """Stock MiniLM sentence embeddings with an in-memory LRU and an optional file cache."""

    def __init__(self, encoder: Encoder | None = None, cache_file: Path | None = None) -> None:
        self.encoder = encoder if encoder is not None else Encoder(split=5)
        self.cache_file = cache_file
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._disk: dict[str, np.ndarray] = {}
        if cache_file is not None and cache_file.exists():
            with np.load(cache_file) as z:
                self._disk = {k: z[k] for k in z.files}

    @staticmethod
    def _key(text: str, max_tokens: int) -> str:
        return hashlib.sha1(f"{max_tokens}\0{text}".encode()).hexdigest()

    def __call__(self, texts: Sequence[str], max_tokens: int = MAX_TOKENS) -> np.ndarray:
        """``[len(texts), 384]`` L2-normalised embeddings."""
        keys = [self._key(t, max_tokens) for t in texts]
        missing = list(
            dict.fromkeys(
                t
                for t, k in zip(texts, keys, strict=True)
                if k not in self._memory and k not in self._disk
            )
        )
        order = sorted(missing, key=len)
        for start in range(0, len(order), 64):
            chunk = order[start : start + 64]
            _, _, emb = self.encoder.bottom([t or " " for t in chunk], max_tokens)
            for t, e in zip(chunk, emb.numpy(), strict=True):
                self._remember(self._key(t, max_tokens), e.astype(np.float32))
            if len(order) > 256 and (start // 64) % 10 == 0:
                _log(f"embedded {start + len(chunk)}/{len(order)}")
        out = []
        for k in keys:
            if k in self._memory:
                self._memory.move_to_end(k)
                out.append(self._memory[k])
            else:
                out.append(self._disk[k])
        return np.stack(out) if out else np.zeros((0, 384), dtype=np.float32)

    def _remember(self, key: str, vec: np.ndarray) -> None:
        self._memory[key] = vec
        if self.cache_file is not None:
            self._disk[key] = vec
        while len(self._memory) > _CACHE_ROWS and self.cache_file is None:
            self._memory.popitem(last=False)

    def save(self) -> None:
        """Write the file cache (training runs only)."""
        if self.cache_file is None:
            return
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        merged = {**self._disk, **self._memory}
        tmp = self.cache_file.with_suffix(".tmp.npz")
        np.savez(tmp, **merged)  # type: ignore[arg-type]
        tmp.replace(self.cache_file)


def features(
    embed: Callable[..., np.ndarray],
    kind: str,
    requests: Sequence[str],
    responses: Sequence[str | None] | None = None,
) -> np.ndarray:
    """The feature matrix of a head: request embedding, or [request, response, product]."""
    req = embed(list(requests), MAX_TOKENS)
    if kind == "request":
        return req
    resp = embed([r or "" for r in (responses or [""] * len(requests))], _RESPONSE_TOKENS)
    return np.concatenate([req, resp, req * resp], axis=1)


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Area under the ROC curve (ties count half); None without both classes."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    pos, neg = s[y == 1], s[y == 0]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


# ---------------------------------------------------------------- the heads at run time
def principle_weights_available(weights_dir: Path = WEIGHTS_DIR) -> bool:
    """Whether trained principle heads exist in ``weights_dir``."""
    return (weights_dir / "principles.json").exists() and (
        weights_dir / "principles.safetensors"
    ).exists()


class PrincipleHeads:
    """P(violates principle) for the principles in :data:`HEADS` that have trained weights."""

    def __init__(
        self, weights_dir: str | Path | None = None, *, encoder: Encoder | None = None
    ) -> None:
        self.weights_dir = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
        if not principle_weights_available(self.weights_dir):
            raise PrerequisiteError(
                f"no principle heads in {self.weights_dir}: run 'oversight safety train-principles'"
            )
        from safetensors.numpy import load_file

        meta_path = self.weights_dir / "principles.json"
        self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        tensors = load_file(str(self.weights_dir / "principles.safetensors"))
        self._heads: dict[str, dict[str, tuple[np.ndarray, float]]] = {}
        for principle, kinds in self.meta["heads"].items():
            for kind in kinds:
                w = tensors.get(f"{principle}.{kind}.weight")
                b = tensors.get(f"{principle}.{kind}.bias")
                if w is None or b is None:
                    raise InputError(
                        f"{meta_path}: head {principle}.{kind} has no tensors in "
                        "principles.safetensors; retrain with 'oversight safety train-principles'"
                    )
                self._heads.setdefault(principle, {})[kind] = (w.astype(np.float32), float(b[0]))
        self.embed = Embedder(encoder)

    @property
    def principles(self) -> tuple[str, ...]:
        """The principles with a trained head."""
        return tuple(self._heads)

    def kinds(self, principle: str) -> tuple[str, ...]:
        """The heads of one principle (``request``, ``pair``)."""
        return tuple(self._heads.get(principle, {}))

    def head_probability(
        self,
        principle: str,
        kind: str,
        requests: Sequence[str],
        responses: Sequence[str | None] | None = None,
    ) -> list[float]:
        """One head's probabilities (threshold folded in: ``>= 0.5`` means violates)."""
        w, b = self._heads[principle][kind]
        x = features(self.embed, kind, requests, responses)
        return [float(p) for p in _sigmoid(x @ w + b)]

    def probability(
        self,
        principle: str,
        requests: Sequence[str],
        responses: Sequence[str],
        harm: Sequence[float] | None = None,
    ) -> list[float]:
        """P(the response violates ``principle``): the most alarmed of the principle's heads.

        The request head reads every readable variant of the request (decoded base64, rot13,
        ...) and keeps the highest score, like the harm head does. With ``harm`` (the request's
        harm probability) the request head's score is gated by it - :func:`gate`, "harmful
        *and* about this principle" - so a benign request on a sensitive topic (a family
        member's health records, a fact check of a rumour) is not flagged for answering it.
        """
        from .jailbreak import normalize

        if principle not in self._heads:
            raise InputError(f"no principle head for {principle!r}; have {self.principles}")
        out = [0.0] * len(requests)
        for kind in self._heads[principle]:
            if kind == "request":
                variants = [list(normalize(r).variants) or [r] for r in requests]
                flat = [v for vs in variants for v in vs]
                probs = iter(self.head_probability(principle, "request", flat))
                scores = [max(next(probs) for _ in vs) for vs in variants]
                if harm is not None:
                    scores = [gate(s, h) for s, h in zip(scores, harm, strict=True)]
            else:
                scores = self.head_probability(principle, "pair", requests, list(responses))
            out = [max(a, s) for a, s in zip(out, scores, strict=True)]
        return out


def gate(principle_probability: float, harm_probability: float) -> float:
    """A request head's score gated by the request's harm: their geometric mean, so it is
    >= 0.5 only when the request is both harmful and about the principle (0.5 x 0.5 = 0.25)."""
    return math.sqrt(max(principle_probability, 0.0) * max(harm_probability, 0.0))
