"""vLLM's in-process async engine (``pip install 'oversight[vllm]'``; needs a CUDA machine).

Written against vLLM's documented engine API (``AsyncEngineArgs``, ``AsyncLLM.from_engine_args``
- ``AsyncLLMEngine`` in older releases -, ``engine.generate(prompt, sampling_params, request_id)``
as an async iterator of ``RequestOutput``, ``SamplingParams(n, temperature, top_p, max_tokens,
stop, seed, logprobs)``, ``CompletionOutput.logprobs`` as a list of ``{token_id: Logprob}`` with
``decoded_token``). vLLM schedules concurrent requests itself (continuous batching), so this
backend just submits every request at once. vLLM runs on asyncio: use anyio's asyncio backend.

Options: ``model`` (local directory or name vLLM can load offline), ``dtype`` (``auto``),
``gpu_memory_utilization`` (0.9), ``max_model_len``, ``top_logprobs`` for ``score`` (20), and any
further ``engine_options`` passed to ``AsyncEngineArgs``.

What is exercised here: request building, the logprob-to-choice conversion and the whole
generate/score flow against a stand-in engine object (tests/test_backend_vllm.py). vLLM itself
cannot be installed on the project's machines, so loading a real engine was not run.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from ..errors import BackendError, OversightError, PrerequisiteError
from ._logprobs import choice_probs
from ._protocol import ChoiceScores, GenerateRequest, Generation, ScoreRequest, register_backend
from ._sampling import generate_params

_VLLM_HINT = (
    "the vllm backend needs vLLM on a CUDA machine; install it with `pip install 'oversight[vllm]'`"
    " (or serve the model with `vllm serve` and use `backend: openai`)"
)


def score_params(top_logprobs: int) -> dict[str, Any]:
    """``SamplingParams`` keyword arguments for scoring: one greedy token with its top logprobs."""
    return {"n": 1, "temperature": 0.0, "max_tokens": 1, "logprobs": top_logprobs}


def scores_from_logprobs(first_token: Mapping[int, Any], choices: Sequence[str]) -> ChoiceScores:
    """Choice probabilities from vLLM's ``{token_id: Logprob}`` for the first generated token."""
    pairs = [
        (str(lp.decoded_token if lp.decoded_token is not None else ""), float(lp.logprob))
        for lp in first_token.values()
    ]
    return ChoiceScores(choice_probs(pairs, choices))


def _sampling_params(**kwargs: Any) -> Any:
    from vllm import SamplingParams

    return SamplingParams(**kwargs)


def _load_engine(model: str, options: Mapping[str, Any]) -> Any:
    try:
        from vllm import AsyncEngineArgs
    except ImportError as exc:
        raise PrerequisiteError(f"{_VLLM_HINT} ({exc})") from exc
    try:
        from vllm.v1.engine.async_llm import AsyncLLM as Engine
    except ImportError:  # older vLLM
        from vllm import AsyncLLMEngine as Engine
    return Engine.from_engine_args(AsyncEngineArgs(model=model, **options))


@register_backend("vllm")
class VLLMBackend:
    """The protocol on a vLLM ``AsyncLLM`` engine in this process."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        top_logprobs: int = 20,
        engine_options: Mapping[str, Any] | None = None,
        engine: Any = None,
        tokenizer: Any = None,
    ) -> None:
        options = {"dtype": dtype, "gpu_memory_utilization": gpu_memory_utilization}
        if max_model_len is not None:
            options["max_model_len"] = max_model_len
        options.update(engine_options or {})
        self.model = model
        self.top_logprobs = top_logprobs
        self._engine = engine if engine is not None else _load_engine(model, options)
        self._tokenizer = tokenizer
        self._ids = itertools.count()

    async def _prompt(self, messages: Sequence[Mapping[str, str]]) -> dict[str, Any]:
        if self._tokenizer is None:
            self._tokenizer = await self._engine.get_tokenizer()
        ids = self._tokenizer.apply_chat_template(
            [dict(m) for m in messages], add_generation_prompt=True, tokenize=True
        )
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return {"prompt_token_ids": list(ids)}

    async def _run(self, messages: Sequence[Mapping[str, str]], params: dict[str, Any]) -> Any:
        prompt = await self._prompt(messages)
        final = None
        try:
            async for output in self._engine.generate(
                prompt, _sampling_params(**params), f"oversight-{next(self._ids)}"
            ):
                final = output
        except OversightError:
            raise
        except Exception as exc:
            raise BackendError(f"vllm engine ({self.model}): {type(exc).__name__}: {exc}") from exc
        if final is None or not final.outputs:
            raise BackendError(f"vllm engine ({self.model}) returned no output")
        return final

    async def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        async def one(r: GenerateRequest) -> Generation:
            out = await self._run(r.messages, generate_params(r))
            completions = sorted(out.outputs, key=lambda c: c.index)
            return Generation(
                texts=tuple(c.text for c in completions),
                prompt_tokens=len(out.prompt_token_ids or ()),
                completion_tokens=sum(len(c.token_ids) for c in completions),
                finish=tuple(
                    "length" if getattr(c, "finish_reason", None) == "length" else "stop"
                    for c in completions
                ),
            )

        return await _gather([one(r) for r in requests])

    async def score(self, requests: Sequence[ScoreRequest]) -> list[ChoiceScores]:
        async def one(r: ScoreRequest) -> ChoiceScores:
            out = await self._run(r.messages, score_params(self.top_logprobs))
            logprobs = out.outputs[0].logprobs
            if not logprobs:
                raise BackendError(f"vllm engine ({self.model}) returned no logprobs")
            return scores_from_logprobs(logprobs[0], r.choices)

        return await _gather([one(r) for r in requests])

    async def aclose(self) -> None:
        shutdown = getattr(self._engine, "shutdown", None)
        if shutdown is not None:
            shutdown()


async def _gather(calls: list[Any]) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    async def run(i: int, call: Any) -> None:
        results[i] = await call

    try:
        async with anyio.create_task_group() as tg:
            for i, call in enumerate(calls):
                tg.start_soon(run, i, call)
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        if isinstance(leaf, OversightError):
            raise leaf from None
        raise
    return results
