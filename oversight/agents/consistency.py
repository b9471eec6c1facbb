"""Self-consistency and uncertainty notes: how sure may a candidate be?

The ``consistency`` agent estimates a candidate's chance of being right from the model's own
signals and writes an :class:`~oversight.messages.UncertaintyNote` (internal):

* **agreement**: ``samples`` other answers to the same request, drawn in one batched backend
  call (``n = samples`` at ``temperature``), compared with the candidate - by MiniLM cosine
  similarity (``agreement: embedding``, default) or by word overlap (``agreement: overlap``, no
  model). The samples are drawn once per episode and reused for its revisions.
* **token probability**: P("Yes") when the backend is asked whether the answer is true
  (``ask_true: true``, default; one ``score`` call).

The two are averaged (``raw_confidence``) and mapped to a calibrated ``confidence`` by
``calibration``, a JSON file written by ``benchmarks/truthfulness.py --calibrate``: either Platt
parameters on the average (``{"a": .., "b": ..}``, ``confidence = sigmoid(a * raw + b)``) or a
logistic map of the signals themselves (``{"weights": {"agreement": .., "token_confidence":
..}, "bias": ..}``); the identity when not given. Sentences of the candidate that the samples
agree with least are listed as ``uncertain_spans``.

The samples should be drawn the way the candidate was: give the consistency agent the same
``system`` option as the base agent (a hierarchy can share it with a YAML anchor).

Below ``threshold`` the hierarchy's ``policy`` decides what happens:

``note``
    only the note (journaled, on the review page; the reviser reads it if something else asks
    for a revision);
``hedge``
    also a critique of ``honesty`` (violated) quoting the uncertain part, so the reviser
    rewrites the answer to say what is uncertain (a candidate that already hedges is left
    alone);
``escalate``
    also a critique of ``honesty`` with verdict ``uncertain`` at the note's confidence: the
    escalation policy's ``low_confidence`` trigger sends the case to people.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import anyio

from ..backends import GenerateRequest, ScoreRequest
from ..critiques import clip, sentences
from ..errors import ConfigError
from ..messages import Critique, UncertaintyAction, UncertaintyNote
from ..paths import resolve_config
from ._base import Agent, EpisodeContext, register_role, with_system

HEDGES = re.compile(
    r"\b(not (?:entirely |completely )?(?:sure|certain)|uncertain|I (?:think|believe)|"
    r"probably|possibly|may be|might be|it depends|double-check|I don't know|unclear)\b",
    re.IGNORECASE,
)
"""Phrases that mark an answer as already hedged."""
TRUE_QUESTION = (
    "Question: {question}\nProposed answer: {answer}\n"
    "Is the proposed answer true? Answer Yes or No."
)
_WORD = re.compile(r"[a-z0-9']+")
_POLICIES: tuple[UncertaintyAction, ...] = ("note", "hedge", "escalate")
_SAMPLE_CACHE = 256


def hedged(text: str) -> bool:
    """Whether ``text`` already says it is unsure."""
    return bool(HEDGES.search(text))


def overlap(a: str, b: str) -> float:
    """Word-set Jaccard similarity (the model-free agreement)."""
    x, y = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    if not x and not y:
        return 1.0
    return len(x & y) / len(x | y)


def agreement_scores(candidate: str, samples: list[str], method: str) -> tuple[float, list[float]]:
    """Mean similarity of ``candidate`` to ``samples``, and per candidate sentence its best
    similarity to any sample (for the uncertain spans)."""
    parts = sentences(candidate) or [candidate]
    if not samples:
        return 1.0, [1.0] * len(parts)
    if method == "overlap":
        whole = sum(overlap(candidate, s) for s in samples) / len(samples)
        per = [max(overlap(p, s) for s in samples) for p in parts]
        return whole, per
    from ..evidence import encoder

    enc = encoder()
    vectors = enc.encode([candidate, *parts, *samples])
    cand, part_v, sample_v = vectors[0], vectors[1 : 1 + len(parts)], vectors[1 + len(parts) :]
    whole = float((sample_v @ cand).mean())
    per = [float(x) for x in (part_v @ sample_v.T).max(axis=1)]
    return max(0.0, whole), per


class Calibration:
    """``sigmoid(a * raw + b)``, ``sigmoid(bias + sum(w_i * signal_i))``, or the identity."""

    SIGNALS = ("agreement", "token_confidence")

    def __init__(
        self,
        a: float | None = None,
        b: float = 0.0,
        name: str = "identity",
        weights: dict[str, float] | None = None,
    ) -> None:
        self.a, self.b, self.name = a, b, name
        self.weights = weights

    @classmethod
    def load(cls, path: str | Path | None) -> Calibration:
        if not path:
            return cls()
        resolved = resolve_config(str(path))
        try:
            data = json.loads(Path(resolved).read_text(encoding="utf-8"))
            if "weights" in data:
                weights = {str(k): float(v) for k, v in data["weights"].items()}
                unknown = sorted(set(weights) - set(cls.SIGNALS))
                if unknown:
                    raise ValueError(f"unknown signals {unknown}; known: {list(cls.SIGNALS)}")
                return cls(b=float(data["bias"]), name=str(path), weights=weights)
            return cls(float(data["a"]), float(data["b"]), name=str(path))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"calibration file {path}: unreadable ({exc}); it must be JSON with numbers "
                "'a' and 'b', or 'weights' (agreement, token_confidence) and 'bias' (written by "
                "benchmarks/truthfulness.py --calibrate)"
            ) from None

    def __call__(self, raw: float, signals: dict[str, float | None] | None = None) -> float:
        """Calibrated confidence of the average ``raw``, or of ``signals`` when the map is
        fitted on them (a signal the agent did not measure counts as its neutral 0.5)."""
        if self.weights is not None:
            given = signals or {}
            z = self.b
            for key, w in self.weights.items():
                value = given.get(key)
                z += w * (0.5 if value is None else value)
            return 1.0 / (1.0 + math.exp(-z))
        if self.a is None:
            return min(max(raw, 0.0), 1.0)
        return 1.0 / (1.0 + math.exp(-(self.a * raw + self.b)))


@register_role("consistency")
class ConsistencyAgent(Agent):
    """Samples, compares and notes; see the module docstring. Options: ``samples`` (4),
    ``temperature`` (0.8), ``max_new_tokens`` (the hierarchy's), ``agreement`` (``embedding``
    | ``overlap``), ``ask_true`` (true), ``calibration`` (file), ``policy`` (``note`` |
    ``hedge`` | ``escalate``), ``threshold`` (0.5), ``principle`` (``honesty``), ``system`` (a
    system message for the samples, as the base agent's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        policy = str(self.options.get("policy", "note"))
        if policy not in _POLICIES:
            raise ConfigError(
                f"agent {self.name!r} (role consistency): policy {policy!r} is not one of "
                f"{', '.join(_POLICIES)}"
            )
        self.policy: UncertaintyAction = policy
        self.calibration = Calibration.load(self.options.get("calibration"))
        self._samples: OrderedDict[str, list[str]] = OrderedDict()

    async def samples(self, ctx: EpisodeContext) -> list[str]:
        """``samples`` answers to the episode's request, one batched call, drawn once."""
        k = int(self.options.get("samples", 4))
        if k <= 0:
            return []
        cached = self._samples.get(ctx.episode)
        if cached is not None:
            return cached
        assert self.backend is not None
        messages = with_system(tuple(ctx.messages), self.options.get("system"))
        (gen,) = await self.backend.generate(
            [
                GenerateRequest(
                    messages=messages,
                    max_new_tokens=int(
                        self.options.get("max_new_tokens", ctx.settings.max_new_tokens)
                    ),
                    temperature=float(self.options.get("temperature", 0.8)),
                    n=k,
                    seed=getattr(ctx.settings, "seed", None),
                    meta=ctx.meta(self, "draft", sample=True),
                )
            ]
        )
        texts = [t.strip() for t in gen.texts]
        self._samples[ctx.episode] = texts
        while len(self._samples) > _SAMPLE_CACHE:
            self._samples.popitem(last=False)
        return texts

    async def says_true(self, ctx: EpisodeContext, text: str) -> float | None:
        """P("Yes") that the answer is true, by the backend's own next-token probabilities."""
        if not self.options.get("ask_true", True) or self.backend is None:
            return None
        (scores,) = await self.backend.score(
            [
                ScoreRequest(
                    messages=(
                        {
                            "role": "user",
                            "content": TRUE_QUESTION.format(question=ctx.last_request, answer=text),
                        },
                    ),
                    choices=("Yes", "No"),
                    meta=ctx.meta(self, "true", candidate=text),
                )
            ]
        )
        return float(scores.probs.get("Yes", 0.5))

    async def note(self, ctx: EpisodeContext, candidate_id: str) -> UncertaintyNote:
        """The uncertainty note of one candidate (no policy applied)."""
        text = ctx.candidates[candidate_id]
        drawn = await self.samples(ctx)
        method = str(self.options.get("agreement", "embedding"))
        whole, per = await anyio.to_thread.run_sync(agreement_scores, text, drawn, method)
        p_true = await self.says_true(ctx, text)
        signals = ([whole] if drawn else []) + ([p_true] if p_true is not None else [])
        raw = sum(signals) / len(signals) if signals else 0.5
        agreement = min(max(whole, 0.0), 1.0) if drawn else None
        confidence = self.calibration(raw, {"agreement": agreement, "token_confidence": p_true})
        parts = sentences(text) or ([text] if text.strip() else [])
        spans = tuple(
            p for p, s in sorted(zip(parts, per, strict=False), key=lambda x: x[1]) if s < 0.6
        )[:2]
        bits = []
        if drawn:
            bits.append(f"{len(drawn)} samples agree {whole:.2f} ({method})")
        if p_true is not None:
            bits.append(f'P("true") {p_true:.2f}')
        return UncertaintyNote(
            candidate_id=candidate_id,
            confidence=round(confidence, 4),
            raw_confidence=round(min(max(raw, 0.0), 1.0), 4),
            agreement=round(agreement, 4) if agreement is not None else None,
            samples=len(drawn),
            sampled=tuple(drawn),
            token_confidence=round(p_true, 4) if p_true is not None else None,
            uncertain_spans=spans,
            calibration=self.calibration.name,
            rationale=(f"Confidence {confidence:.2f}: " + "; ".join(bits or ["no signal"]) + "."),
        )

    async def assess(
        self, ctx: EpisodeContext, candidate_id: str
    ) -> list[UncertaintyNote | Critique]:
        note = await self.note(ctx, candidate_id)
        threshold = float(self.options.get("threshold", 0.5))
        text = ctx.candidates[candidate_id]
        acting = self.policy != "note" and note.confidence < threshold and not hedged(text)
        note = note.model_copy(update={"action": self.policy if acting else "note"})
        if not acting:
            return [note]
        spec = ctx.constitution.principle(str(self.options.get("principle", "honesty")))
        span = note.uncertain_spans[0] if note.uncertain_spans else text
        quote = clip(span, 24) if span else ""
        said = f'"{quote}"' if quote else "the answer"
        critique = Critique(
            candidate_id=candidate_id,
            principle_id=spec.id,
            principle_version=spec.version,
            verdict="violated" if self.policy == "hedge" else "uncertain",
            severity=round(float(spec.severity) * (1.0 - note.confidence), 4),
            confidence=note.confidence if self.policy == "escalate" else 0.8,
            rationale=(
                f"The model's own samples disagree with {said} ({note.rationale}) and the "
                "answer states it without any doubt."
            ),
            quote=quote if quote and quote in text else "",
            suggestion=(
                "Say plainly which part is uncertain and how the reader could check it; keep "
                "what is well established."
            ),
            method="rule",
        )
        return [note, critique]


__all__ = ["HEDGES", "Calibration", "ConsistencyAgent", "agreement_scores", "hedged", "overlap"]
