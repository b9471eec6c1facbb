"""The openai backend: unit tests on httpx.MockTransport, and a real server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import import_or_fail, skip_or_fail

from oversight.backends import GenerateRequest, ScoreRequest, create_backend
from oversight.backends._logprobs import choice_probs
from oversight.backends.openai import OpenAIBackend
from oversight.errors import BackendError
from oversight.paths import cache_dir

TOKENIZER_DIR = cache_dir() / "models" / "smollm2-135m-instruct"


def user(text: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": text},)


def completion(texts: list[str], top: list[tuple[str, float]] | None = None) -> dict[str, object]:
    logprobs = None
    if top is not None:
        logprobs = {
            "content": [
                {
                    "token": top[0][0],
                    "logprob": top[0][1],
                    "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top],
                }
            ]
        }
    return {
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}, "logprobs": logprobs}
            for i, t in enumerate(texts)
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3},
    }


def mock(handler: object, **options: object) -> OpenAIBackend:
    return OpenAIBackend(
        "m",
        base_url="http://server/v1",
        transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
        backoff_s=0.0,
        **options,  # type: ignore[arg-type]
    )


async def test_generate_sends_the_request_fields() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/chat/completions"
        assert request.headers["authorization"] == "Bearer k"
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=completion(["a", "b"]))

    backend = mock(handler, api_key="k")
    request = GenerateRequest(user("hi"), max_new_tokens=9, n=2, stop=("\n",), seed=3)
    (g,) = await backend.generate([request])
    await backend.aclose()
    assert g.texts == ("a", "b") and g.prompt_tokens == 5 and g.completion_tokens == 3
    assert bodies[0] == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 9,
        "temperature": 0.0,
        "top_p": 1.0,
        "n": 2,
        "stop": ["\n"],
        "seed": 3,
    }


async def test_retries_with_backoff_then_succeeds() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused")
        if calls == 2:
            return httpx.Response(503, headers={"retry-after": "0"}, text="busy")
        if calls == 3:
            return httpx.Response(429, text="slow down")
        return httpx.Response(200, json=completion(["ok"]))

    backend = mock(handler, max_retries=3)
    (g,) = await backend.generate([GenerateRequest(user("hi"))])
    assert g.text == "ok" and calls == 4


async def test_gives_up_after_max_retries() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(502, text="bad gateway")

    backend = mock(handler, max_retries=2)
    with pytest.raises(BackendError, match="HTTP 502"):
        await backend.generate([GenerateRequest(user("hi"))])
    assert calls == 3
    with pytest.raises(BackendError, match="HTTP 502"):  # several requests: still one clear error
        await backend.generate([GenerateRequest(user("a")), GenerateRequest(user("b"))])


async def test_connection_errors_name_the_server() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(BackendError, match=r"http://server/v1.*is the server running"):
        await mock(handler, max_retries=1).generate([GenerateRequest(user("hi"))])


async def test_client_errors_are_not_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(400, json={"error": {"message": "logprobs is not supported"}})

    with pytest.raises(BackendError, match="does not support logprobs"):
        await mock(handler).score([ScoreRequest(user("q"))])
    assert calls == 1


async def test_score_without_logprobs_in_the_reply_is_a_clear_error() -> None:
    backend = mock(lambda request: httpx.Response(200, json=completion(["Yes"])))
    with pytest.raises(BackendError, match="no logprobs"):
        await backend.score([ScoreRequest(user("q"))])


async def test_score_reads_choices_from_top_logprobs() -> None:
    top = [("Yes", -0.5), (" Yes", -2.0), ("No", -1.5), ("Maybe", -0.1)]
    backend = mock(lambda request: httpx.Response(200, json=completion(["Yes"], top)))
    (s,) = await backend.score([ScoreRequest(user("q"))])
    import math

    yes, no = math.exp(-0.5) + math.exp(-2.0), math.exp(-1.5)
    assert s["Yes"] == pytest.approx(yes / (yes + no))


async def test_wrong_number_of_completions_is_an_error() -> None:
    backend = mock(lambda request: httpx.Response(200, json=completion(["only one"])))
    with pytest.raises(BackendError, match="n=3"):
        await backend.generate([GenerateRequest(user("hi"), n=3)])


async def test_several_servers_share_requests_and_a_dead_one_is_avoided() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "dead":
            raise httpx.ConnectError("connection refused")
        seen.append(request.url.host)
        return httpx.Response(200, json=completion(["ok"]))

    backend = OpenAIBackend(
        "m",
        base_urls=["http://a/v1", "http://dead/v1", "http://b/v1"],
        transport=httpx.MockTransport(handler),
        max_retries=0,
        backoff_s=0.0,
    )
    out = await backend.generate([GenerateRequest(user(f"q{i}")) for i in range(12)])
    assert [g.texts for g in out] == [("ok",)] * 12  # max_retries=0: failover is not a retry
    assert set(seen) == {"a", "b"} and min(seen.count("a"), seen.count("b")) >= 3
    dead = backend.servers[1]
    assert dead.failures >= 1 and dead.down_until > 0
    await backend.aclose()
    with pytest.raises(BackendError, match="base_urls"):
        OpenAIBackend("m", base_urls=[])


def test_choice_probs_rules() -> None:
    assert choice_probs([("Y", 0.0)], ("Yes", "Yellow")) == {"Yes": 0.5, "Yellow": 0.5}
    assert choice_probs([("A", 0.0), (" B", 0.0)], ("A", "B")) == {"A": 0.5, "B": 0.5}
    assert choice_probs([("Maybe", 0.0)], ("Yes", "No")) == {"Yes": 0.5, "No": 0.5}
    assert choice_probs([("No", -0.1)], ("Yes", "No")) == {"Yes": 0.0, "No": 1.0}


def test_registered_by_name() -> None:
    backend = create_backend("openai", model="m", base_url="http://127.0.0.1:1/v1")
    assert isinstance(backend, OpenAIBackend)


# -- a real server on 127.0.0.1 ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(
    model_dir: Path, extra: list[str], procs: list[subprocess.Popen[bytes]] | None = None
) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "oversight.backends._serve", "--model", str(model_dir)),
            *("--port", str(port), "--num-threads", "1", *extra),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    if procs is not None:
        procs.append(proc)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"server exited with {proc.returncode}: {err[-2000:]}")
            try:
                if httpx.get(url + "/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server did not answer within 240 s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    transformers = import_or_fail("transformers")
    torch = import_or_fail("torch")
    if not (TOKENIZER_DIR / "tokenizer.json").is_file():
        skip_or_fail(f"no tokenizer at {TOKENIZER_DIR}: run `oversight models prepare`")
    tokenizer = transformers.AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_server(tiny_model_dir: Path) -> Iterator[str]:
    """The project's server in a thread of this process (real HTTP on 127.0.0.1; no re-import)."""
    uvicorn = import_or_fail("uvicorn")
    from oversight.backends._serve import create_app
    from oversight.backends.transformers import TransformersBackend

    app = create_app(TransformersBackend(tiny_model_dir, dtype="float32"), model_name="tiny")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


async def test_real_server_generates_and_scores(tiny_server: str, tiny_model_dir: Path) -> None:
    from oversight.backends.transformers import TransformersBackend

    local = TransformersBackend(tiny_model_dir, dtype="float32")
    remote = OpenAIBackend("tiny", base_url=tiny_server, max_retries=0)
    try:
        requests = [GenerateRequest(user(f"hello {i}"), max_new_tokens=5) for i in range(3)]
        assert [g.texts for g in await remote.generate(requests)] == [
            g.texts for g in await local.generate(requests)
        ]
        (g,) = await remote.generate([GenerateRequest(user("x"), n=2, temperature=1.0, seed=1)])
        assert len(g.texts) == 2 and g.prompt_tokens > 0
        top = await local.next_token_logprobs(user("which?"), 20)
        choices = (top[0][0].strip(), top[1][0].strip())
        if "" in choices or choices[0].startswith(choices[1]) or choices[1].startswith(choices[0]):
            pytest.skip(f"random model's top tokens {choices} are not distinct choices")
        (s,) = await remote.score([ScoreRequest(user("which?"), choices=choices)])
        expected = choice_probs(top, choices)
        assert s.probs == pytest.approx(expected, abs=1e-4)
        assert s.best == choices[0]
    finally:
        await remote.aclose()


@pytest.mark.slow
async def test_real_server_with_the_default_model() -> None:
    from oversight.backends.embedded import default_model_dir

    try:
        model_dir = default_model_dir()
    except Exception as exc:  # PrerequisiteError where the packages are missing
        skip_or_fail(str(exc))
    for url in _serve(model_dir, []):
        remote = OpenAIBackend("smollm2", base_url=url, max_retries=0)
        (g,) = await remote.generate(
            [GenerateRequest(user("What is the capital of France?"), max_new_tokens=12)]
        )
        assert "Paris" in g.text
        (s,) = await remote.score(
            [ScoreRequest(user("Is Paris the capital of France? Answer Yes or No."))]
        )
        assert s["Yes"] + s["No"] == pytest.approx(1.0)
        await remote.aclose()


@pytest.mark.timeout(900)
async def test_a_run_goes_on_when_one_of_two_servers_is_killed(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Two `oversight models serve` servers behind one openai backend (the base model); one is
    killed with SIGKILL mid-run; every episode still finishes."""
    from contextlib import ExitStack, contextmanager

    from helpers import write_hierarchy

    from oversight.hierarchy import load_hierarchy
    from oversight.prompts import load_prompts
    from oversight.runtime import Runtime

    procs: list[subprocess.Popen[bytes]] = []
    with ExitStack() as stack:
        urls = [
            stack.enter_context(
                contextmanager(_serve)(tiny_model_dir, ["--dtype", "float32"], procs)
            )
            for _ in range(2)
        ]
        path = write_hierarchy(tmp_path / "h.yaml", settings={"concurrency": 4})
        spec = load_hierarchy(path)
        base = OpenAIBackend("tiny", base_urls=urls, max_retries=2, backoff_s=0.2)
        runtime = Runtime(spec, run_name="two", run_dir=tmp_path / "run", backends={"base": base})
        killed: list[int] = []

        def kill_once(outcome: object) -> None:
            if not killed and base.servers[0].sent and base.servers[1].sent:
                procs[0].kill()
                killed.append(procs[0].pid)

        runtime.on_outcome.append(kill_once)
        prompts = load_prompts(None)[:12]
        result = await runtime.run(prompts)
    assert killed and procs[0].wait() != 0
    assert [o.status for o in result.outcomes].count("failed") == 0
    assert len(result.outcomes) == len(prompts)
    assert base.servers[1].sent > 0 and base.servers[0].sent > 0


async def test_finish_reasons_say_which_answers_the_limit_cut() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        reply: dict[str, Any] = completion(["cut", "whole", "filtered"])
        reasons = ("length", "stop", "content_filter")
        for choice, reason in zip(reply["choices"], reasons, strict=True):
            choice["finish_reason"] = reason
        return httpx.Response(200, json=reply)

    backend = mock(handler)
    (g,) = await backend.generate([GenerateRequest(user("hi"), n=3)])
    await backend.aclose()
    assert g.finish == ("length", "stop", "stop")
