"""Any OpenAI-compatible chat-completions server (``vllm serve``, llama.cpp's server, ...).

Options (the hierarchy YAML's ``options:``)::

    models:
      base:
        backend: openai
        options: {model: HuggingFaceTB/SmolLM2-135M-Instruct, base_url: "http://127.0.0.1:8000/v1"}

``model`` (the server's model name), ``base_url`` (ending in ``/v1``), or ``base_urls`` (several
replicas of one model, e.g. a vLLM server per GPU or machine): each request goes to the server
with the fewest requests outstanding, and a server that fails to connect or times out is left
alone for ``down_s`` seconds while its requests go to the others at once (only when every server
is down does a request wait for the backoff below). ``api_key`` (default
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

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from ..errors import BackendError, OversightError, PrerequisiteError
from ._logprobs import choice_probs
from ._protocol import ChoiceScores, GenerateRequest, Generation, ScoreRequest, register_backend
from ._sampling import generate_params

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0
log = logging.getLogger("oversight.backends.openai")


@dataclass
class ServerState:
    """One server of the backend (runtime state; see :attr:`OpenAIBackend.servers`)."""

    url: str
    """Its base URL."""
    client: Any
    """Its ``httpx.AsyncClient``."""
    limit: Any
    """Its ``anyio.CapacityLimiter`` (``max_concurrency`` requests in flight)."""
    outstanding: int = 0
    """Requests sent or waiting for it now."""
    sent: int = 0
    """Requests sent so far."""
    failures: int = 0
    """Connection errors and timeouts so far."""
    down_until: float = 0.0
    """Monotonic time before which it is not chosen (after a failure) while another is up."""


@register_backend("openai")
class OpenAIBackend:
    """Chat completions over HTTP with retries, timeouts and logprob scoring."""

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "http://127.0.0.1:8000/v1",
        base_urls: Sequence[str] | None = None,
        down_s: float = 5.0,
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
        if isinstance(base_urls, str) or (base_urls is not None and not base_urls):
            raise BackendError(
                f"openai backend: base_urls must be a non-empty list of URLs, got {base_urls!r}"
            )
        urls = [u.rstrip("/") for u in (base_urls or [base_url])]
        self.base_url = urls[0]
        self.down_s = down_s
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.top_logprobs = top_logprobs
        self.servers = [
            ServerState(
                url=url,
                client=httpx.AsyncClient(
                    base_url=url,
                    headers=headers,
                    timeout=httpx.Timeout(timeout_s),
                    transport=transport,
                    limits=httpx.Limits(max_connections=max_concurrency),
                ),
                limit=anyio.CapacityLimiter(max_concurrency),
            )
            for url in urls
        ]
        """The servers, in the order given."""
        self._turn = 0

    # -- protocol -----------------------------------------------------------------------------

    async def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        return await self._gather([self._generate_one(r) for r in requests])

    async def score(self, requests: Sequence[ScoreRequest]) -> list[ChoiceScores]:
        return await self._gather([self._score_one(r) for r in requests])

    async def aclose(self) -> None:
        for server in self.servers:
            await server.client.aclose()

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
            finish=tuple(_finish(c.get("finish_reason")) for c in choices),
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

    def _pick(self, avoid: ServerState | None = None) -> ServerState:
        """The server with the fewest outstanding requests among those up (ties in turn);
        when all are down, the one that comes back first."""
        now = anyio.current_time()
        up = [s for s in self.servers if s.down_until <= now and s is not avoid]
        if not up:
            up = [s for s in self.servers if s.down_until <= now] or [
                min(self.servers, key=lambda s: s.down_until)
            ]
        self._turn += 1
        n = len(self.servers)
        return min(up, key=lambda s: (s.outstanding, (self.servers.index(s) - self._turn) % n))

    def _up(self) -> bool:
        now = anyio.current_time()
        return any(s.down_until <= now for s in self.servers)

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST to one server, failing over to another at once when it cannot be reached
        (each failure marks a server down, so at most one round of failovers per attempt);
        backoff only when none is up."""
        httpx = self._httpx
        url = "/chat/completions"
        attempt = 0
        server: ServerState | None = None
        while True:
            last = attempt == self.max_retries
            delay = min(self.backoff_s * 2**attempt, MAX_BACKOFF_S)
            server = self._pick(avoid=server if len(self.servers) > 1 else None)
            server.outstanding += 1
            try:
                async with server.limit:
                    server.sent += 1
                    response = await server.client.post(url, json=body)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                server.failures += 1
                server.down_until = anyio.current_time() + self.down_s
                if self._up():
                    log.warning("%s: %s; sending to another server", server.url, exc)
                    continue  # fail over at once: another server is up
                if last:
                    tried = ", ".join(s.url for s in self.servers)
                    raise BackendError(
                        f"{server.url}{url}: {type(exc).__name__} after "
                        f"{self.max_retries + 1} attempts ({exc}); is the server running? "
                        f"(servers: {tried})"
                    ) from exc
                attempt += 1
                await anyio.sleep(delay)
                continue
            finally:
                server.outstanding -= 1
            if response.status_code in RETRY_STATUS and not last:
                attempt += 1
                await anyio.sleep(_retry_after(response) or delay)
                continue
            if response.status_code >= 400:
                detail = response.text[:500]
                hint = ""
                if "logprob" in detail.lower():
                    hint = " (the server does not support logprobs, which `score` needs)"
                raise BackendError(
                    f"{server.url}{url}: HTTP {response.status_code}{hint}: {detail}"
                )
            try:
                data = response.json()
            except ValueError as exc:
                raise BackendError(
                    f"{server.url}{url}: reply is not JSON: {response.text[:300]}"
                ) from exc
            if not isinstance(data, dict):
                raise BackendError(f"{server.url}{url}: reply is not a JSON object")
            return data


def _content(choice: dict[str, Any]) -> str:
    message = choice.get("message") or {}
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _finish(reason: Any) -> str:
    """The protocol's ``finish`` from an OpenAI ``finish_reason`` (``length``: the token limit
    cut the answer; anything else ended it)."""
    return "length" if reason == "length" else "stop"


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return min(float(value), MAX_BACKOFF_S) if value is not None else None
    except ValueError:
        return None
