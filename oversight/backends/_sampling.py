"""Sampling parameters shared by the server-style backends.

vLLM's ``SamplingParams`` and an OpenAI-compatible chat-completions body use the same names
(``n``, ``temperature``, ``top_p``, ``max_tokens``, ``stop``, ``seed``), so one mapping serves both.
"""

from __future__ import annotations

from typing import Any

from ._protocol import GenerateRequest


def generate_params(request: GenerateRequest) -> dict[str, Any]:
    """``SamplingParams`` keyword arguments for one generation request."""
    params: dict[str, Any] = {
        "n": request.n,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_new_tokens,
    }
    if request.stop:
        params["stop"] = list(request.stop)
    if request.seed is not None:
        params["seed"] = request.seed
    if request.repetition_penalty != 1.0:
        params["repetition_penalty"] = request.repetition_penalty
    return params
