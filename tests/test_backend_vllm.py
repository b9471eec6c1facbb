"""The vllm backend without vLLM: request building, logprob conversion, the flow on a stand-in.

vLLM needs CUDA and cannot be installed on the project's machines; the test that loads a real
engine skips with that reason.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from oversight.backends import GenerateRequest, ScoreRequest
from oversight.backends import vllm as vllm_backend
from oversight.errors import BackendError, PrerequisiteError


def user(text: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": text},)


@dataclass
class Logprob:  # the fields of vllm.logprobs.Logprob that the backend reads
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class Completion:
    index: int
    text: str
    token_ids: list[int]
    logprobs: list[dict[int, Logprob]] | None = None
    finish_reason: str | None = "stop"


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    outputs: list[Completion]
    finished: bool = True


class Tokenizer:
    def apply_chat_template(self, messages: list[dict[str, str]], **kwargs: Any) -> list[int]:
        assert kwargs == {"add_generation_prompt": True, "tokenize": True}
        return [len(m["content"]) for m in messages]


@dataclass
class Engine:
    """Answers like vLLM's AsyncLLM: an async iterator of RequestOutput per request."""

    calls: list[tuple[Any, Any, str]] = field(default_factory=list)
    fail: bool = False

    async def get_tokenizer(self) -> Tokenizer:
        return Tokenizer()

    async def generate(self, prompt: Any, params: Any, request_id: str) -> AsyncIterator[Any]:
        self.calls.append((prompt, params, request_id))
        if self.fail:
            raise RuntimeError("CUDA out of memory")
        if params["max_tokens"] == 1 and params.get("logprobs"):
            top = {
                5: Logprob(-0.2, 1, "Yes"),
                6: Logprob(-1.8, 2, " No"),
                7: Logprob(-3.0, 3, "Maybe"),
            }
            yield RequestOutput(prompt["prompt_token_ids"], [Completion(0, "Yes", [5], [top])])
            return
        yield RequestOutput(prompt["prompt_token_ids"], [], finished=False)
        finish = "length" if params.get("max_tokens", 1_000) <= 3 else "stop"
        yield RequestOutput(
            prompt["prompt_token_ids"],
            [
                Completion(i, f"answer {i}", [1, 2, 3], finish_reason=finish)
                for i in reversed(range(params["n"]))
            ],
        )


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setattr(vllm_backend, "_sampling_params", lambda **kw: kw)
    return Engine()


def test_generate_params_map_every_field() -> None:
    r = GenerateRequest(user("x"), max_new_tokens=7, temperature=0.7, top_p=0.9, n=3)
    assert vllm_backend.generate_params(r) == {
        "n": 3,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 7,
    }
    r = GenerateRequest(user("x"), stop=("\n\n",), seed=4)
    assert vllm_backend.generate_params(r)["stop"] == ["\n\n"]
    assert vllm_backend.generate_params(r)["seed"] == 4


def test_logprobs_become_choice_probabilities() -> None:
    top = {1: Logprob(math.log(0.6), 1, "A"), 2: Logprob(math.log(0.2), 2, " B")}
    scores = vllm_backend.scores_from_logprobs(top, ("A", "B"))
    assert scores["A"] == pytest.approx(0.75)
    assert scores.best == "A"


async def test_generate_through_the_engine(engine: Engine) -> None:
    backend = vllm_backend.VLLMBackend("m", engine=engine)
    g1, g2 = await backend.generate(
        [GenerateRequest(user("hello"), n=2), GenerateRequest(user("hi"), max_new_tokens=3)]
    )
    assert g1.texts == ("answer 0", "answer 1") and g1.completion_tokens == 6
    assert g2.prompt_tokens == 1
    assert g1.finish == ("stop", "stop") and g2.finish == ("length",)  # the limit cut g2
    assert [c[0] for c in engine.calls] == [{"prompt_token_ids": [5]}, {"prompt_token_ids": [2]}]
    assert len({c[2] for c in engine.calls}) == 2  # request ids are unique


async def test_score_through_the_engine(engine: Engine) -> None:
    backend = vllm_backend.VLLMBackend("m", engine=engine, top_logprobs=5)
    (s,) = await backend.score([ScoreRequest(user("ok?"))])
    assert engine.calls[0][1] == {"n": 1, "temperature": 0.0, "max_tokens": 1, "logprobs": 5}
    yes, no = math.exp(-0.2), math.exp(-1.8)
    assert s["Yes"] == pytest.approx(yes / (yes + no))


async def test_engine_failures_are_backend_errors(engine: Engine) -> None:
    engine.fail = True
    backend = vllm_backend.VLLMBackend("m", engine=engine)
    with pytest.raises(BackendError, match="out of memory"):
        await backend.generate([GenerateRequest(user("a")), GenerateRequest(user("b"))])


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is not None, reason="vLLM is installed: no error to check"
)
def test_missing_vllm_names_the_extra() -> None:
    with pytest.raises(PrerequisiteError, match=r"oversight\[vllm\]"):
        vllm_backend.VLLMBackend("some/model")


@pytest.mark.gpu
@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="vLLM is not installed (it needs CUDA and cannot be installed on these machines)",
)
async def test_real_engine() -> None:  # pragma: no cover - not run here
    backend = vllm_backend.VLLMBackend("HuggingFaceTB/SmolLM2-135M-Instruct")
    (g,) = await backend.generate([GenerateRequest(user("What is the capital of France?"))])
    assert "Paris" in g.text
    await backend.aclose()
