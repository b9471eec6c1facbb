"""The ``reward`` backend: a reward model (``oversight train rm``) behind the score protocol.

::

    models:
      rm: {backend: reward, options: {path: models/oversight-rm/final}}
    agents:
      - {name: judge, role: judge, model: rm}

``score`` answers from the request's ``meta`` (set by the agents):

* a judge's ``("A", "B")`` request (``meta["candidates"]``, or the ``<<<A ... A>>>`` fences of the
  judge prompt): the softmax of the two candidates' rewards, each candidate scored as the
  assistant's answer to the request, ``P(A) = sigmoid((r_A - r_B) / temperature)``;
* a ``("Yes", "No")`` request about one candidate (a critic's or an auditor's "does it violate
  principle X?"): ``P(Yes) = sigmoid((threshold - r) / scale)`` with the calibration that
  training wrote (``reward_calibration.json``: halfway between the mean rewards of chosen and
  rejected answers). The reward knows no principles, so the answer is the same for every
  principle: "would the run's consensus have rejected this answer". Without a usable
  calibration it raises :class:`~oversight.errors.BackendError`.

The request is ``meta["request"]`` (the user's side of the conversation). ``generate`` raises
:class:`~oversight.errors.BackendError`: a reward model only ranks.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from ..errors import BackendError, ConfigError
from ._protocol import ChoiceScores, GenerateRequest, Generation, ScoreRequest, register_backend

_FENCE = {
    name: re.compile(rf"<<<{name}\n(.*?)\n{name}>>>", re.DOTALL) for name in ("REQUEST", "A", "B")
}
_CANDIDATE_FENCE = re.compile(r"<<<RESPONSE\n(.*?)\nRESPONSE>>>", re.DOTALL)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@register_backend("reward")
class RewardBackend:
    """Score-only backend over a reward model directory (a ``final/`` of ``oversight train rm``).

    Options: ``path`` (required), ``temperature`` of the A/B softmax (default 1), ``max_length``
    (tokens per scored conversation, default 1024), ``batch_size`` (default 16), ``dtype``
    (``float32`` or ``bfloat16``), ``device``.
    """

    name = "reward"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        temperature: float = 1.0,
        max_length: int = 1024,
        batch_size: int = 16,
        dtype: str = "float32",
        device: str | None = None,
    ) -> None:
        if path is None:
            raise ConfigError(
                "the 'reward' backend needs options: {path: <reward model dir>}, the final/ "
                "folder written by `oversight train rm`"
            )
        if temperature <= 0:
            raise ConfigError(f"the 'reward' backend's temperature must be > 0, got {temperature}")
        from ..training.rm import CALIBRATION_FILE, RewardScorer

        self.path = Path(path)
        self.temperature = float(temperature)
        self._scorer = RewardScorer.from_dir(
            self.path, dtype=dtype, device=device, max_length=max_length, batch_size=batch_size
        )
        calibration_path = self.path / CALIBRATION_FILE
        self.calibration: dict[str, Any] = (
            json.loads(calibration_path.read_text()) if calibration_path.is_file() else {}
        )
        self._lock = threading.Lock()  # one forward pass at a time on the shared model

    async def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        raise BackendError(
            f"the 'reward' backend ({self.path}) only ranks and scores answers; give base and "
            "reviser agents a generating model such as 'embedded' or 'transformers'"
        )

    async def score(self, requests: Sequence[ScoreRequest]) -> list[ChoiceScores]:
        return await anyio.to_thread.run_sync(self._score_sync, list(requests))

    def rewards(self, request: str, answers: Sequence[str]) -> list[float]:
        """The reward of each answer to ``request`` (one user turn)."""
        return self._scorer.rewards(
            [
                [{"role": "user", "content": request}, {"role": "assistant", "content": a}]
                for a in answers
            ]
        )

    def _score_sync(self, requests: list[ScoreRequest]) -> list[ChoiceScores]:
        conversations: list[tuple[str, tuple[str, ...]]] = []
        for req in requests:
            body = str(req.messages[-1].get("content", "")) if req.messages else ""
            meta = req.meta
            request = meta.get("request")
            if not isinstance(request, str):
                found = _FENCE["REQUEST"].search(body)
                request = found.group(1) if found else body
            pair = meta.get("task") == "judge" or "candidates" in meta or _FENCE["A"].search(body)
            if pair:
                texts = meta.get("candidates")
                if not texts or len(texts) != 2:
                    a, b = _FENCE["A"].search(body), _FENCE["B"].search(body)
                    if a is None or b is None:
                        raise BackendError(
                            "the 'reward' backend ranks two candidates: pass them in "
                            "meta['candidates'] or fence them as <<<A ... A>>> / <<<B ... B>>>"
                        )
                    texts = (a.group(1), b.group(1))
                conversations.append((request, (str(texts[0]), str(texts[1]))))
                continue
            candidate = meta.get("candidate")
            if not isinstance(candidate, str):
                found = _CANDIDATE_FENCE.search(body)
                if found is None:
                    raise BackendError(
                        "the 'reward' backend scores an answer to a request: the request has no "
                        "meta['candidate'] or <<<RESPONSE ... RESPONSE>>> fence"
                    )
                candidate = found.group(1)
            if not self.calibration.get("usable"):
                raise BackendError(
                    f"the 'reward' backend ({self.path}) has no usable "
                    "reward_calibration.json, so it cannot answer Yes/No questions "
                    f"(task {meta.get('task')!r}); use it as a judge only, or retrain with "
                    "`oversight train rm` (which writes the calibration)"
                )
            conversations.append((request, (candidate,)))
        flat = [
            [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            for q, answers in conversations
            for a in answers
        ]
        with self._lock:
            rewards = iter(self._scorer.rewards(flat))
        out = []
        for req, (_, answers) in zip(requests, conversations, strict=True):
            first, *rest = req.choices
            if len(answers) == 2:
                r_a, r_b = next(rewards), next(rewards)
                p_first = _sigmoid((r_a - r_b) / self.temperature)
            else:
                cal = self.calibration
                p_first = _sigmoid((float(cal["threshold"]) - next(rewards)) / float(cal["scale"]))
            probs = {first: p_first}
            for choice in rest:
                probs[choice] = (1.0 - p_first) / len(rest)
            out.append(ChoiceScores(probs))
        return out

    async def aclose(self) -> None:
        return None
