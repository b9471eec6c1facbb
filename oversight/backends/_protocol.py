"""The model protocol every backend implements, and the registry that lets YAML name backends.

A backend answers two batched calls:

* ``generate(requests) -> list[Generation]``: text completions of chat conversations;
* ``score(requests) -> list[ChoiceScores]``: the probability of each of a few given choices
  (``("Yes", "No")``, ``("A", "B")``) as the next answer, read from next-token probabilities.
  Critics and judges decide by scores rather than by parsing free text.

Requests carry ``meta``: a small dict of facts the agent knows about the call (its role, the
principle, the episode, the prompt's ground-truth labels when known). Real models ignore it; the
``scripted`` and ``simulated`` backends use it to answer deterministically or with configured
error rates.

Backends register with :func:`register_backend` under a name that hierarchy YAML uses
(``backend: transformers``); heavy packages are imported lazily by the factory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import UnknownModelError

ChatMessage = Mapping[str, str]
"""``{"role": "user" | "assistant" | "system", "content": "..."}``"""


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """One text-generation call."""

    messages: tuple[ChatMessage, ...]
    """The chat conversation to continue (the model's chat template is applied)."""
    max_new_tokens: int = 128
    """Upper bound on generated tokens."""
    temperature: float = 0.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    """Nucleus sampling mass."""
    n: int = 1
    """Number of samples (best-of-n)."""
    stop: tuple[str, ...] = ()
    """Strings that end generation (not included in the output)."""
    seed: int | None = None
    """Sampling seed, for reproducible runs."""
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Facts about the call for scripted/simulated backends (role, principle, labels, ...)."""
    repetition_penalty: float = 1.0
    """Penalty on tokens already generated (1.0 = none); small models' greedy rewrites loop
    without one. Backends without the parameter ignore it."""


@dataclass(frozen=True, slots=True)
class Generation:
    """The answer to one :class:`GenerateRequest`."""

    texts: tuple[str, ...]
    """``n`` completions."""
    prompt_tokens: int = 0
    """Tokens in the prompt (0 when the backend does not count)."""
    completion_tokens: int = 0
    """Tokens generated over all samples."""
    finish: tuple[str, ...] = ()
    """How each completion ended: ``stop``, ``length`` (cut by the token limit) or
    ``repetition`` (:mod:`oversight.backends._ending`); empty when the backend does not say."""

    @property
    def text(self) -> str:
        return self.texts[0]


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    """Probability of each choice as the next answer to a conversation."""

    messages: tuple[ChatMessage, ...]
    """The conversation whose next answer is scored (usually ends with a question)."""
    choices: tuple[str, ...] = ("Yes", "No")
    """Candidate answers; each is scored by its first token."""
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Facts about the call for scripted/simulated backends."""


@dataclass(frozen=True, slots=True)
class ChoiceScores:
    """Normalised probabilities over the requested choices (they sum to 1)."""

    probs: Mapping[str, float]

    def __getitem__(self, choice: str) -> float:
        return self.probs[choice]

    @property
    def best(self) -> str:
        return max(self.probs, key=lambda c: self.probs[c])


@runtime_checkable
class ModelBackend(Protocol):
    """What every backend implements. Both calls are batched and async."""

    name: str

    async def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]: ...

    async def score(self, requests: Sequence[ScoreRequest]) -> list[ChoiceScores]: ...

    async def aclose(self) -> None: ...


BackendFactory = Callable[..., ModelBackend]
_REGISTRY: dict[str, BackendFactory] = {}
_LAZY: dict[str, str] = {
    "scripted": "oversight.backends.scripted",
    "simulated": "oversight.backends.simulated",
    "transformers": "oversight.backends.transformers",
    "openai": "oversight.backends.openai",
    "vllm": "oversight.backends.vllm",
    "embedded": "oversight.backends.embedded",
    "classifier": "oversight.backends.classifier",
    "reward": "oversight.backends.reward",
}


def register_backend(name: str) -> Callable[[BackendFactory], BackendFactory]:
    """Class or factory decorator: make a backend constructible by name from YAML."""

    def decorate(factory: BackendFactory) -> BackendFactory:
        _REGISTRY[name] = factory
        return factory

    return decorate


def backend_names() -> list[str]:
    """Every backend name that can be used in a hierarchy file."""
    return sorted(set(_REGISTRY) | set(_LAZY))


def create_backend(kind: str, **options: Any) -> ModelBackend:
    """Build a backend by registered name; ``options`` come from the hierarchy YAML."""
    if kind not in _REGISTRY and kind in _LAZY:
        import importlib

        importlib.import_module(_LAZY[kind])
    try:
        factory = _REGISTRY[kind]
    except KeyError:
        raise UnknownModelError(
            f"unknown backend {kind!r}; known backends: {', '.join(backend_names())}"
        ) from None
    return factory(**options)
