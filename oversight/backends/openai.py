"""Any OpenAI-compatible chat-completions server (``vllm serve``, llama.cpp's server, ...).

Options (the hierarchy YAML's ``options:``)::

    models:
      base:
        backend: openai
        options: {model: HuggingFaceTB/SmolLM2-135M-Instruct, base_url: "http://127.0.0.1:8000/v1"}

``model`` (the server's model name), ``base_url`` (ending in ``/v1``), ``api_key`` (default
``$OPENAI_API_KEY``, else none), ``timeout_s`` per HTTP request, ``max_retries`` and
``backoff_s`` (exponential backoff: ``backoff_s * 2**attempt``, capped at 30 s, or the server's
``Retry-After``) for connection errors, timeouts, 408/409/429 and 5xx replies, ``max_concurrency``
(requests in flight at once; the server batches them), ``top_logprobs`` for ``score`` (OpenAI
allows at most 20; vLLM more).

``generate`` sends one chat completion per request with ``n``, ``stop``, ``seed``, ``temperature``
and ``top_p``. ``score`` asks for one token with ``logprobs: true`` and ``top_logprobs`` and reads
the choices' probabilities from them (see :mod:`oversight.backends._logprobs`). A server that
does not return logprobs gets a :class:`BackendError` saying so.

``transport`` (Python only) is an ``httpx`` transport, e.g. ``httpx.MockTransport`` in tests.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import anyio

from ..errors import BackendError, OversightError, PrerequisiteError
from ._logprobs import choice_probs
from ._protocol import ChoiceScores, GenerateRequest, Generation, ScoreRequest, register_backend
from ._sampling import generate_params

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0


@register_backend("openai")
class OpenAIBackend:
    """Chat completions over HTTP with retries, timeouts and logprob scoring."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        max_concurrency: int = 64,
        top_logprobs: int = 20,
        transport: Any = None,
    ) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise PrerequisiteError(
                "the openai backend needs httpx; install it with `pip install 'oversight[openai]'`"
            ) from exc
        self._httpx = httpx
        self.model = model
        self.base_url = base_url.rstrip("/")
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.top_logprobs = top_logprobs
        self._limit = anyio.CapacityLimiter(max_concurrency)
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            limits=httpx.Limits(max_connections=max_concurrency),
        )

    # -- protocol -----------------------------------------------------------------------------

    async def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        return await self._gather([self._generate_one(r) for r in requests])

    async def score(self, requests: Sequence[ScoreRequest]) -> list[ChoiceScores]:
        return await self._gather([self._score_one(r) for r in requests])

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- requests -----------------------------------------------------------------------------

    async def _gather(self, calls: list[Any]) -> list[Any]:
        results: list[Any] = [None] * len(calls)

        async def run(i: int, call: Any) -> None:
            results[i] = await call

        if len(calls) == 1:
            return [await calls[0]]
        try:
            async with anyio.create_task_group() as tg:
                for i, call in enumerate(calls):
                    tg.start_soon(run, i, call)
        except BaseExceptionGroup as group:  # the first failure cancels the rest: report it
            leaf: BaseException = group
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            if isinstance(leaf, OversightError):
                raise leaf from None
            raise
        return results

    async def _generate_one(self, r: GenerateRequest) -> Generation:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in r.messages],
            **generate_params(r),
        }
        data = await self._post(body)
        choices = sorted(self._choices(data), key=lambda c: c.get("index", 0))
        texts = tuple(_content(c) for c in choices)
        if len(texts) != r.n:
            raise BackendError(
                f"{self.base_url}: asked for n={r.n} completions, got {len(texts)}; the server "
                "may not support `n` (ask for n=1 and repeat)"
            )
        usage = data.get("usage") or {}
        return Generation(
            texts=texts,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )

    async def _score_one(self, r: ScoreRequest) -> ChoiceScores:
        body = {
            "model": self.model,
            "messages": [dict(m) for m in r.messages],
            "max_tokens": 1,
            "temperature": 0.0,
            "n": 1,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
        }
        data = await self._post(body)
        choice = self._choices(data)[0]
        content = (choice.get("logprobs") or {}).get("content") or []
        if not content or not content[0].get("top_logprobs"):
            raise BackendError(
                f"{self.base_url}: the server returned no logprobs for model {self.model!r}, so "
                "`score` cannot read choice probabilities; use a server that supports "
                "`logprobs`/`top_logprobs` (vllm serve, llama.cpp server, `python -m "
                "oversight.backends._serve`) or the transformers backend"
            )
        pairs = [(t["token"], float(t["logprob"])) for t in content[0]["top_logprobs"]]
        return ChoiceScores(choice_probs(pairs, r.choices))

    def _choices(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise BackendError(f"{self.base_url}: reply has no `choices`: {str(data)[:300]}")
        return choices

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        httpx = self._httpx
        url = "/chat/completions"
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            delay = min(self.backoff_s * 2**attempt, MAX_BACKOFF_S)
            try:
                async with self._limit:
                    response = await self._client.post(url, json=body)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                if last:
                    raise BackendError(
                        f"{self.base_url}{url}: {type(exc).__name__} after "
                        f"{self.max_retries + 1} attempts ({exc}); is the server running?"
                    ) from exc
                await anyio.sleep(delay)
                continue
            if response.status_code in RETRY_STATUS and not last:
                await anyio.sleep(_retry_after(response) or delay)
                continue
            if response.status_code >= 400:
                detail = response.text[:500]
                hint = ""
                if "logprob" in detail.lower():
                    hint = " (the server does not support logprobs, which `score` needs)"
                raise BackendError(
                    f"{self.base_url}{url}: HTTP {response.status_code}{hint}: {detail}"
                )
            try:
                data = response.json()
            except ValueError as exc:
                raise BackendError(
                    f"{self.base_url}{url}: reply is not JSON: {response.text[:300]}"
                ) from exc
            if not isinstance(data, dict):
                raise BackendError(f"{self.base_url}{url}: reply is not a JSON object")
            return data
        raise AssertionError("unreachable")  # pragma: no cover


def _content(choice: dict[str, Any]) -> str:
    message = choice.get("message") or {}
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return min(float(value), MAX_BACKOFF_S) if value is not None else None
    except ValueError:
        return None
