"""Throughput of the constitutional loop: sequential vs stage-batched vs concurrent episodes.

The same prompts, the same model and the same token limits, three ways, in one process:

(a) ``sequential``: one model call at a time per prompt - draft, critique (P("Yes") that the
    draft violates the principle), revision - like LangChain's ConstitutionalChain;
(b) ``stage_batched``: a hand-written loop that runs each stage as one batch over all prompts;
(c) ``concurrent``: every prompt is an episode task (``--concurrency`` at once) making the same
    three calls through the transformers backend's batching queue, as the runtime's episodes do.
    This measures the backend's batching, not the full runtime (which makes more calls per
    episode: several critics, safety, judge); see docs/models.md.

Every episode always revises once, so all three do the same work. Greedy decoding; (b) and (c)
must produce identical texts (``same_outputs``). Prints one JSON object.

    python benchmarks/pipeline.py --prompts 32 --tokens 48
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio

from oversight.backends import ChoiceScores, GenerateRequest, Generation, ScoreRequest
from oversight.backends.transformers import TransformersBackend
from oversight.paths import DATA_DIR

PRINCIPLE = "The response must not help anyone cause serious harm, and must be honest and useful."


def load_prompts(n: int) -> list[str]:
    rows = [json.loads(line) for line in (DATA_DIR / "prompts" / "default.jsonl").open()]
    texts = [r["prompt"] for r in rows if isinstance(r.get("prompt"), str)]
    return [texts[i % len(texts)] for i in range(n)]


def draft_request(prompt: str, tokens: int) -> GenerateRequest:
    return GenerateRequest(({"role": "user", "content": prompt},), max_new_tokens=tokens)


def critique_request(prompt: str, draft: str) -> ScoreRequest:
    question = (
        f"Principle: {PRINCIPLE}\n\nRequest: {prompt}\n\nResponse: {draft}\n\n"
        "Does the response violate the principle? Answer Yes or No."
    )
    return ScoreRequest(({"role": "user", "content": question},), choices=("Yes", "No"))


def revise_request(prompt: str, draft: str, p_violation: float, tokens: int) -> GenerateRequest:
    note = "may violate" if p_violation >= 0.5 else "probably satisfies"
    instruction = (
        f"Request: {prompt}\n\nDraft answer: {draft}\n\nA reviewer says the draft {note} this "
        f"principle: {PRINCIPLE}\nRewrite the answer so that it follows the principle."
    )
    return GenerateRequest(({"role": "user", "content": instruction},), max_new_tokens=tokens)


def sequential(backend: TransformersBackend, prompts: list[str], tokens: int) -> list[str]:
    out = []
    for p in prompts:
        (draft,) = backend.generate_sync([draft_request(p, tokens)])
        (score,) = backend.score_sync([critique_request(p, draft.text)])
        (rev,) = backend.generate_sync([revise_request(p, draft.text, score["Yes"], tokens)])
        out.append(rev.text)
    return out


def stage_batched(backend: TransformersBackend, prompts: list[str], tokens: int) -> list[str]:
    drafts = backend.generate_sync([draft_request(p, tokens) for p in prompts])
    scores = backend.score_sync(
        [critique_request(p, d.text) for p, d in zip(prompts, drafts, strict=True)]
    )
    revisions = backend.generate_sync(
        [
            revise_request(p, d.text, s["Yes"], tokens)
            for p, d, s in zip(prompts, drafts, scores, strict=True)
        ]
    )
    return [r.text for r in revisions]


async def concurrent(
    backend: TransformersBackend, prompts: list[str], tokens: int, concurrency: int
) -> list[str]:
    out = [""] * len(prompts)
    limit = anyio.Semaphore(concurrency)

    async def episode(i: int, p: str) -> None:
        async with limit:
            draft: Generation = (await backend.generate([draft_request(p, tokens)]))[0]
            score: ChoiceScores = (await backend.score([critique_request(p, draft.text)]))[0]
            rev = (await backend.generate([revise_request(p, draft.text, score["Yes"], tokens)]))[0]
            out[i] = rev.text

    async with anyio.create_task_group() as tg:
        for i, p in enumerate(prompts):
            tg.start_soon(episode, i, p)
    return out


def random_360m(tokenizer_dir: str | None) -> tuple[Any, Any]:
    """A random-weight Llama shaped like SmolLM2-360M, with the default model's tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    if tokenizer_dir is None:
        from oversight.backends.embedded import default_model_dir

        tokenizer_dir = str(default_model_dir())
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
        num_attention_heads=15, num_key_value_heads=5, max_position_embeddings=8192,
        rope_theta=100000.0, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16), tok


def raw_continuous_batching(
    backend: TransformersBackend, prompts: list[str], tokens: int
) -> dict[str, Any]:
    """``generate_batch`` alone on the drafts' token ids: the ceiling for generation."""
    from transformers import GenerationConfig

    rows = [backend._prompt_ids(draft_request(p, tokens).messages) for p in prompts]
    config = GenerationConfig(max_new_tokens=tokens, do_sample=False,
                              pad_token_id=backend.tokenizer.pad_token_id)  # fmt: skip
    with backend._exclusive():
        start = time.perf_counter()
        out = backend._generate_continuous(rows, config)
        wall = time.perf_counter() - start
    generated = sum(len(o) for o in out)
    tps = round(generated / wall, 1)
    return {"wall_s": round(wall, 3), "requests": len(rows), "tokens_per_s": tps}


_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-model")


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    """Run ``fn`` in a worker thread, as the backend runs (c)'s batches.

    Measured here: the same forward pass ran up to 1.8x faster in a worker thread than on the
    main thread (OpenMP on a loaded 2-core machine), so all three variants use one.
    """
    start = time.perf_counter()
    result = _WORKER.submit(fn, *args).result()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=48, help="max new tokens per generation")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--model", default=None, help="model dir (default: the embedded model)")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--skip-sequential", action="store_true")
    parser.add_argument("--repeats", type=int, default=2, help="alternate (b)/(c) runs; min")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--random-360m",
        action="store_true",
        help="a random-weight SmolLM2-360M-shaped Llama built from a config (GPU figures)",
    )
    parser.add_argument("--tokenizer", default=None, help="tokenizer dir for --random-360m")
    parser.add_argument(
        "--sequential-limit",
        type=int,
        default=None,
        help="run (a) on the first N prompts only (its episodes/s is per episode either way)",
    )
    args = parser.parse_args()

    model: Any = args.model
    tokenizer: Any = None
    if args.random_360m:
        model, tokenizer = random_360m(args.tokenizer)
        args.model = "random-smollm2-360m-shaped"
    elif args.model is None:
        from oversight.backends.embedded import default_model_dir

        args.model = model = str(default_model_dir())
    backend = TransformersBackend(
        model,
        tokenizer=tokenizer,
        dtype=args.dtype,
        device=args.device,
        max_batch_size=args.concurrency,
        max_wait_ms=args.max_wait_ms,
        num_threads=args.threads,
    )
    prompts = load_prompts(args.prompts)
    timed(backend.generate_sync, [draft_request(prompts[0], 4)])  # warm-up

    results: dict[str, Any] = {}
    t_a = 0.0
    if not args.skip_sequential:
        n_a = min(args.sequential_limit or args.prompts, args.prompts)
        _, t_seq = timed(sequential, backend, prompts[:n_a], args.tokens)
        t_a = t_seq * args.prompts / n_a  # per-episode cost, scaled to the same prompt count
        results["sequential"] = {
            "wall_s": round(t_seq, 2),
            "prompts": n_a,
            "episodes_per_s": n_a / t_seq,
        }
    # (b) and (c) alternate ``--repeats`` times and the fastest of each counts: on a shared
    # machine, load from other processes otherwise decides the ratio.
    t_b = t_c = float("inf")
    texts_b: list[str] = []
    texts_c: list[str] = []
    busy = 0.0
    batches = items = 0
    for _ in range(args.repeats):
        texts_b, t = timed(stage_batched, backend, prompts, args.tokens)
        t_b = min(t_b, t)
        before = (backend.stats.busy_s, backend.stats.batches, backend.stats.items)
        start = time.perf_counter()
        texts_c = anyio.run(concurrent, backend, prompts, args.tokens, args.concurrency)
        t = time.perf_counter() - start
        if t < t_c:
            t_c = t
            busy = backend.stats.busy_s - before[0]
            batches = backend.stats.batches - before[1]
            items = backend.stats.items - before[2]
    results["stage_batched"] = {"wall_s": round(t_b, 2), "episodes_per_s": args.prompts / t_b}
    results["concurrent"] = {
        "wall_s": round(t_c, 2),
        "episodes_per_s": args.prompts / t_c,
        "batches": batches,
        "mean_batch_size": round(items / batches, 2) if batches else 0.0,
        "share_outside_model_calls": round(1 - busy / t_c, 4),
    }
    if backend.continuous_batching:
        results["raw_continuous_batching"] = raw_continuous_batching(backend, prompts, args.tokens)
    for r in results.values():
        if "episodes_per_s" in r:
            r["episodes_per_s"] = round(r["episodes_per_s"], 4)
    report = {
        "benchmark": "pipeline",
        "model": Path(args.model).name,
        "dtype": args.dtype,
        "device": args.device,
        "machine": platform.machine(),
        "prompts": args.prompts,
        "max_new_tokens": args.tokens,
        "concurrency": args.concurrency,
        "threads": args.threads,
        "repeats": args.repeats,
        "calls_per_episode": {"generate": 2, "score": 1},
        "concurrent_is": "episode tasks through the batching backend (not the full runtime)",
        **results,
        "ratio_concurrent_vs_stage_batched": round(t_b / t_c, 3),
        "same_outputs_b_c": texts_b == texts_c,
    }
    if "sequential" in results:
        report["ratio_stage_batched_vs_sequential"] = round(t_a / t_b, 3)
        report["ratio_concurrent_vs_sequential"] = round(t_a / t_c, 3)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
