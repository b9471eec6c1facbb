"""The ``classifier`` backend: the safety classifiers behind the model protocol.

It lets a hierarchy use the fine-tuned MiniLM heads (:mod:`oversight.safety`) wherever a model
scores choices::

    models:
      guard: {backend: classifier}
    agents:
      - {name: safety, role: safety, model: guard}

``score`` answers from the request's ``meta["task"]``:

* ``safety_request`` (and anything else without a candidate): P("Yes") = the request's harm
  probability after de-obfuscation and jailbreak signals, assessed over the whole conversation;
* ``critique`` / ``audit`` with a ``candidate`` for a principle with its own heads (privacy,
  lawful, fairness, manipulation, honesty, balance; :mod:`oversight.safety.principles`):
  P("Yes") = that principle's probability when the candidate complies, a small floor when it
  refuses;
* ``safety_response`` / ``critique`` / ``audit`` with a ``candidate`` otherwise (``harm``):
  P("Yes") = the harm of the request when the candidate complies, and a small floor when it
  refuses (the candidate violates the principle only if it helps with a harmful request); the
  refusal detector decides.
  For ``helpfulness`` it is the other way round: a refusal, gibberish or an echo violates it;
* ``critique`` / ``audit`` for ``tool_use``: the rule of
  :func:`oversight.safety.tools.tool_use_violation` over the conversation's tool turns
  (``meta["tools"]``): does the candidate act on a planted instruction or a tool action the user
  did not ask for;
* ``judge`` (choices ``("A", "B")``): prefers the candidate that fits the request, an answer
  for a safe request and a refusal for a harmful one, weighted by the request's harm.

The request classified is ``meta["request"]`` (the user's side of the conversation, set by the
agents) when present, else the conversation in ``messages``.

The first choice gets the probability, the second its complement (``("Yes", "No")``). It cannot
``generate``: asking raises :class:`~oversight.errors.BackendError` naming the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from ..errors import BackendError
from ._protocol import ChoiceScores, GenerateRequest, Generation, ScoreRequest, register_backend

_FLOOR = 0.02
_VERDICT_CACHE = 4096
"""Conversations whose verdicts the backend keeps (cleared when full)."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the classifiers see in one (request, candidate) pair: critics write their
    structured critiques from it (:func:`oversight.critiques.evidence_critique`)."""

    request_harm: float
    """P(the request is harmful), over its readable variants and the conversation."""
    outcome: str
    """The refusal detector's reading of the candidate: ``compliance``, ``refusal``,
    ``gibberish``, ``echo`` or ``empty``."""
    sentence_scores: tuple[tuple[str, float], ...]
    """Each sentence of the candidate (verbatim) with the harm classifier's score."""


def _principle_heads(classifier: Any) -> Any:
    """The per-principle heads shipped next to the classifier's weights, or None without them
    (then every principle is scored by the harm path, as before they existed)."""
    from ..safety.principles import PrincipleHeads, principle_weights_available

    if not principle_weights_available(classifier.weights_dir):
        return None
    return PrincipleHeads(classifier.weights_dir, encoder=classifier.encoder)


@register_backend("classifier")
class ClassifierBackend:
    """Score-only backend over :class:`oversight.safety.SafetyClassifier`."""

    name = "classifier"

    def __init__(self, weights_dir: str | Path | None = None, threads: int | None = None) -> None:
        from ..safety.classifier import SafetyClassifier
        from ..safety.refusal import RefusalDetector

        self._classifier = SafetyClassifier(weights_dir, threads=threads)
        self._refusals = RefusalDetector(self._classifier)
        self._principles = _principle_heads(self._classifier)
        self._verdicts: dict[tuple[tuple[str, str], ...], Any] = {}
        """Conversation -> its verdict: every agent of an episode asks about the same request
        (safety, each critic and principle, audits, the judge, critique evidence), and the
        verdict is a pure function of the text, so each conversation is classified once."""

    def _assess(self, turns: Sequence[Mapping[str, str]]) -> Any:
        key = tuple((t.get("role", ""), t.get("content", "")) for t in turns)
        verdict = self._verdicts.get(key)
        if verdict is None:
            if len(self._verdicts) >= _VERDICT_CACHE:
                self._verdicts.clear()
            verdict = self._verdicts[key] = self._classifier.assess_conversation(turns)
        return verdict

    async def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        raise BackendError(
            "the 'classifier' backend only scores (safety and critic decisions); give base, "
            "reviser and judge agents a generating model such as 'embedded' or 'transformers'"
        )

    async def score(self, requests: Sequence[ScoreRequest]) -> list[ChoiceScores]:
        return await anyio.to_thread.run_sync(self._score_sync, list(requests))

    def _score_sync(self, requests: list[ScoreRequest]) -> list[ChoiceScores]:
        out = []
        for req in requests:
            meta: dict[str, Any] = dict(req.meta)
            turns = [dict(m) for m in req.messages if m.get("role") in ("user", "assistant")]
            if isinstance(meta.get("request"), str):
                # Agents pass the user's side of the conversation: classify that, not the
                # agent's own question around it.
                conversation = [{"role": "user", "content": meta["request"]}]
            else:
                user_turns = [t for t in turns if t["role"] == "user"]
                conversation = turns[:-1] if len(user_turns) > 1 else turns
            verdict = self._assess(conversation or turns)
            harm = verdict.harm if verdict.action != "escalate" else max(verdict.harm, 0.5)
            prompt = conversation[-1]["content"] if conversation else ""
            task, principle = meta.get("task"), meta.get("principle")
            candidate = meta.get("candidate")
            if task == "judge":
                texts = tuple(meta.get("candidates") or ("", ""))
                a, b = (self._utility(prompt, str(t), harm) for t in (*texts, "", "")[:2])
                p_first = 0.5 + 0.45 * (a - b)
            elif candidate is not None and principle == "helpfulness":
                # Gibberish or an echo of the prompt does not help. A refusal fails to help as
                # far as the request was reasonable: the constitution's helpfulness asks to
                # decline "only what another principle rules out", so declining a harmful
                # request is no helpfulness violation (as in the judge's utility below).
                judged = self._refusals.judge(prompt, str(candidate))
                if judged.complied:
                    p_first = _FLOOR
                elif judged.outcome == "refusal":
                    p_first = 1.0 - harm
                else:
                    p_first = 1.0 - _FLOOR
            elif candidate is not None and principle == "tool_use":
                # A rule over the conversation's tools (oversight.safety.tools), not a head.
                from ..safety.tools import tool_use_violation

                bad = tool_use_violation(str(candidate), prompt, meta.get("tools") or ())
                p_first = 1.0 - _FLOOR if bad is not None else _FLOOR
            elif (
                candidate is not None
                and task != "safety_request"
                and self._principles is not None
                and principle in self._principles.principles
            ):
                # The principle's own heads (request head gated by the request's harm, and/or
                # the pair head); a refusal violates none.
                judged = self._refusals.judge(prompt, str(candidate))
                p_first = (
                    self._principles.probability(
                        str(principle), [prompt], [str(candidate)], harm=[harm]
                    )[0]
                    if judged.complied
                    else _FLOOR
                )
            elif candidate is not None and task != "safety_request":
                judged = self._refusals.judge(prompt, str(candidate))
                p_first = harm if judged.complied else _FLOOR
            else:
                p_first = harm
            p_first = min(max(p_first, 0.0), 1.0)
            first, *rest = req.choices
            probs = {first: p_first}
            for choice in rest:
                probs[choice] = (1.0 - p_first) / len(rest)
            out.append(ChoiceScores(probs))
        return out

    async def evidence(self, items: Sequence[tuple[str, str]]) -> list[Evidence]:
        """Evidence for ``(request, candidate)`` pairs: the capability critics look for to
        write structured critiques."""
        return await anyio.to_thread.run_sync(self._evidence_sync, list(items))

    def _evidence_sync(self, items: list[tuple[str, str]]) -> list[Evidence]:
        from ..critiques import sentences

        out = []
        parts_of = [sentences(candidate) for _, candidate in items]
        # Every sentence of every candidate in one call (a batched forward pass, cached texts
        # skipped), then read back per candidate.
        flat = iter(self._classifier.harm_probability([p for ps in parts_of for p in ps]))
        for (request, candidate), parts in zip(items, parts_of, strict=True):
            verdict = self._assess([{"role": "user", "content": request}])
            scores = [next(flat) for _ in parts]
            outcome = self._refusals.judge(request, candidate).outcome
            out.append(
                Evidence(
                    request_harm=round(float(verdict.harm), 4),
                    outcome=str(outcome),
                    sentence_scores=tuple(
                        (s, round(float(p), 4)) for s, p in zip(parts, scores, strict=True)
                    ),
                )
            )
        return out

    def _utility(self, prompt: str, text: str, harm: float) -> float:
        """How well an answer fits: comply with safe requests, refuse harmful ones; an empty,
        gibberish or echoed answer is worth half a clear refusal."""
        judged = self._refusals.judge(prompt, text)
        if judged.complied:
            return 1.0 - harm
        return harm if judged.outcome == "refusal" else harm / 2

    async def aclose(self) -> None:
        return None
