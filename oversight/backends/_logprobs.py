"""Turn a server's top next-token log-probabilities into probabilities of given choices.

Servers (OpenAI-compatible ones, vLLM) report the most likely next tokens as text with their
log-probabilities, not a full distribution. A token counts for a choice when its text, without
surrounding whitespace, is a non-empty prefix of exactly one choice (``"Yes"`` and ``" Yes"`` count
for ``"Yes"``; ``"Y"`` counts for ``"Yes"`` unless another choice also starts with ``Y``). The
masses are summed per choice and normalised. When none of the choices is among the reported
tokens the model expressed no preference we can see, and every choice gets the same probability.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def choice_probs(
    top_logprobs: Iterable[tuple[str, float]], choices: Sequence[str]
) -> dict[str, float]:
    """``{choice: probability}`` (sums to 1) from ``(token_text, logprob)`` pairs."""
    if len(choices) < 2:
        raise ValueError(f"score needs at least two choices, got {tuple(choices)}")
    mass = dict.fromkeys(choices, 0.0)
    seen: set[str] = set()
    for token, logprob in top_logprobs:
        if token in seen:  # some servers repeat the sampled token in its own top list
            continue
        seen.add(token)
        text = token.strip()
        if not text:
            continue
        owners = [c for c in choices if c.strip().startswith(text)]
        if len(owners) == 1:
            mass[owners[0]] += math.exp(logprob)
    total = sum(mass.values())
    if total <= 0:
        return {c: 1.0 / len(choices) for c in choices}
    return {c: m / total for c, m in mass.items()}
