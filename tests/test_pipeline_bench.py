"""benchmarks/pipeline.py's runtime variant on a tiny random model (no timings asserted)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import anyio
import pytest
from _bench import load_benchmark
from conftest import import_or_fail

import_or_fail("torch")
import_or_fail("transformers")

from oversight.backends.transformers import TransformersBackend  # noqa: E402
from oversight.training.tiny import tiny_llama, tiny_tokenizer  # noqa: E402


def _bench() -> ModuleType:
    return load_benchmark("pipeline")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _bench()


@pytest.fixture
def backend() -> TransformersBackend:
    tok = tiny_tokenizer()
    # Byte tokens would give " Yes" and " No" the same first token; whole-word tokens let
    # ``score`` tell the critic's choices apart.
    tok.add_tokens(["Yes", "No", " Yes", " No"])
    return TransformersBackend(
        tiny_llama(len(tok)), tokenizer=tok, dtype="float32", max_batch_size=2, num_threads=1
    )


def test_runtime_variant_runs_every_episode_through_the_model(
    bench: Any, backend: TransformersBackend
) -> None:
    prompts = bench.load_prompts(2)
    run = bench.run_runtime(backend, prompts, 4, 2)
    outcomes = run["result"].outcomes
    assert len(outcomes) == 2
    assert all(o.status in ("consensus", "escalated") for o in outcomes)
    assert all(o.rounds == 1 for o in outcomes)  # the critic flags every draft: one revision
    assert all(o.draft_violations == (bench.PRINCIPLE_ID,) for o in outcomes)
    # 2 generate + 1 score per episode, like the hand-written loops.
    assert run["items"] == 6
    assert run["batches"] >= 3
    assert run["busy"] > 0
    assert len(run["texts"]) == 2


def test_variants_ask_the_model_the_same_requests(bench: Any, backend: TransformersBackend) -> None:
    """The hand-written loops send what the runtime's agents send (messages, limits, stops)."""
    seen: list[Any] = []
    queue: Any = backend._queue
    original = queue._run_batch

    def record(calls: list[Any]) -> list[Any]:
        seen.extend(c.request for c in calls)
        return original(calls)

    queue._run_batch = record
    prompts = bench.load_prompts(2)
    bench.run_runtime(backend, prompts, 4, 2)
    runtime_requests = list(seen)
    seen.clear()
    anyio.run(bench.concurrent, backend, prompts, 4, 2)

    def key(r: Any) -> tuple[Any, ...]:
        messages = tuple(tuple(sorted(dict(m).items())) for m in r.messages)
        extra = (r.max_new_tokens, r.temperature, r.stop) if hasattr(r, "stop") else r.choices
        return (type(r).__name__, messages, extra)

    assert len(runtime_requests) == 6
    assert sorted(map(key, runtime_requests)) == sorted(map(key, seen))


def test_every_variant_is_timed_the_same_way(bench: Any, backend: TransformersBackend) -> None:
    """Each variant runs --repeats times in turn and its median run is the figure."""
    from types import SimpleNamespace

    args = SimpleNamespace(
        tokens=4, concurrency=2, repeats=3, skip_sequential=False, sequential_limit=1,
        device="cpu", max_wait_ms=5.0, flush="idle", threads=1,
    )  # fmt: skip
    report = bench.measure(backend, bench.load_prompts(2), args)
    for name in ("stage_batched", "runtime", "concurrent"):
        runs = report[name]["runs_s"]
        assert len(runs) == 3
        assert report[name]["wall_s"] == sorted(runs)[1]
    sequential = report["sequential"]
    assert len(sequential["runs_s_scaled_to_all"]) == 3 and sequential["prompts"] == 1
    assert report["same_outputs_b_runtime"] and report["same_outputs_b_concurrent"]
    # every run's batches: sizes and seconds inside the model call, per variant
    for name in ("stage_batched", "runtime", "concurrent"):
        per_run = report["batches_per_run"][name]
        assert len(per_run) == 3
        for run in per_run:
            assert sum(run["sizes"]) == 6 and len(run["seconds"]) == len(run["sizes"])
    ratio = report["stage_batched"]["wall_s"] / report["runtime"]["wall_s"]
    assert report["ratio_runtime_vs_stage_batched"] == pytest.approx(ratio, abs=0.01)


def test_the_runtime_issues_the_hand_loops_batches(bench: Any) -> None:
    """One batch per stage holding every episode, in the hand loop's order, every run: the
    runtime's three batches are the hand-batched loop's three (so the same revisions)."""
    tok = tiny_tokenizer()
    tok.add_tokens(["Yes", "No", " Yes", " No"])
    backend = TransformersBackend(
        tiny_llama(len(tok)), tokenizer=tok, dtype="float32", max_batch_size=8, num_threads=1
    )
    prompts = [f"{p} (#{i})" for i, p in enumerate(bench.load_prompts(6))]
    orders: list[list[int]] = []
    original = backend._queue._run_batch

    def record(calls: list[Any]) -> list[Any]:
        users = [str(c.request.messages[-1]["content"]) for c in calls]
        orders.append([next(i for i in range(6) if f"(#{i})" in u) for u in users])
        return original(calls)

    backend._queue._run_batch = record  # type: ignore[method-assign]
    hand = bench.stage_batched(backend, prompts, 4)
    for _ in range(2):
        orders.clear()
        run = bench.run_runtime(backend, prompts, 4, 6)
        assert run["sizes"] == [6, 6, 6]
        assert orders == [list(range(6))] * 3
        assert run["texts"] == hand
