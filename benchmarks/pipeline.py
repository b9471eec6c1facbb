"""Throughput of the constitutional loop: sequential vs stage-batched vs the oversight runtime.

The same prompts, the same model and the same token limits, in one process. Every episode
drafts, critiques the draft against one principle (P("Yes") that it violates the principle, one
``score`` call) and revises it once - 2 ``generate`` calls and 1 ``score`` call:

(a) ``sequential``: one model call at a time per prompt, like LangChain's ConstitutionalChain;
(b) ``stage_batched``: a hand-written loop that runs each stage as one batch over all prompts;
(c) ``runtime``: the real :class:`oversight.runtime.Runtime` (bus, journal in a temp dir,
    decision core, ``--concurrency`` episodes at once) running a hierarchy built here in code:
    a base agent, one critic and a reviser, all on the same transformers backend object. The
    benchmark's critic (:class:`FlagDraftCritic`) scores the draft with the real critic code and
    always flags it, so every episode revises exactly once; it accepts the revision without
    scoring it again, as (a) and (b) do. The backend's counters give the model calls the
    runtime made per episode (``requests_per_episode``, expected 3);
(d) ``concurrent``: every prompt an episode task making the same three calls straight through
    the backend's batching queue, without the runtime: the batching alone.

All variants build their requests as the agents do (the critic's scoring conversation, the
reviser's prompt without few-shot examples, its stop strings), greedy, so (b), (c) and (d) should
produce identical revisions (``same_outputs_*``). Prints one JSON object; see docs/models.md.

    python benchmarks/pipeline.py --prompts 32 --tokens 48 --concurrency 32
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio

from oversight.agents import CriticAgent, EpisodeContext
from oversight.agents._base import critique_messages
from oversight.agents.reviser import REVISER_STOP, REVISER_SYSTEM, revision_prompt
from oversight.backends import ChoiceScores, GenerateRequest, Generation, ScoreRequest
from oversight.backends.transformers import TransformersBackend
from oversight.constitution import Constitution, load_constitution
from oversight.escalation.policy import load_policy
from oversight.hierarchy import HierarchySpec, parse_hierarchy
from oversight.journal import read_journal
from oversight.messages import Critique, Prompt, Turn
from oversight.paths import DATA_DIR
from oversight.runtime import Runtime, episode_id

PRINCIPLE_ID = "helpfulness"
"""The principle every variant critiques (it has no refusal template, so the runtime adds no
template fallback candidate after the last revision round)."""

"""The reviser's stop strings (oversight/agents/reviser.py)."""

_CONSTITUTION: Constitution | None = None


def constitution() -> Constitution:
    global _CONSTITUTION
    if _CONSTITUTION is None:
        _CONSTITUTION = load_constitution(DATA_DIR / "constitutions" / "default.yaml")
    return _CONSTITUTION


def load_prompts(n: int) -> list[str]:
    with (DATA_DIR / "prompts" / "default.jsonl").open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    texts = [r["prompt"] for r in rows if isinstance(r.get("prompt"), str)]
    return [texts[i % len(texts)] for i in range(n)]


# -- the three requests of an episode, built as the agents build them ----------------------------


def draft_request(prompt: str, tokens: int) -> GenerateRequest:
    """What :class:`~oversight.agents.BaseAgent` asks (greedy, seed 0)."""
    return GenerateRequest(
        ({"role": "user", "content": prompt},), max_new_tokens=tokens, temperature=0.0, seed=0
    )


def critique_request(prompt: str, draft: str) -> ScoreRequest:
    """What :class:`~oversight.agents.CriticAgent` asks for one principle."""
    spec = constitution().principle(PRINCIPLE_ID)
    return ScoreRequest(
        critique_messages(spec.critique_prompt, prompt, draft), choices=("Yes", "No")
    )


def revise_request(prompt: str, draft: str, tokens: int) -> GenerateRequest:
    """What :class:`~oversight.agents.ReviserAgent` asks (``few_shot: false``, ``best_of_n: 1``).

    The reviser never sees the critique (by design), so the score does not enter the request.
    """
    user = revision_prompt(prompt, prompt, draft, [constitution().principle(PRINCIPLE_ID)])
    return GenerateRequest(
        ({"role": "system", "content": REVISER_SYSTEM}, {"role": "user", "content": user}),
        max_new_tokens=tokens,
        temperature=0.0,
        stop=REVISER_STOP,
        seed=0,
    )


# -- (a), (b), (d) ---------------------------------------------------------------------------------


def sequential(backend: TransformersBackend, prompts: list[str], tokens: int) -> list[str]:
    out = []
    for p in prompts:
        (draft,) = backend.generate_sync([draft_request(p, tokens)])
        text = draft.text.strip()
        backend.score_sync([critique_request(p, text)])
        (rev,) = backend.generate_sync([revise_request(p, text, tokens)])
        out.append(rev.text.strip())
    return out


def stage_batched(
    backend: TransformersBackend,
    prompts: list[str],
    tokens: int,
    batch_s: list[float] | None = None,
) -> list[str]:
    """(b): each stage one batch over all prompts; ``batch_s`` gets each batch's seconds."""
    seconds = batch_s if batch_s is not None else []

    def timed_call(fn: Any, requests: list[Any]) -> Any:
        start = time.perf_counter()
        out = fn(requests)
        seconds.append(round(time.perf_counter() - start, 3))
        return out

    generated = timed_call(backend.generate_sync, [draft_request(p, tokens) for p in prompts])
    drafts = [d.text.strip() for d in generated]
    pairs = list(zip(prompts, drafts, strict=True))
    timed_call(backend.score_sync, [critique_request(p, d) for p, d in pairs])
    revisions = timed_call(backend.generate_sync, [revise_request(p, d, tokens) for p, d in pairs])
    return [r.text.strip() for r in revisions]


async def concurrent(
    backend: TransformersBackend, prompts: list[str], tokens: int, concurrency: int
) -> list[str]:
    out = [""] * len(prompts)
    limit = anyio.Semaphore(concurrency)

    async def episode(i: int, p: str) -> None:
        async with limit:
            draft: Generation = (await backend.generate([draft_request(p, tokens)]))[0]
            text = draft.text.strip()
            score: ChoiceScores = (await backend.score([critique_request(p, text)]))[0]
            del score
            rev = (await backend.generate([revise_request(p, text, tokens)]))[0]
            out[i] = rev.text.strip()

    async with anyio.create_task_group() as tg:
        for i, p in enumerate(prompts):
            tg.start_soon(episode, i, p)
    return out


# -- (c) the runtime -------------------------------------------------------------------------------


class FlagDraftCritic(CriticAgent):
    """The real critic's scoring of the draft, whose verdict is then always "violated".

    The runtime revises only flagged candidates: flagging every draft makes every episode revise
    exactly once, as (a) and (b) do. The runtime assesses each revision too; this critic accepts
    it without a model call, because (a) and (b) do not score revisions either.
    """

    async def assess(
        self, ctx: EpisodeContext, candidate_id: str, principles: list[str] | None = None
    ) -> list[Critique]:
        ids = principles if principles is not None else self.principles
        specs = [ctx.constitution.principle(pid) for pid in ids]
        if candidate_id != "c0":
            return [
                Critique(
                    candidate_id=candidate_id,
                    principle_id=s.id,
                    principle_version=s.version,
                    verdict="satisfied",
                    confidence=1.0,
                    rationale="benchmark: revisions are accepted without scoring",
                )
                for s in specs
            ]
        critiques = await super().assess(ctx, candidate_id, ids)
        return [
            c.model_copy(
                update={"verdict": "violated", "severity": float(s.severity), "confidence": 1.0}
            )
            for c, s in zip(critiques, specs, strict=True)
        ]


def runtime_hierarchy(tokens: int, concurrency: int) -> HierarchySpec:
    """base + critic (one principle) + reviser on one model; people above for escalations."""
    data = {
        "name": "pipeline-benchmark",
        "description": "benchmarks/pipeline.py: draft, one critique, one revision per episode",
        "models": {"lm": {"backend": "transformers"}},
        "agents": [
            {"name": "base", "role": "base", "model": "lm"},
            {"name": "critic", "role": "critic", "model": "lm", "principles": [PRINCIPLE_ID]},
            {
                "name": "reviser",
                "role": "reviser",
                "model": "lm",
                "options": {"few_shot": False, "critiques": False},
            },
            {"name": "people", "role": "human"},
        ],
        "supervision": [
            {"supervisor": "critic", "subject": "base", "mode": "every"},
            {"supervisor": "people", "subject": "critic", "mode": "on-flag"},
        ],
        "settings": {
            "max_revision_rounds": 1,
            "best_of_n": 1,
            "max_new_tokens": tokens,
            "temperature": 0.0,
            "seed": 0,
            "concurrency": concurrency,
        },
    }
    policy = load_policy(DATA_DIR / "escalation" / "default.yaml")
    return parse_hierarchy(data).with_config(constitution(), policy)


def build_runtime(
    backend: TransformersBackend, tokens: int, concurrency: int, run_dir: str | Path
) -> Runtime:
    """The runtime of variant (c): every agent on ``backend``, no queue, journal in ``run_dir``."""
    runtime = Runtime(
        runtime_hierarchy(tokens, concurrency),
        run_name="pipeline",
        run_dir=run_dir,
        concurrency=concurrency,
        episode_timeout=24 * 3600.0,  # a CPU run of 32 episodes takes minutes
        backends={"lm": backend},
    )
    runtime.agents["critic"] = FlagDraftCritic(
        "critic", backend, {"principles": [PRINCIPLE_ID], "write": "rule"}
    )
    return runtime


def runtime_prompts(prompts: list[str]) -> list[Prompt]:
    return [
        Prompt(prompt_id=f"p{i}", messages=(Turn(role="user", content=p),))
        for i, p in enumerate(prompts)
    ]


def run_runtime(
    backend: TransformersBackend, prompts: list[str], tokens: int, concurrency: int
) -> dict[str, Any]:
    """Run variant (c) once in a fresh temp dir: wall time, outcomes, revisions, model calls."""
    stats = backend.stats
    before = (stats.busy_s, stats.batches, stats.items)
    first = len(stats.sizes)
    with tempfile.TemporaryDirectory(prefix="oversight-pipeline-") as tmp:
        start = time.perf_counter()
        runtime = build_runtime(backend, tokens, concurrency, tmp)
        result = anyio.run(runtime.run, runtime_prompts(prompts))
        wall = time.perf_counter() - start
        index = {episode_id("pipeline", f"p{i}"): i for i in range(len(prompts))}
        texts = [""] * len(prompts)
        for env in read_journal(Path(tmp) / "journal.jsonl").envelopes:
            if env.payload.kind == "revision" and env.episode in index:
                texts[index[env.episode]] = env.payload.text
    return {
        "wall": wall,
        "result": result,
        "texts": texts,
        "busy": stats.busy_s - before[0],
        "batches": stats.batches - before[1],
        "items": stats.items - before[2],
        "sizes": stats.sizes[first:],
        "batch_s": [round(x, 3) for x in stats.seconds[first:]],
    }


def random_360m(tokenizer_dir: str | None) -> tuple[Any, Any]:
    """A random-weight Llama shaped like SmolLM2-360M, with the default model's tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from oversight.training.tiny import smollm2_360m_config

    if tokenizer_dir is None:
        from oversight.backends.embedded import default_model_dir

        tokenizer_dir = str(default_model_dir())
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = smollm2_360m_config(tok)
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
    """Run ``fn`` in a worker thread, as the backend runs (c)'s and (d)'s batches.

    Measured here: the same forward pass ran up to 1.8x faster in a worker thread than on the
    main thread (OpenMP on a loaded 2-core machine), so every variant runs the model in one.
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
    parser.add_argument(
        "--dtype", default="machine", help="machine (bf16 only where native), bfloat16, float32"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="the batch window of --flush window"
    )
    parser.add_argument(
        "--flush",
        choices=("idle", "window"),
        default="idle",
        help="when the backend's batches run (oversight.backends._batching)",
    )
    parser.add_argument("--skip-sequential", action="store_true")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of every variant, in turn; the median counts"
    )
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
        flush=args.flush,
        num_threads=args.threads,
    )
    report = measure(backend, load_prompts(args.prompts), args)
    report["model"] = Path(args.model).name
    print(json.dumps(report))


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median wall time (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda r: r["wall"])
    return ordered[(len(ordered) - 1) // 2]


def measure(backend: TransformersBackend, prompts: list[str], args: Any) -> dict[str, Any]:
    """Run every variant on ``prompts``; the report (episodes/s, ratios, batching)."""
    n, tokens = len(prompts), args.tokens
    timed(backend.generate_sync, [draft_request(prompts[0], 4)])  # warm-up

    results: dict[str, Any] = {}
    # Every variant runs ``--repeats`` times, in turn (sequential first, then the batched ones in
    # a rotating order), and its median counts: the same rule for each, so load from other
    # processes and the position in the order shift them alike.
    n_a = min(args.sequential_limit or n, n)
    runs: dict[str, list[dict[str, Any]]] = {"a": [], "b": [], "c": [], "d": []}

    def run_b() -> None:
        batch_s: list[float] = []
        texts, t = timed(stage_batched, backend, prompts, tokens, batch_s)
        runs["b"].append({"wall": t, "texts": texts, "batch_s": batch_s, "sizes": [n, n, n]})

    def run_c() -> None:
        runs["c"].append(run_runtime(backend, prompts, tokens, args.concurrency))

    def run_d() -> None:
        before = (backend.stats.busy_s, backend.stats.batches, backend.stats.items)
        first = len(backend.stats.sizes)
        start = time.perf_counter()
        texts = anyio.run(concurrent, backend, prompts, tokens, args.concurrency)
        runs["d"].append({
            "sizes": backend.stats.sizes[first:],
            "batch_s": [round(x, 3) for x in backend.stats.seconds[first:]],
            "wall": time.perf_counter() - start,
            "texts": texts,
            "busy": backend.stats.busy_s - before[0],
            "batches": backend.stats.batches - before[1],
            "items": backend.stats.items - before[2],
        })  # fmt: skip

    batched = [run_b, run_c, run_d]
    for rep in range(args.repeats):
        if not args.skip_sequential:
            _, t_seq = timed(sequential, backend, prompts[:n_a], tokens)
            runs["a"].append({"wall": t_seq * n / n_a, "measured": t_seq})
        # The batched variants take turns at going first (b c d, c d b, d b c, ...): on the
        # test machine the same batches ran up to 30% slower in some positions of the order.
        for run in batched[rep % 3 :] + batched[: rep % 3]:
            run()
    med = {k: _median_run(v) for k, v in runs.items() if v}
    walls = {k: [round(r["wall"], 3) for r in v] for k, v in runs.items() if v}
    # Every run's batches (sizes and seconds inside the model call), to compare like with like.
    batches = {
        k: [{"sizes": r["sizes"], "seconds": r["batch_s"]} for r in v]
        for k, v in runs.items()
        if k != "a" and v
    }
    if "a" in med:
        t_a = med["a"]["wall"]
        results["sequential"] = {
            "wall_s": med["a"]["measured"], "prompts": n_a,
            "episodes_per_s": n_a / med["a"]["measured"], "runs_s_scaled_to_all": walls["a"],
        }  # fmt: skip
    t_b, t_c, t_d = med["b"]["wall"], med["c"]["wall"], med["d"]["wall"]
    best_c, best_d, texts_b = med["c"], med["d"], med["b"]["texts"]
    results["stage_batched"] = {"wall_s": t_b, "episodes_per_s": n / t_b, "runs_s": walls["b"]}
    counts = best_c["result"].counts()
    results["runtime"] = {
        "wall_s": t_c,
        "episodes_per_s": n / t_c,
        "runs_s": walls["c"],
        "episodes": {k: counts[k] for k in ("episodes", "consensus", "escalated", "failed")},
        "revised": sum(o.rounds > 0 for o in best_c["result"].outcomes),
        "messages": counts["messages"],
        "batches": best_c["batches"],
        "requests_per_episode": round(best_c["items"] / n, 3),
        "mean_batch_size": round(best_c["items"] / max(best_c["batches"], 1), 2),
        "model_busy_s": best_c["busy"],
        "share_outside_model_calls": round(1 - best_c["busy"] / t_c, 4),
    }
    results["concurrent"] = {
        "wall_s": t_d,
        "episodes_per_s": n / t_d,
        "runs_s": walls["d"],
        "batches": best_d["batches"],
        "requests_per_episode": round(best_d["items"] / n, 3),
        "mean_batch_size": round(best_d["items"] / max(best_d["batches"], 1), 2),
        "share_outside_model_calls": round(1 - best_d["busy"] / t_d, 4),
    }
    if backend.continuous_batching:
        results["raw_continuous_batching"] = raw_continuous_batching(backend, prompts, tokens)
    for r in results.values():
        for key in ("wall_s", "model_busy_s"):
            if key in r:
                r[key] = round(r[key], 3)
        if "episodes_per_s" in r:
            r["episodes_per_s"] = round(r["episodes_per_s"], 4)
    report: dict[str, Any] = {
        "benchmark": "pipeline",
        "model": getattr(backend, "model_id", ""),
        "dtype": backend.dtype_choice.dtype,
        "dtype_reason": backend.dtype_choice.reason,
        "device": args.device,
        "machine": platform.machine(),
        "prompts": n,
        "max_new_tokens": tokens,
        "concurrency": args.concurrency,
        "max_wait_ms": args.max_wait_ms,
        "flush": backend._queue.flush,
        "threads": args.threads,
        "repeats": args.repeats,
        "principle": PRINCIPLE_ID,
        "calls_per_episode": {"generate": 2, "score": 1},
        "timing": "every variant run --repeats times in turn (the batched ones in a rotating "
        "order); the median run counts",
        "runtime_is": "oversight.runtime.Runtime: base, critic (always flags the draft), reviser "
        "on one transformers backend; bus, journal (temp dir), decision core",
        "concurrent_is": "episode tasks through the batching backend, without the runtime",
        **results,
        "ratio_runtime_vs_stage_batched": round(t_b / t_c, 3),
        "ratio_concurrent_vs_stage_batched": round(t_b / t_d, 3),
        "batches_per_run": {
            {"b": "stage_batched", "c": "runtime", "d": "concurrent"}[k]: v
            for k, v in batches.items()
        },
        "same_outputs_b_runtime": all(r["texts"] == texts_b for r in runs["c"]),
        "same_outputs_b_concurrent": all(r["texts"] == texts_b for r in runs["d"]),
    }
    if "sequential" in results:
        report["ratio_stage_batched_vs_sequential"] = round(t_a / t_b, 3)
        report["ratio_runtime_vs_sequential"] = round(t_a / t_c, 3)
        report["ratio_concurrent_vs_sequential"] = round(t_a / t_d, 3)
    return report


if __name__ == "__main__":
    main()
