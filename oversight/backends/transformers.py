"""A local causal language model through Hugging Face transformers, batched across episodes.

Concurrent ``generate`` / ``score`` calls from many episodes meet in a :class:`BatchQueue` and
run as one padded batch in a worker thread. Options (the hierarchy YAML's ``options:``):

``model``
    a local model directory (``config.json`` + weights + tokenizer); never downloaded.
``dtype``
    ``machine`` (default: :func:`oversight.devices.pick_dtype` - bf16 on a CPU with AVX512-BF16
    or AMX-BF16 and on a bf16 GPU, fp32 elsewhere, since emulated bf16 is slower than fp32),
    ``bfloat16``, ``float32``, ``float16`` or ``auto`` (the checkpoint's). The choice and its
    reason are in :attr:`TransformersBackend.dtype_choice`.
``device``
    ``cpu``, ``cuda``, ``cuda:1``, or ``auto`` (CUDA when available).
``max_batch_size`` / ``flush`` / ``max_wait_ms``
    when a batch runs (:mod:`oversight.backends._batching`): when it is full, or with ``flush:
    idle`` (default) as soon as no other task of the event loop could still join it (every
    episode that reaches the model in the same stage shares its batch, so a run forms the same
    batches every time; a lone caller waits for nothing), or with ``flush: window`` once its
    oldest request waited ``max_wait_ms`` (also the rule on event loops that cannot be watched:
    trio, uvloop).
``compile``
    wrap the model in :func:`torch.compile` (worth it on GPU for long runs; slow to warm up).
``max_prompt_tokens``
    keep only the last this many prompt tokens (``None``: no limit).
``num_threads``
    torch's CPU threads (process-wide; ``None`` leaves torch's default). On a shared or busy
    CPU, fewer threads than cores avoids oversubscription.
``stop_repeats``
    stop a sequence once it repeats an ``n``-token stretch it already wrote, keep the text
    before the repeat and trim it to whole sentences (``Generation.finish`` says
    ``repetition``); 0 (default) never stops early. Small models loop until the token limit
    (:mod:`oversight.backends._ending`); the embedded hierarchy uses 12.
``continuous_batching``
    on CUDA, generate with transformers' continuous batching (``model.generate_batch``) when the
    installed transformers has it; ``None`` (default) means "on CUDA when available".

``generate`` applies the tokenizer's chat template, pads on the left, decodes greedily when
``temperature == 0`` and samples otherwise (a request's ``seed`` seeds torch before its batch;
requests with different seeds never share a batch, and a sampled result depends on the batch it
ran in, so for bit-exact reruns use greedy decoding or ``max_batch_size: 1``). ``stop`` strings
end generation and are cut from the text.

``score`` runs one forward pass over the chat-templated conversation (with the assistant turn
opened) and reads the next-token distribution: each choice's probability is the summed
probability of its first token written without and with a leading space (``"Yes"``, ``" Yes"``),
normalised over the choices.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..devices import DtypeChoice, pick_dtype
from ..errors import BackendError, ConfigError, PrerequisiteError
from ._batching import BatchQueue
from ._ending import Finish, first_repeat, whole_sentences
from ._protocol import ChoiceScores, GenerateRequest, Generation, ScoreRequest, register_backend

if TYPE_CHECKING:
    import torch

_DTYPES = ("machine", "bfloat16", "float16", "float32", "auto")


@dataclass(frozen=True, slots=True)
class _Call:
    """One queued request: a generation, a scoring request, or a top-k next-token query."""

    request: GenerateRequest | ScoreRequest
    top_k: int = 0
    """> 0: answer the ``top_k`` most likely next tokens of ``request.messages`` instead."""


def _import_torch_transformers() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise PrerequisiteError(
            f"the transformers backend needs torch and transformers ({exc}); install them with "
            "`pip install 'oversight[models]'`"
        ) from exc
    return torch, transformers


def _group_key(call: _Call) -> Hashable:
    r = call.request
    if call.top_k:
        return ("top_k",)
    if isinstance(r, ScoreRequest):
        return ("score",)
    if r.temperature <= 0:
        return ("greedy", r.stop, r.repetition_penalty)
    return ("sample", r.temperature, r.top_p, r.seed, r.stop, r.repetition_penalty)


def _input_order(results: dict[str, Any]) -> list[str]:
    """Keys of ``generate_batch``'s results in input order.

    Newer transformers return them in input order; older ones in completion order, keyed
    ``req_<index>``: sort by that index when every key has that form.
    """
    keys = list(results)
    index = [re.fullmatch(r"req_(\d+)", k) for k in keys]
    if all(index):
        return [
            k
            for _, k in sorted((int(m.group(1)), k) for m, k in zip(index, keys, strict=True) if m)
        ]
    return keys


class _RepeatStop:
    """A stopping criterion: a row is done once its newest ``n`` generated tokens repeat a
    stretch it generated before (the same test as :func:`first_repeat`, one window per step)."""

    def __init__(self, prompt_width: int, n: int, rows: int) -> None:
        self.width, self.n = prompt_width, n
        self.seen: list[set[tuple[int, ...]]] = [set() for _ in range(rows)]
        self.done = [False] * rows

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        generated = input_ids.shape[1] - self.width
        if generated >= self.n:
            for row, window in enumerate(input_ids[:, -self.n :].tolist()):
                key = tuple(window)
                if key in self.seen[row]:
                    self.done[row] = True
                else:
                    self.seen[row].add(key)
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the earliest stop string, and whether one was found."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


@register_backend("transformers")
class TransformersBackend:
    """A local Hugging Face causal LM behind the batched backend protocol."""

    name = "transformers"

    def __init__(
        self,
        model: str | Path | Any,
        *,
        tokenizer: str | Path | Any | None = None,
        dtype: str | None = None,
        device: str = "cpu",
        max_batch_size: int = 16,
        max_wait_ms: float = 5.0,
        flush: str = "idle",
        compile: bool = False,
        continuous_batching: bool | None = None,
        max_prompt_tokens: int | None = None,
        num_threads: int | None = None,
        stop_repeats: int = 0,
    ) -> None:
        torch, transformers = _import_torch_transformers()
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        if dtype is not None and dtype not in _DTYPES:
            raise ConfigError(
                f"transformers backend option dtype={dtype!r} is not one of {', '.join(_DTYPES)}"
            )
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        choice: DtypeChoice | None = None
        if dtype != "auto":
            choice = pick_dtype(
                str(self.device), requested=dtype, source="the backend option dtype"
            )
        torch_dtype = "auto" if choice is None else choice.torch_dtype
        if isinstance(model, str | Path):
            path = Path(model).expanduser()
            if not (path / "config.json").is_file():
                raise ConfigError(
                    f"transformers backend option model={str(model)!r}: expected a local model "
                    "directory with config.json (models are never downloaded); for the default "
                    "model use `backend: embedded`"
                )
            self.model_id = str(path)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
            tokenizer = tokenizer if tokenizer is not None else path
        else:
            self.model_id = getattr(model.config, "_name_or_path", "") or type(model).__name__
            self.model = model if dtype == "auto" else model.to(torch_dtype)
            if tokenizer is None:
                raise ConfigError("transformers backend: pass `tokenizer` with a model object")
        if isinstance(tokenizer, str | Path):
            tokenizer = transformers.AutoTokenizer.from_pretrained(Path(tokenizer).expanduser())
        self.tokenizer: Any = cast(Any, tokenizer)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise ConfigError(
                f"transformers backend: the tokenizer of {self.model_id} has no chat template; "
                "use an instruct model"
            )
        if choice is None:  # dtype: auto - whatever the checkpoint holds
            loaded = str(self.model.dtype).removeprefix("torch.")
            choice = DtypeChoice(cast(Any, loaded), "the checkpoint's dtype (dtype: auto)", True)
        self.dtype_choice: DtypeChoice = choice
        """The weights' dtype and why (:class:`oversight.devices.DtypeChoice`)."""
        self.model.to(self.device).eval()
        self._forward = torch.compile(self.model) if compile else self.model
        use_cb = hasattr(self.model, "generate_batch") and self.device.type == "cuda"
        if continuous_batching and not use_cb:
            raise ConfigError(
                "transformers backend option continuous_batching=true needs a CUDA device and a "
                "transformers version with `generate_batch`"
            )
        self.continuous_batching = (
            use_cb if continuous_batching is None else bool(continuous_batching)
        )
        self.max_prompt_tokens = max_prompt_tokens
        if int(stop_repeats) < 0:
            raise ConfigError(
                f"transformers backend option stop_repeats={stop_repeats}: use 0 (off) or a "
                "number of tokens, e.g. 12"
            )
        self.stop_repeats = int(stop_repeats)
        """Stop a sequence at its first repeated stretch of this many tokens (0: never)."""
        self._torch = torch
        self._transformers = transformers
        self._lock = threading.Lock()
        self._first_token_ids: dict[str, tuple[int, ...]] = {}
        if flush not in ("idle", "window"):
            raise ConfigError(
                f"transformers backend option flush={flush!r}: use 'idle' (default) or 'window'"
            )
        self._queue: BatchQueue[_Call, Any] = BatchQueue(
            self._run_batch,
            max_batch_size=max_batch_size,
            max_wait_s=max_wait_ms / 1000,
            group_key=_group_key,
            name=f"transformers({self.model_id})",
            flush=cast(Any, flush),
        )

    @property
    def stats(self) -> Any:
        """Batching counters (:class:`oversight.backends._batching.BatchStats`)."""
        return self._queue.stats

    # -- protocol -----------------------------------------------------------------------------

    async def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        results = await self._queue.submit([_Call(r) for r in requests])
        return [r for r in results if isinstance(r, Generation)]

    async def score(self, requests: Sequence[ScoreRequest]) -> list[ChoiceScores]:
        results = await self._queue.submit([_Call(r) for r in requests])
        return [r for r in results if isinstance(r, ChoiceScores)]

    async def next_token_logprobs(
        self, messages: Sequence[Any], top_k: int = 20
    ) -> list[tuple[str, float]]:
        """The ``top_k`` most likely first tokens of the answer, as ``(text, logprob)`` pairs."""
        (result,) = await self._queue.submit([_Call(ScoreRequest(tuple(messages)), top_k)])
        return result

    async def aclose(self) -> None:
        """Nothing to release beyond memory; kept for the protocol."""

    # -- blocking work (worker thread) --------------------------------------------------------

    def _run_batch(self, calls: list[_Call]) -> list[Any]:
        first = calls[0].request
        if calls[0].top_k:
            return self.top_logprobs_sync([c.request.messages for c in calls], calls[0].top_k)
        if isinstance(first, ScoreRequest):
            return list(self.score_sync([c.request for c in calls]))  # type: ignore[misc]
        return list(self.generate_sync([c.request for c in calls]))  # type: ignore[misc]

    def _exclusive(self) -> Any:
        """One batch at a time on the model, without autograd."""
        stack = contextlib.ExitStack()
        stack.enter_context(self._lock)
        # Continuous batching updates its static tensors in place from its own thread, which
        # inference-mode tensors forbid: no_grad there, inference mode otherwise.
        torch = self._torch
        stack.enter_context(torch.no_grad() if self.continuous_batching else torch.inference_mode())
        return stack

    def _prompt_ids(self, messages: Sequence[Any]) -> list[int]:
        ids = self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], add_generation_prompt=True, tokenize=True
        )
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # BatchEncoding in some versions
            ids = ids["input_ids"]
        ids = list(ids)
        if self.max_prompt_tokens is not None and len(ids) > self.max_prompt_tokens:
            ids = ids[-self.max_prompt_tokens :]
        return ids

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        torch = self._torch
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def generate_sync(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        """Generate for requests that share sampling settings (one batch, blocking)."""
        if not requests:
            return []
        with self._exclusive():
            return self._generate(requests)

    def _generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        torch = self._torch
        prompts = [self._prompt_ids(r.messages) for r in requests]
        rows = [p for r, p in zip(requests, prompts, strict=True) for _ in range(max(1, r.n))]
        limits = [r.max_new_tokens for r in requests for _ in range(max(1, r.n))]
        head = requests[0]
        sample = head.temperature > 0
        config = self._transformers.GenerationConfig(
            max_new_tokens=max(limits),
            do_sample=sample,
            temperature=head.temperature if sample else None,
            top_p=head.top_p if sample else None,
            top_k=None,
            repetition_penalty=head.repetition_penalty if head.repetition_penalty != 1.0 else None,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.model.generation_config.eos_token_id,
            stop_strings=list(head.stop) or None,
        )
        if sample and head.seed is not None:
            torch.manual_seed(head.seed)
        if self.continuous_batching:
            outputs = self._generate_continuous(rows, config)
        else:
            ids, mask = self._left_pad(rows)
            stopping = None
            if self.stop_repeats:
                stopping = self._transformers.StoppingCriteriaList(
                    [_RepeatStop(ids.shape[1], self.stop_repeats, len(rows))]
                )
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                generation_config=config,
                tokenizer=self.tokenizer if head.stop else None,
                stopping_criteria=stopping,
            )
            outputs = [list(map(int, o)) for o in out[:, ids.shape[1] :].tolist()]
        stop_ids = {self.tokenizer.pad_token_id, *self._eos_ids()}
        texts: list[str] = []
        counts: list[int] = []
        finishes: list[Finish] = []
        for tokens, limit in zip(outputs, limits, strict=True):
            tokens = tokens[:limit]
            end = next((i for i, t in enumerate(tokens) if t in stop_ids), len(tokens))
            counts.append(min(end + 1, len(tokens)))
            body = tokens[:end]
            finish: Finish = "length" if end == len(tokens) == limit else "stop"
            repeat = first_repeat(body, self.stop_repeats)
            if repeat is not None:
                body, finish = body[:repeat], "repetition"
            text = self.tokenizer.decode(body, skip_special_tokens=True)
            text, stopped = cut_at_stop(text, head.stop)
            if stopped:
                finish = "stop"
            elif finish == "repetition":
                text = whole_sentences(text) or text.rstrip()
            texts.append(text)
            finishes.append(finish)
        self._queue.stats.tokens += sum(counts)
        results: list[Generation] = []
        at = 0
        for r, p in zip(requests, prompts, strict=True):
            k = max(1, r.n)
            results.append(
                Generation(
                    texts=tuple(texts[at : at + k]),
                    prompt_tokens=len(p),
                    completion_tokens=sum(counts[at : at + k]),
                    finish=tuple(finishes[at : at + k]),
                )
            )
            at += k
        return results

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return set(eos) if isinstance(eos, list) else {int(eos)}

    def _generate_continuous(self, rows: list[list[int]], config: Any) -> list[list[int]]:
        """transformers' continuous batching (CUDA): ``generate_batch`` on token id lists."""
        config.stop_strings = None  # stop strings are cut from the decoded text afterwards
        kwargs = {}
        if "progress_bar" in inspect.signature(self.model.generate_batch).parameters:
            kwargs["progress_bar"] = False
        results = self.model.generate_batch(inputs=rows, generation_config=config, **kwargs)
        outputs = [results[key] for key in _input_order(results)]
        failed = [o for o in outputs if getattr(o, "error", None)]
        if len(outputs) != len(rows) or failed:
            raise BackendError(
                f"transformers continuous batching answered {len(outputs)} of {len(rows)} "
                f"requests ({len(failed)} failed); set `continuous_batching: false` to use "
                "static batches"
            )
        return [list(o.generated_tokens) for o in outputs]

    def choice_token_ids(self, choice: str) -> tuple[int, ...]:
        """First token ids of ``choice`` written as-is and with a leading space (deduplicated)."""
        cached = self._first_token_ids.get(choice)
        if cached is None:
            ids: list[int] = []
            for variant in (choice, " " + choice.lstrip()):
                tokens = self.tokenizer.encode(variant, add_special_tokens=False)
                if tokens and tokens[0] not in ids:
                    ids.append(int(tokens[0]))
            if not ids:
                raise BackendError(f"score choice {choice!r} has no tokens")
            cached = self._first_token_ids[choice] = tuple(ids)
        return cached

    def score_sync(self, requests: Sequence[ScoreRequest]) -> list[ChoiceScores]:
        """Choice probabilities from next-token logits (one padded forward pass, blocking)."""
        if not requests:
            return []
        for r in requests:
            self._check_choices(r.choices)
        with self._exclusive():
            probs = self._next_token_probs([r.messages for r in requests])
        results = []
        for row, r in zip(probs, requests, strict=True):
            mass = [float(row[list(self.choice_token_ids(c))].sum()) for c in r.choices]
            total = sum(mass)
            if total <= 0:
                raise BackendError(f"score: every choice of {r.choices} has probability 0")
            results.append(
                ChoiceScores({c: m / total for c, m in zip(r.choices, mass, strict=True)})
            )
        return results

    def _check_choices(self, choices: tuple[str, ...]) -> None:
        if len(choices) < 2:
            raise BackendError(f"score needs at least two choices, got {choices}")
        seen: dict[int, str] = {}
        for c in choices:
            for t in self.choice_token_ids(c):
                if t in seen and seen[t] != c:
                    raise BackendError(
                        f"score choices {seen[t]!r} and {c!r} start with the same token "
                        f"({self.tokenizer.decode([t])!r}), so the next-token probability cannot "
                        "tell them apart; use choices with different first tokens (e.g. 'A'/'B')"
                    )
                seen[t] = c

    def _next_token_probs(self, conversations: Sequence[Sequence[Any]]) -> torch.Tensor:
        """Softmax of the next-token logits after each chat-templated conversation (CPU)."""
        torch = self._torch
        ids, mask = self._left_pad([self._prompt_ids(m) for m in conversations])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self._forward(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        return torch.softmax(logits[:, -1, :].float(), dim=-1).cpu()

    def top_logprobs_sync(
        self, conversations: Sequence[Sequence[Any]], top_k: int
    ) -> list[list[tuple[str, float]]]:
        """The ``top_k`` most likely next tokens per conversation (blocking)."""
        with self._exclusive():
            probs = self._next_token_probs(conversations)
        values, indices = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        return [
            [
                (self.tokenizer.decode([int(i)]), float(v.clamp(min=1e-30).log()))
                for v, i in zip(vs, ix, strict=True)
            ]
            for vs, ix in zip(values, indices, strict=True)
        ]
