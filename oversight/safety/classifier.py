"""The safety classifiers: is a request harmful, is a response a refusal.

Both are all-MiniLM-L6-v2 with its top layer(s) fine-tuned per task by
:mod:`oversight.safety.train`; the weights ship in ``oversight/safety/weights/``.

:meth:`SafetyClassifier.assess` is what the safety agent calls: it de-obfuscates the request
(:mod:`oversight.safety.jailbreak`), scores every readable variant (the text, decoded payloads,
the tail of a long prompt where the real question usually sits) and takes the most harmful,
then combines that with the jailbreak signals:

* harm >= threshold -> ``refuse``;
* an ``injection`` or ``roleplay`` signal with lower harm -> ``escalate`` (a jailbreak wrapper
  with a question the classifier cannot see is still not let through silently);
* otherwise ``allow``.

:meth:`SafetyClassifier.assess_conversation` scores the whole conversation, not only the last
turn, and adds the ``multi_turn`` signal when the harm only shows in context.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import PrerequisiteError
from ..messages import JailbreakSignal, SafetyAction
from ._encoder import MAX_TOKENS, RESPONSE_TOKENS, Encoder, make_head
from .jailbreak import conversation_signals, detect_signals, normalize

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""Where ``python -m oversight.safety.train`` saves the shipped weights."""
_BLOCKING_SIGNALS = frozenset({"injection", "roleplay"})
_TAIL_CHARS = 600
_CACHE_SIZE = 20_000
"""Scored texts remembered per classifier (a few MB); the cache starts over when full."""


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    """The safety agent's view of one request or conversation."""

    harm: float
    """Probability that the request is harmful (max over its readable variants)."""
    flagged: bool
    """True when the request should not simply be answered (``action != "allow"``)."""
    action: SafetyAction
    """``allow``, ``refuse`` (harmful) or ``escalate`` (jailbreak framing, unclear harm)."""
    signals: tuple[JailbreakSignal, ...]
    """Jailbreak techniques detected."""
    rationale: str
    """One line saying why (internal)."""


def weights_available(weights_dir: Path = WEIGHTS_DIR) -> bool:
    """Whether trained weights exist (so tests can skip cleanly when they do not)."""
    return all(
        (weights_dir / f).exists()
        for f in ("meta.json", "request.safetensors", "response.safetensors")
    )


class SafetyClassifier:
    """Harm and refusal probabilities from the fine-tuned MiniLM heads."""

    def __init__(
        self, weights_dir: str | Path | None = None, *, threads: int | None = None
    ) -> None:
        self.weights_dir = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
        if not weights_available(self.weights_dir):
            raise PrerequisiteError(
                f"no trained safety weights in {self.weights_dir}: run "
                "'python -m oversight.safety.train' (or 'oversight safety train')"
            )
        from safetensors.torch import load_file

        meta = json.loads((self.weights_dir / "meta.json").read_text(encoding="utf-8"))
        self.thresholds: dict[str, float] = dict(meta["threshold"])
        """Decision threshold per task (``request``, ``response``)."""
        self.max_tokens: dict[str, int] = {"request": MAX_TOKENS, "response": RESPONSE_TOKENS}
        """Word pieces read per task."""
        self.max_tokens.update(meta.get("max_tokens", {}))
        layers = meta["layers"]
        self.splits: dict[str, int] = {
            task: 6 - int(layers[task] if isinstance(layers, dict) else layers)
            for task in ("request", "response")
        }
        """Per task, the index of its first fine-tuned layer (``meta["layers"]`` is the number
        of fine-tuned layers, one for both tasks or per task)."""
        self.encoder = Encoder(split=self.splits["request"])
        torch = self.encoder.torch
        if threads is not None:
            torch.set_num_threads(threads)
        self._heads: dict[str, Any] = {}
        self._cache: dict[tuple[str, str], float] = {}
        self._cache_lock = threading.Lock()
        for task in ("request", "response"):
            head = make_head(self.encoder, self.splits[task])
            state = load_file(str(self.weights_dir / f"{task}.safetensors"))
            head.load_state_dict({k: v.float() for k, v in state.items()})
            self._heads[task] = head.eval()

    def _probability(self, task: str, texts: Sequence[str], batch: int = 32) -> list[float]:
        """P(task) per text; a text scored before is read from a bounded cache (an episode's
        draft is scored by the safety agent, every critic's evidence and the judge's audits),
        and each distinct new text is encoded once per call."""
        torch = self.encoder.torch
        with self._cache_lock:
            known = {t: p for t in texts if (p := self._cache.get((task, t))) is not None}
        todo = list(dict.fromkeys(t for t in texts if t not in known))
        todo.sort(key=len)
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            hidden, mask, _ = self.encoder.bottom(
                [t or " " for t in chunk], self.max_tokens[task], self.splits[task]
            )
            with torch.no_grad():
                probs = torch.sigmoid(self._heads[task](hidden, mask)).tolist()
            known.update(zip(chunk, map(float, probs), strict=True))
        with self._cache_lock:
            if len(self._cache) + len(todo) > _CACHE_SIZE:
                self._cache.clear()
            self._cache.update(((task, t), known[t]) for t in todo)
        return [known[t] for t in texts]

    def harm_probability(self, texts: Sequence[str]) -> list[float]:
        """P(harmful) for each request, as written (no de-obfuscation; see :meth:`assess`)."""
        return self._probability("request", texts)

    def refusal_probability(self, texts: Sequence[str]) -> list[float]:
        """P(refusal) for each response (explicit, implicit or partial refusal)."""
        return self._probability("response", texts)

    def assess_many(self, texts: Sequence[str]) -> list[SafetyVerdict]:
        """:meth:`assess` for a batch of single-turn requests (one forward pass for all)."""
        variants: list[list[str]] = []
        for text in texts:
            v = list(normalize(text).variants)
            if len(v[0]) > _TAIL_CHARS + 100:
                v.append(v[0][-_TAIL_CHARS:])
            variants.append(v)
        flat = [v for vs in variants for v in vs]
        probs = iter(self.harm_probability(flat))
        return [
            self._verdict(max(next(probs) for _ in vs), detect_signals(text))
            for text, vs in zip(texts, variants, strict=True)
        ]

    def assess(self, text: str) -> SafetyVerdict:
        """The verdict on one user request."""
        return self.assess_many([text])[0]

    def assess_conversation(self, turns: Sequence[Mapping[str, str]]) -> SafetyVerdict:
        """The verdict on a conversation of ``{"role", "content"}`` turns.

        Each user turn is assessed, and so is the user side of the conversation read as one
        text; if the joined text is harmful while the last turn alone is not, the harm was
        spread over turns and the ``multi_turn`` signal is added.
        """
        users = [t["content"] for t in turns if t.get("role") == "user"]
        if not users:
            return self._verdict(0.0, ())
        signals = list(conversation_signals([(t["role"], t["content"]) for t in turns]))
        last = self.assess(users[-1])
        harm = last.harm
        if len(users) > 1:
            joined = self.assess("\n".join(users[-3:]))
            threshold = self.thresholds["request"]
            if joined.harm >= threshold > last.harm:
                signals.append("multi_turn")
            harm = max(harm, joined.harm)
        return self._verdict(harm, tuple(dict.fromkeys([*last.signals, *signals])))

    def _verdict(self, harm: float, signals: tuple[JailbreakSignal, ...]) -> SafetyVerdict:
        threshold = self.thresholds["request"]
        action: SafetyAction
        if harm >= threshold or "multi_turn" in signals:
            action, why = "refuse", f"harm {harm:.2f} >= {threshold:.2f}"
        elif _BLOCKING_SIGNALS & set(signals):
            action, why = "escalate", f"jailbreak framing ({', '.join(signals)}), harm {harm:.2f}"
        else:
            action, why = "allow", f"harm {harm:.2f} < {threshold:.2f}"
        if signals and action == "refuse":
            why += f"; signals: {', '.join(signals)}"
        return SafetyVerdict(harm, action != "allow", action, signals, why)


@lru_cache(maxsize=2)
def load_classifier(weights_dir: str | None = None) -> SafetyClassifier:
    """A process-wide shared classifier (loading MiniLM takes about a second)."""
    return SafetyClassifier(weights_dir)
