"""SFT and DPO steps on the CPU: the library's path against a plain fp32 PyTorch loop; one JSON.

The **library's path** is what ``oversight train sft|dpo`` runs per step: the model loaded by
:func:`oversight.training._common.load_model_and_tokenizer` (fp32 weights), the precision from
:func:`oversight.training._common.training_dtype` (bf16 autocast only where the CPU has
AVX512-BF16 or AMX-BF16), TRL's ``SFTTrainer`` / ``DPOTrainer`` built by
:func:`oversight.training.sft.sft_trainer` / :func:`oversight.training.dpo.dpo_trainer` with the
settings' ``to_trl`` (on a CPU with the log-probability head of
:mod:`oversight.training.cpu_head`), the library's packed SFT dataset and collator, and DPO's
frozen reference copy, whose log-probabilities are computed every step (a no-grad forward of the
same batch; not precomputed). Only the data preparation from run folders (dataset card, refusal
detector) is left out: it runs once, not per step.

The **baseline** is a plain fp32 loop (fused ``torch.optim.AdamW``, ``loss.backward()``, no Trainer)
on a copy of the same starting weights and the same rows: for SFT the library's collated
batches, for DPO TRL's own collated pairs with the sigmoid DPO loss written out and the same
per-step reference forward. ``--plain-head full`` (default) takes the model's own logits of every
position; ``--plain-head scored`` applies the LM head to the labelled positions only, as the
library's CPU head does. When the library picks bf16, another variant runs the plain loop under
bf16 autocast, which separates what the precision buys from what the Trainer costs; with
``--trl-head`` (default) another runs the library with ``cpu_logprob_head: false`` (TRL's own
fused LM head), the path before the CPU head.

Variants alternate in ``--rounds`` rounds (the order flips every round; the machine may be
shared); each round runs ``--warmup`` untimed and ``--steps`` timed steps per variant, and a
variant's tokens/s is the median over rounds (tokens: every non-padding token a step processes),
per wall second and per CPU second of the process (``tokens_per_cpu_s``: on a loaded machine the
time slices other jobs take do not count). ``ratio`` is the library's tokens/s over the plain
fp32 loop's (goal: >= 0.9); ``ratio_cpu_time`` the same per CPU second. ``work`` in the JSON says
what each variant computes.

    python benchmarks/train_cpu.py                  # the embedded SmolLM2-135M (cached weights)
    python benchmarks/train_cpu.py --random-init    # the same shape, random weights
    python benchmarks/train_cpu.py --threads 1 --seq-len 128 --rows-per-step 2 --pairs-per-step 2 \
        --steps 2   # small enough for a busy shared 2-core CPU
    # an AVX2-class CPU's kernels on a newer CPU (oneDNN and ATen limited to AVX2):
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/train_cpu.py
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from oversight.devices import detect, pick_dtype
from oversight.training import _common, cpu_head
from oversight.training.config import DPOSettings, SFTSettings
from oversight.training.dpo import dpo_dataset, dpo_trainer
from oversight.training.packing import IGNORE, collator_for
from oversight.training.sft import sft_dataset, sft_trainer

_TEXT = (
    "the model should answer clearly and safely with steps examples and reasons because people "
    "ask about science history code cooking travel health money law and many other topics"
)
WORDS = _TEXT.split()
QUIET = {"save_strategy": "no", "disable_tqdm": True}
"""No checkpoint at the end of a round and no progress bar (neither is timed either way)."""


PLAIN_HEAD = {
    "full": "the model's own forward: logits of every position, then the loss on the labelled ones",
    "scored": "the LM head applied to the labelled positions' hidden states only",
}


def logprob_head(model: Any) -> str:
    """Which head computes the trainer's log-probabilities (oversight.training.cpu_head)."""
    if cpu_head.installed(model) is not None:
        return "oversight.training.cpu_head (labelled positions, one matmul)"
    return "TRL's fused LM head"


def unpatch(model: Any) -> Any:
    """``model`` with its class's own forward again. The trainers patch the instance: TRL with
    its fused LM head, the CPU head, and accelerate at ``train()`` with bf16 autocast (and
    fp32 outputs). A copy keeps those patches: before this, the plain "fp32" DPO loop, copied
    from the model after the SFT runs, ran under accelerate's bf16 autocast."""
    model.__dict__.pop("forward", None)
    model.__dict__.pop("_original_forward", None)
    return model


def pristine(model: Any) -> Any:
    """A copy of ``model``'s weights with none of the trainers' patches (:func:`unpatch`)."""
    return unpatch(copy.deepcopy(model))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def brief(choice: Any) -> dict[str, Any]:
    """The choice without the machine (recorded once, at the top)."""
    return {k: v for k, v in choice.as_dict().items() if k != "machine"}


def text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def load(args: argparse.Namespace) -> tuple[Any, Any]:
    """fp32 model and tokenizer, as the library loads them (or the same shape, random)."""
    if not args.random_init:
        return _common.load_model_and_tokenizer(None)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from oversight.backends import embedded
    from oversight.training.tiny import smollm2_135m_config

    target = embedded.cache_dir() / "models" / embedded.SMOLLM2_CACHE_NAME
    if embedded._is_built(target):
        tok = AutoTokenizer.from_pretrained(target)
    else:  # the tokenizer straight from the packaged GGUF; no model build needed
        gguf = embedded.default_gguf_path(verify=False)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    torch.manual_seed(0)
    config = smollm2_135m_config(tok, use_cache=False)
    model = AutoModelForCausalLM.from_config(
        config, attn_implementation="sdpa", dtype=torch.float32
    )
    return model, tok


# -- timing ---------------------------------------------------------------------------------------


Times = list[tuple[float, float]]
"""Per step: (wall seconds, CPU seconds of this process)."""


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clock()
    return wall - start[0], cpu - start[1]


def trainer_timer(times: Times) -> Any:
    from transformers import TrainerCallback

    class Timer(TrainerCallback):  # type: ignore[misc]
        start = (0.0, 0.0)

        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.start = clock()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            times.append(since(self.start))

    return Timer()


def rate(tokens: list[int], times: Times, warmup: int) -> tuple[float, float]:
    """Tokens per wall second and per CPU second over the timed steps (after ``warmup``)."""
    n = min(len(tokens), len(times))
    counted = sum(tokens[warmup:n])
    return (
        counted / sum(t[0] for t in times[warmup:n]),
        counted / sum(t[1] for t in times[warmup:n]),
    )


def adamw(model: Any, lr: float) -> torch.optim.Optimizer:
    """Fused AdamW, as the Trainer uses by default (torch >= 2.8): a for-loop AdamW would make
    the baseline slower than a careful hand loop."""
    return torch.optim.AdamW(model.parameters(), lr=lr, fused=True)


Step = Callable[[], tuple[int, tuple[float, float]]]
"""One plain step on the next batch: (its tokens, (wall, CPU) seconds)."""


def stepper(
    model: Any,
    batches: list[dict[str, Any]],
    tokens: list[int],
    loss_fn: Callable[[Any, dict[str, Any]], torch.Tensor],
    opt: torch.optim.Optimizer,
    autocast: bool,
) -> Step:
    """Plain steps through the batches in turn: forward, backward, AdamW step."""
    counter = itertools.count()

    def step() -> tuple[int, tuple[float, float]]:
        i = next(counter) % len(batches)
        model.train()
        t = clock()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = loss_fn(model, batches[i])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return tokens[i], since(t)

    return step


class Interleave:
    """``--interleave``: after each step of a library variant, one step of every plain variant
    (the order flips every step), so a shared machine's load falls on all variants alike rather
    than on whichever ran in a busy minute. A plain variant's round is the steps it took during
    that round's library runs (the first ``--warmup`` untimed)."""

    def __init__(self) -> None:
        self.steps: dict[str, Step] = {}
        self.done: dict[str, tuple[list[int], Times]] = {}

    def add(self, name: str, step: Step) -> Callable[[], tuple[list[int], Times]]:
        self.steps[name] = step
        self.done[name] = ([], [])
        return lambda: self.take(name)

    def take(self, name: str) -> tuple[list[int], Times]:
        out, self.done[name] = self.done[name], ([], [])
        return out

    def callbacks(self) -> list[Any]:
        if not self.steps:
            return []
        from transformers import TrainerCallback

        inter = self

        class Plain(TrainerCallback):  # type: ignore[misc]
            def on_step_end(self, args: Any, state: Any, *a: Any, **k: Any) -> None:
                names = list(inter.steps)
                for name in names if state.global_step % 2 else names[::-1]:
                    tokens, took = inter.steps[name]()
                    inter.done[name][0].append(tokens)
                    inter.done[name][1].append(took)

        return [Plain()]


def plain_variant(
    inter: Interleave, name: str, step: Step, args: argparse.Namespace
) -> Callable[[], tuple[list[int], Times]]:
    """A plain variant: interleaved with the library's steps, or its own run of steps."""
    if args.interleave:
        return inter.add(name, step)

    def alone() -> tuple[list[int], Times]:
        ran = [step() for _ in range(args.warmup + args.steps)]
        return [n for n, _ in ran], [t for _, t in ran]

    return alone


def variants_for(
    run_library: Callable[[Any], tuple[list[int], Times]],
    settings: Any,
    plain: Any,
    loop: tuple[list[dict[str, Any]], list[int], Callable[[Any, dict[str, Any]], torch.Tensor]],
    lr: float,
    inter: Interleave,
    args: argparse.Namespace,
    bf16: bool,
) -> dict[str, Callable[[], tuple[list[int], Times]]]:
    """The variants of one kind (SFT or DPO): the library, the plain fp32 loop over ``loop``'s
    (batches, tokens per batch, loss), and when asked the library with TRL's head and the plain
    loop under bf16 autocast (on a fresh copy of the plain model)."""
    batches, tokens, loss = loop
    plain_step = stepper(plain, batches, tokens, loss, adamw(plain, lr), False)
    variants = {
        "library": lambda: run_library(settings),
        "plain_fp32": plain_variant(inter, "plain_fp32", plain_step, args),
    }
    if args.trl_head:
        trl = dataclasses.replace(settings, cpu_logprob_head=False)
        variants["library_trl_head"] = lambda: run_library(trl)
    if bf16 and args.autocast_loop:
        same = pristine(plain)
        same_step = stepper(same, batches, tokens, loss, adamw(same, lr), True)
        variants["plain_bf16_autocast"] = plain_variant(
            inter, "plain_bf16_autocast", same_step, args
        )
    return variants


def run_rounds(
    variants: dict[str, Callable[[], tuple[list[int], Times]]], args: argparse.Namespace
) -> dict[str, Any]:
    """Run the variants alternately; per variant, tokens/s of each round and the median, per
    wall second (the goal's measure) and per CPU second of this process (what a loaded machine
    disturbs least: another job's time slices do not count)."""
    per_round: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        if args.interleave:  # the library runs first: the plain variants' steps run inside them
            order = sorted(order, key=lambda n: not n.startswith("library"))
        for name in order:
            tokens, times = variants[name]()
            per_round[name].append(rate(tokens, times, args.warmup))
            wall, cpu = per_round[name][-1]
            log(f"round {r + 1} {name}: {wall:.1f} tokens/s ({cpu:.1f} per CPU second)")
    out: dict[str, Any] = {
        name: {
            "tokens_per_s": round(statistics.median(w for w, _ in v), 1),
            "rounds": [round(w, 1) for w, _ in v],
            "tokens_per_cpu_s": round(statistics.median(c for _, c in v), 1),
            "rounds_cpu": [round(c, 1) for _, c in v],
        }
        for name, v in per_round.items()
    }
    base = out["plain_fp32"]
    out["ratio"] = round(out["library"]["tokens_per_s"] / base["tokens_per_s"], 3)
    out["ratio_cpu_time"] = round(out["library"]["tokens_per_cpu_s"] / base["tokens_per_cpu_s"], 3)
    if "library_trl_head" in out:
        trl = out["library_trl_head"]
        out["ratio_trl_head"] = round(trl["tokens_per_s"] / base["tokens_per_s"], 3)
        out["ratio_trl_head_cpu_time"] = round(
            trl["tokens_per_cpu_s"] / base["tokens_per_cpu_s"], 3
        )
    out["goal"] = 0.9
    out["goal_met"] = out["ratio"] >= 0.9
    return out


# -- SFT ------------------------------------------------------------------------------------------


def bench_sft(model: Any, tok: Any, args: argparse.Namespace) -> dict[str, Any]:
    steps = args.warmup + args.steps
    settings = SFTSettings(
        output_dir=tempfile.mkdtemp(prefix="train-cpu-sft-"), max_steps=steps,
        batch_size=args.rows_per_step, max_length=args.seq_len, learning_rate=1e-5,
        eval_fraction=0.0, logging_steps=10**9, seed=0, bf16=args.bf16, trl_overrides=QUIET,
    )  # fmt: skip
    choice = _common.training_dtype(settings)
    rng = random.Random(0)
    rows: list[dict[str, Any]] = []
    need = args.rows_per_step * steps
    dataset = sft_dataset([], tok, settings)
    while len(dataset) < need:  # packed rows of about seq_len tokens, exactly one epoch
        rows += [
            {
                "messages": [
                    {"role": "user", "content": text(rng, 8, 40)},
                    {"role": "assistant", "content": text(rng, 20, 120)},
                ]
            }
            for _ in range(need * 2)
        ]
        dataset = sft_dataset(rows, tok, settings)
    dataset = dataset.select(range(need))
    collate = collator_for(model, tok.pad_token_id)
    plain = pristine(model)
    lib_tokens: list[int] = []

    def counting(batch_rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        lib_tokens.append(sum(len(r["input_ids"]) for r in batch_rows))
        return collate(batch_rows)

    step = args.rows_per_step
    chunks = [dataset.select(range(i, i + step)) for i in range(0, need, step)]
    batches = [collate(list(c)) for c in chunks]
    plain_tokens = [sum(len(r["input_ids"]) for r in c) for c in chunks]
    inter = Interleave()

    def hf_loss(m: Any, batch: dict[str, Any]) -> torch.Tensor:
        if args.plain_head == "full":
            return m(**batch).loss
        labels = batch["labels"][:, 1:]
        mask = labels != IGNORE
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        hidden = m.model(**inputs).last_hidden_state[:, :-1]
        logits = m.lm_head(hidden[mask])
        return F.cross_entropy(logits.float(), labels[mask])

    head: dict[bool, str] = {}

    def run_library(use: SFTSettings) -> tuple[list[int], Times]:
        lib_tokens.clear()
        times: Times = []
        unpatch(model)
        trainer = sft_trainer(
            model, tok, use.to_trl(device_bf16=choice.bf16), dataset, use,
            data_collator=counting, callbacks=[trainer_timer(times), *inter.callbacks()],
        )  # fmt: skip
        head[use.cpu_logprob_head] = logprob_head(model)
        trainer.train()
        return list(lib_tokens), times

    loop = (batches, plain_tokens, hf_loss)
    variants = variants_for(run_library, settings, plain, loop, 1e-5, inter, args, choice.bf16)
    result = run_rounds(variants, args)
    shape = {"rows_per_step": step, "tokens_per_step": round(statistics.mean(plain_tokens))}
    work = {
        "library": "SFTTrainer via oversight.training.sft.sft_trainer; log-probabilities: "
        + head[True],
        "plain_fp32": "one forward + cross-entropy on the answer tokens, backward, fused AdamW; "
        + PLAIN_HEAD[args.plain_head],
    }
    if args.trl_head:
        work["library_trl_head"] = f"the library with cpu_logprob_head: false ({head[False]})"
    return {"dtype": brief(choice), **shape, "work": work, **result}


# -- DPO ------------------------------------------------------------------------------------------


def sequence_logps(model: Any, batch: dict[str, Any], head: str = "full") -> torch.Tensor:
    """Summed log-probabilities of the completion tokens of each sequence."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    labels = ids.masked_fill(batch["completion_mask"] == 0, IGNORE)[:, 1:]
    if head == "full":
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1]
        lp = -F.cross_entropy(
            logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE, reduction="none"
        )
        return lp.view(labels.shape).sum(1)
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    scored = labels != IGNORE
    lp = -F.cross_entropy(model.lm_head(hidden[scored]).float(), labels[scored], reduction="none")
    return torch.zeros(labels.shape, dtype=lp.dtype).masked_scatter(scored, lp).sum(1)


def bench_dpo(model: Any, tok: Any, args: argparse.Namespace) -> dict[str, Any]:
    steps = args.warmup + args.steps
    settings = DPOSettings(
        output_dir=tempfile.mkdtemp(prefix="train-cpu-dpo-"), max_steps=steps,
        batch_size=args.pairs_per_step, max_length=args.seq_len, learning_rate=1e-6,
        eval_fraction=0.0, logging_steps=10**9, seed=0, bf16=args.bf16, trl_overrides=QUIET,
    )  # fmt: skip
    choice = _common.training_dtype(settings)
    rng = random.Random(1)
    rows = []
    for _ in range(args.pairs_per_step * steps):
        answer = text(rng, 20, 60)
        rows.append({
            "prompt": [{"role": "user", "content": text(rng, 8, 40)}],
            "chosen": [{"role": "assistant", "content": answer}],
            "rejected": [{"role": "assistant", "content": " ".join(reversed(answer.split()))}],
        })  # fmt: skip
    dataset = dpo_dataset(rows)
    plain = pristine(model)
    reference = pristine(model).eval().requires_grad_(False)
    plain_reference = pristine(reference)  # TRL patches the library's reference's forward
    lib_tokens: list[int] = []
    beta = settings.beta
    head: dict[bool, str] = {}
    inter = Interleave()

    def make_trainer(times: Times, use: DPOSettings = settings) -> Any:
        unpatch(model)
        unpatch(reference)
        trainer = dpo_trainer(
            model, tok, use.to_trl(device_bf16=choice.bf16), dataset, use,
            ref_model=reference, callbacks=[trainer_timer(times), *inter.callbacks()],
        )  # fmt: skip
        head[use.cpu_logprob_head] = logprob_head(model)
        collate = trainer.data_collator

        def counting(examples: list[dict[str, Any]]) -> dict[str, Any]:
            batch = collate(examples)
            lib_tokens.append(int(batch["attention_mask"].sum()))
            return batch

        trainer.data_collator = counting
        return trainer

    # The plain loop gets TRL's own tokenized pairs, collated by TRL's collator.
    probe = make_trainer([])
    keys = ("prompt_ids", "chosen_ids", "rejected_ids")
    tokenized = [{k: probe.train_dataset[i][k] for k in keys} for i in range(len(dataset))]
    collate = probe.data_collator
    batches = [
        collate(tokenized[i : i + args.pairs_per_step])
        for i in range(0, len(tokenized), args.pairs_per_step)
    ]
    plain_tokens = [int(b["attention_mask"].sum()) for b in batches]
    del probe

    def dpo_loss(m: Any, batch: dict[str, Any]) -> torch.Tensor:
        logps = sequence_logps(m, batch, args.plain_head)
        with torch.no_grad():
            ref = sequence_logps(plain_reference, batch, args.plain_head)
        chosen, rejected = (logps - ref).chunk(2)
        return -F.logsigmoid(beta * (chosen - rejected)).mean()

    def run_library(use: DPOSettings) -> tuple[list[int], Times]:
        lib_tokens.clear()
        times: Times = []
        make_trainer(times, use).train()
        return list(lib_tokens), times

    loop = (batches, plain_tokens, dpo_loss)
    variants = variants_for(run_library, settings, plain, loop, 1e-6, inter, args, choice.bf16)
    result = run_rounds(variants, args)
    mean = round(statistics.mean(plain_tokens))
    shape = {"pairs_per_step": args.pairs_per_step, "tokens_per_step": mean}
    reference_work = (
        "the frozen reference's log-probabilities computed every step, a no-grad forward of the "
        "same batch (not precomputed)"
    )
    work = {
        "library": f"DPOTrainer via oversight.training.dpo.dpo_trainer, {reference_work}; "
        f"log-probabilities: {head[True]}",
        "plain_fp32": f"sigmoid DPO loss written out, {reference_work}; "
        + PLAIN_HEAD[args.plain_head],
    }
    if args.trl_head:
        work["library_trl_head"] = f"the library with cpu_logprob_head: false ({head[False]})"
    return {"dtype": brief(choice), **shape, "work": work, **result}


# -- main -----------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--random-init", action="store_true", help="SmolLM2-135M shape, random weights")
    ap.add_argument("--kinds", nargs="+", default=["sft", "dpo"], choices=["sft", "dpo"])
    ap.add_argument("--seq-len", type=int, default=256, help="packed row / pair length (tokens)")
    ap.add_argument("--rows-per-step", type=int, default=4, help="SFT packed rows per step")
    ap.add_argument("--pairs-per-step", type=int, default=4, help="DPO pairs per step")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per variant and round")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                    help="force the library's precision (default: the machine's)")  # fmt: skip
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's; 1 on a shared CPU)")  # fmt: skip
    ap.add_argument("--autocast-loop", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the plain loop under bf16 autocast, if chosen")  # fmt: skip
    ap.add_argument("--trl-head", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the library with cpu_logprob_head: false")  # fmt: skip
    ap.add_argument("--plain-head", choices=sorted(PLAIN_HEAD), default="full",
                    help="the plain loop's logits: every position (the model's forward) or only "
                    "the labelled ones")  # fmt: skip
    ap.add_argument("--interleave", action="store_true",
                    help="one step of each plain variant after every library step (loaded "
                    "machines)")  # fmt: skip
    ap.add_argument("--out", help="also write the JSON to this file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    t0 = time.time()
    load_start = os.getloadavg()
    capability = detect("cpu")
    report: dict[str, Any] = {
        "benchmark": "train_cpu",
        "command": "python benchmarks/train_cpu.py " + " ".join(sys.argv[1:]),
        "machine": capability.as_dict()
        | {
            "all_bf16_flags": sorted(f for f in capability.cpu_flags if "bf16" in f),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "env": {
                k: os.environ[k]
                for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "OVERSIGHT_DTYPE")
                if k in os.environ
            },
        },
        "chosen": brief(pick_dtype("cpu", capability, requested=args.bf16)),
        "model": "SmolLM2-135M shape, random init" if args.random_init else "SmolLM2-135M-Instruct",
        "seq_len": args.seq_len,
        "warmup": args.warmup,
        "steps": args.steps,
        "rounds": args.rounds,
        "plain_head": args.plain_head,
        "interleave": args.interleave,
        "loadavg_start": [round(x, 2) for x in load_start],
    }
    log(f"precision: {report['chosen']['dtype']} ({report['chosen']['reason']})")
    model, tok = load(args)
    model.config.use_cache = False
    for kind in args.kinds:
        log(f"{kind}: start")
        report[kind] = (bench_sft if kind == "sft" else bench_dpo)(model, tok, args)
        report["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        report["wall_s"] = round(time.time() - t0, 1)
        if args.out:  # after each kind: a run cut short still leaves what it measured
            with open(args.out, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
