"""The ``simulated`` backend: agents of known accuracy, for recursive-oversight studies.

Answers are drawn from :mod:`oversight.simulate.behaviour` (the same model the vectorised
simulator uses), from the ground truth that agents pass in ``meta``:

* ``generate`` for ``task`` ``draft`` writes a compliant answer or a refusal, according to the
  prompt's ``labels`` (``harm``, ``category``); for ``revise`` it applies the revision model to
  the candidate being revised. Every answer carries a marker (``[simulated answer: complies]`` /
  ``[simulated answer: refuses]``) from which the critics recover the behaviour; text from other
  models falls back to common refusal phrases ("I can't", "I'm sorry", ...).
* ``score`` answers ``("Yes", "No")`` questions of critics, auditors and the safety agent (with
  the agent's miss and false-alarm rates on the cell's truth) and ``("A", "B")`` questions of
  judges.

Every draw is seeded by ``(seed, episode, agent, task, principle, candidate)``, and the shared
latents by the episode alone (difficulty, shared by every agent of the episode on every model; a
``labels["difficulty"]`` in [0, 1] sets it instead: 1 is hardest) and by ``(seed, model group,
episode)``: results do not depend on concurrency or on the order in which calls arrive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

import anyio
import numpy as np

from ..critiques import answer_form
from ..simulate import behaviour as bh
from ._protocol import (
    ChoiceScores,
    GenerateRequest,
    Generation,
    ScoreRequest,
    register_backend,
)


def _last_user_text(messages: Sequence[Mapping[str, str]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return str(m.get("content", ""))
    return ""


@register_backend("simulated")
class SimulatedBackend:
    """A backend whose agents make errors at configured rates (see :class:`AgentBehaviour`)."""

    name = "simulated"

    def __init__(self, **options: Any) -> None:
        self.behaviour = bh.parse_behaviour(options)
        self._group = self.behaviour.group()
        self.calls = 0
        """Requests answered (generate + score), for cost accounting."""

    # --- latents ---------------------------------------------------------------------------

    def _case_key(self, meta: Mapping[str, Any]) -> str:
        return str(meta.get("episode", meta.get("prompt_id", "")))

    def _z_case(self, meta: Mapping[str, Any]) -> float:
        labels = meta.get("labels") or {}
        difficulty = labels.get("difficulty") if isinstance(labels, Mapping) else None
        if difficulty is not None:
            d = min(max(float(difficulty), 1e-6), 1 - 1e-6)
            return NormalDist().inv_cdf(1.0 - d)
        # A property of the case, not of the model: every agent of the episode, whatever its
        # model and seed, reads the same difficulty (as in the vectorised simulator).
        return bh.stable_normal("case", self._case_key(meta))

    def _z(self, meta: Mapping[str, Any], *parts: object) -> float:
        b = self.behaviour
        z_model = bh.stable_normal(b.seed, "model", self._group, self._case_key(meta))
        eps = bh.stable_normal(b.seed, "eps", self._case_key(meta), meta.get("agent", ""), *parts)
        z = bh.evidence(
            np.float32(self._z_case(meta)),
            np.float32(z_model),
            np.float32(eps),
            b.correlation,
            b.model_correlation,
        )
        return float(z)

    # --- protocol --------------------------------------------------------------------------

    async def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        if self.behaviour.latency:
            await anyio.sleep(self.behaviour.latency)
        self.calls += len(requests)
        return [self._generate_one(r) for r in requests]

    async def score(self, requests: Sequence[ScoreRequest]) -> list[ChoiceScores]:
        if self.behaviour.latency:
            await anyio.sleep(self.behaviour.latency)
        self.calls += len(requests)
        return [self._score_one(r) for r in requests]

    async def aclose(self) -> None:
        return None

    # --- generation ------------------------------------------------------------------------

    def _generate_one(self, request: GenerateRequest) -> Generation:
        meta = request.meta
        b = self.behaviour
        labels = meta.get("labels") or {}
        harmful = bh.is_harmful_label(labels)
        task = str(meta.get("task", "draft"))
        key = (b.seed, "gen", self._case_key(meta), meta.get("agent", ""), task)
        request_text = _last_user_text(request.messages)
        if task == "rationale":  # a written critique (its verdict is scored, not read from here)
            text = _written_critique(meta, harmful, b)
            return Generation(texts=(text,) * request.n, completion_tokens=len(text.split()))
        texts = []
        for i in range(request.n):
            u = bh.stable_uniform(*key, meta.get("candidate_id", ""), i)
            if task == "revise":
                before = bh.complies_from_text(str(meta.get("candidate", "")))
                principles = meta.get("principles") or (
                    (meta["principle"],) if meta.get("principle") else ()
                )
                kinds = {bh.principle_kind(str(p), b.principle_kinds) for p in principles}
                complies = bool(
                    bh.revised_complies(
                        b,
                        np.array(before),
                        np.array("harm" in kinds),
                        np.array("overrefusal" in kinds),
                        np.array(u),
                    )
                )
            else:
                p = bh.base_comply_probability(
                    b, np.array(harmful), np.array(str(labels.get("category", "")))
                )
                complies = bool(u < float(p))
            # each candidate its own text (a revision of round r is not a copy of an earlier one)
            ident = bh.stable_seed(*key, meta.get("candidate_id", ""), meta.get("round", ""), i)
            answer_id = f"{ident:016x}"[:6]
            texts.append(bh.answer_text(complies, request_text, answer_id))
        words = sum(len(t.split()) for t in texts)
        return Generation(texts=tuple(texts), completion_tokens=words)

    # --- scoring ---------------------------------------------------------------------------

    def _score_one(self, request: ScoreRequest) -> ChoiceScores:
        meta = request.meta
        b = self.behaviour
        choices = tuple(request.choices)
        labels = meta.get("labels") or {}
        harmful = bh.is_harmful_label(labels)
        agent = str(meta.get("agent", ""))
        task = str(meta.get("task", ""))
        if task == "judge" or (not task and choices == ("A", "B")):
            return self._judge(meta, choices, harmful)
        principle = str(meta.get("principle") or "harm")
        if task == "safety_request":
            truth = harmful
        else:
            complies = bh.complies_from_text(str(meta.get("candidate", "")))
            kind = bh.principle_kind(principle, b.principle_kinds)
            truth = bool(bh.truly_violated(kind, harmful, complies))
        miss, fa = b.rates(agent, principle)
        z = self._z(meta, task, principle, meta.get("candidate_id", ""))
        p_yes = float(
            bh.p_yes_from_evidence(
                np.array(truth),
                np.array(z, dtype=np.float32),
                float(bh.error_threshold(miss)),
                float(bh.error_threshold(fa)),
                b,
            )
        )
        yes, no = (*choices, "Yes", "No")[:2] if choices else ("Yes", "No")
        probs = {yes: p_yes, no: 1.0 - p_yes}
        for extra in choices[2:]:
            probs[extra] = 0.0
        return ChoiceScores(probs=probs)

    def _judge(
        self, meta: Mapping[str, Any], choices: tuple[str, ...], harmful: bool
    ) -> ChoiceScores:
        b = self.behaviour
        pair = tuple(meta.get("candidates") or ("", ""))
        first, second = (str(pair[0]), str(pair[1])) if len(pair) >= 2 else ("", "")
        good = [bh.complies_from_text(t) != harmful for t in (first, second)]
        # order-free seed: the same underlying judgement in both presentation orders
        ids = sorted(str(c) for c in (meta.get("candidate_ids") or (first, second)))
        z = self._z(meta, "judge", *ids)
        p_first = float(
            bh.judge_prefers_first(
                np.array(good[0] and not good[1]),
                np.array(good[0] != good[1]),
                np.array(z, dtype=np.float32),
                float(bh.error_threshold(b.judge_error_rate)),
                b,
            )
        )
        a, c = (*choices, "A", "B")[:2] if choices else ("A", "B")
        return ChoiceScores(probs={a: p_first, c: 1.0 - p_first})


def _written_critique(meta: Mapping[str, Any], harmful: bool, b: Any) -> str:
    """A critique in the critics' answer form for each principle asked about, stating the
    ground truth of the simulated case (the critic's verdict itself comes from ``score``)."""
    candidate = str(meta.get("candidate", ""))
    first = candidate.split(". ")[0].strip()
    complies = bh.complies_from_text(candidate)
    ids = meta.get("principles") or (meta.get("principle") or "harm",)
    blocks = []
    for pid in ids:
        kind = bh.principle_kind(str(pid), b.principle_kinds)
        bad = bool(bh.truly_violated(kind, harmful, complies))
        why = (
            f"in this simulated case the answer {'complies' if complies else 'refuses'} "
            f"and the request is {'harmful' if harmful else 'benign'} for {pid}."
        )
        better = "answer the other way." if bad else "nothing to change."
        blocks.append((str(pid), bad, first, why, better))
    return answer_form(blocks)
