"""SFT and DPO training throughput on packed, boundary-respecting sequences; prints one JSON.

A random-weight SmolLM2-360M-shaped Llama (or ``--tiny``: a 2-layer toy for a CPU smoke run)
trains on synthetic consensus-format conversations with SFT-like lengths. SFT uses the same
tokenization, best-fit packing and padding-free collator as ``oversight train sft``
(:mod:`oversight.training.packing`): position ids restart per example and transformers derives
the block-diagonal mask from them (sdpa: a dense boolean mask; flex_attention: a sparse block
mask that also skips the blocks between examples; flash-attention varlen when installed), so no
example attends to another. DPO packs each pair's chosen and rejected sequences the same way,
sums per-segment log-probabilities for the policy and a frozen reference, and applies the
sigmoid DPO loss.

Variants (one per process; ``benchmarks/gpu_visit.sh`` runs the set measured on the H100/H200):

- ``--attn sdpa|flex_attention|flash_attention_2|eager``: the attention kernel;
- ``--compile``: ``torch.compile`` the decoder (rows are padded to one fixed length so one
  graph serves every step; the padding is a separate segment with no loss);
- ``--loss liger``: Liger's fused linear cross-entropy (never materialises the [tokens x vocab]
  logits) instead of transformers' loss over full logits;
- ``--trainer trl``: the path ``oversight train sft`` takes (TRL ``SFTTrainer`` with our packed
  dataset, collator and :class:`~oversight.training.config.SFTSettings`), timed per step by a
  callback.

Figures: useful tokens/s (tokens with a loss for SFT; all real tokens for DPO), MFU
(6 * params * tokens/s for SFT, 8 * params for DPO's policy step plus reference forward, over
``--peak-tflops``; attention FLOPs not counted), peak memory.

    python benchmarks/train_gpu.py --device cuda --attn flex_attention --compile --loss liger
    python benchmarks/train_gpu.py --device cpu --tiny --steps 3
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import tempfile
import time
from typing import Any

import torch
import torch.nn.functional as F

from oversight.training.packing import (
    IGNORE,
    PackedCollator,
    collator_for,
    pack,
    packed_rows,
    tokenize_conversation,
)

_TEXT = (
    "the model should answer clearly and safely with steps examples and reasons because people "
    "ask about science history code cooking travel health money law and many other topics"
)
WORDS = _TEXT.split()


def conversations(n: int, rng: random.Random) -> list[list[dict[str, str]]]:
    """Synthetic SFT-like conversations: 8-60 word prompts, 20-300 word answers."""

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))

    return [
        [{"role": "user", "content": text(8, 60)}, {"role": "assistant", "content": text(20, 300)}]
        for _ in range(n)
    ]


def build(args: argparse.Namespace) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from oversight.training.tiny import smollm2_360m_config, tiny_tokenizer

    if args.tiny:
        tok = tiny_tokenizer()
        config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=8192, tie_word_embeddings=True,
                             rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
                             use_cache=False)  # fmt: skip
    else:
        if args.tokenizer:
            tok = AutoTokenizer.from_pretrained(args.tokenizer)
        else:
            from oversight.backends.embedded import default_model_dir

            tok = AutoTokenizer.from_pretrained(default_model_dir())
        config = smollm2_360m_config(tok, use_cache=False)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=args.attn, dtype=dtype)
    return model.to(args.device), tok


def packed_sft_rows(tok: Any, args: argparse.Namespace) -> list[dict[str, list[int]]]:
    """Synthetic conversations, tokenized and packed as ``oversight train sft`` does."""
    convs = conversations(args.rows, random.Random(0))
    examples = [tokenize_conversation(tok, c, args.seq_len) for c in convs]
    return packed_rows(pack([e for e in examples if e is not None], args.seq_len))


def collate_fixed(rows: list[dict[str, list[int]]], args: argparse.Namespace, pad_id: int) -> dict:
    """The library's collator (``--layout``), then padded to one fixed shape (one compiled graph,
    the same work per step for every variant). The padding is one more segment without loss;
    ``real_mask`` marks the real tokens."""
    batch = PackedCollator(args.layout, pad_id)(rows)
    b, width = batch["input_ids"].shape
    sizes = [len(r["input_ids"]) for r in rows]
    if args.layout == "rows":
        length, lengths = args.seq_len, torch.tensor(sizes)
    else:
        length, lengths = args.seq_len * args.rows_per_step, torch.tensor([sum(sizes)])
    extra = length - width
    out = {
        "input_ids": torch.cat([batch["input_ids"], torch.full((b, extra), pad_id)], 1),
        "labels": torch.cat([batch["labels"], torch.full((b, extra), IGNORE)], 1),
        "position_ids": torch.cat([batch["position_ids"], torch.arange(extra).repeat(b, 1)], 1),
    }
    out["real_mask"] = torch.arange(length)[None] < lengths[:, None]
    return out


def sft_batches(tok: Any, args: argparse.Namespace) -> list[dict]:
    rows, step = packed_sft_rows(tok, args), args.rows_per_step
    pad = tok.pad_token_id or 0
    return [collate_fixed(rows[i : i + step], args, pad) for i in range(0, len(rows), step)]


def seg_logps(
    logits: torch.Tensor, labels: torch.Tensor, seg: torch.Tensor, n: int
) -> torch.Tensor:
    """Summed log-probabilities per segment; ``seg`` gives each token's segment ([B, L])."""
    lp = -F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(),
        labels[:, 1:].flatten(),
        ignore_index=IGNORE,
        reduction="none",
    )
    return torch.zeros(n, device=lp.device).index_add(0, seg[:, 1:].flatten(), lp)


def dpo_batches(tok: Any, args: argparse.Namespace, rng: random.Random) -> list[dict]:
    convs = conversations(args.rows, rng)
    out, pairs = [], []
    for c in convs:
        rejected = [
            c[0],
            {"role": "assistant", "content": " ".join(reversed(c[1]["content"].split()))},
        ]
        a, b = (tokenize_conversation(tok, x, args.seq_len // 2) for x in (c, rejected))
        if a and b:
            pairs.append((a, b))
    # Pairs fill rows of seq_len (chosen and rejected side by side), rows_per_step rows a step.
    rows: list[list[Any]] = [[]]
    used = 0
    for a, b in pairs:
        n = len(a.input_ids) + len(b.input_ids)
        if used + n > args.seq_len:
            rows.append([])
            used = 0
        rows[-1] += [a, b]
        used += n
    step, pad = args.rows_per_step, tok.pad_token_id or 0
    for i in range(0, len(rows) - step + 1, step):
        chunk = rows[i : i + step]
        n = sum(len(r) for r in chunk)
        batch = collate_fixed(packed_rows(chunk), args, pad)
        real = batch["real_mask"]
        starts = ((batch["position_ids"] == 0) & real).flatten().long()
        seg = (starts.cumsum(0) - 1).view_as(real)
        batch["seg"] = torch.where(real, seg, n)  # padding: a discarded slot
        batch["n"] = n
        batch["real"] = int(real.sum())
        out.append(batch)
    return out


class Loss:
    """Mean next-token loss over the labelled tokens: transformers' or Liger's fused one."""

    def __init__(self, model: Any, kind: str, compile_decoder: bool) -> None:
        self.model = model
        self.kind = kind
        self.decoder = torch.compile(model.model) if compile_decoder else model.model
        self.head = torch.compile(self._hf_head) if compile_decoder else self._hf_head
        if kind == "liger":
            from liger_kernel.transformers.fused_linear_cross_entropy import (
                LigerFusedLinearCrossEntropyLoss,
            )

            self.lce = LigerFusedLinearCrossEntropyLoss(ignore_index=IGNORE)

    def _hf_head(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.model.lm_head(hidden[:, :-1]).float()
        return F.cross_entropy(logits.flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE)

    def hidden(self, batch: dict[str, Any]) -> torch.Tensor:
        out = self.decoder(input_ids=batch["input_ids"], position_ids=batch["position_ids"])
        return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]

    def __call__(self, batch: dict[str, Any]) -> torch.Tensor:
        hidden = self.hidden(batch)
        if self.kind == "liger":
            h = hidden[:, :-1].flatten(0, 1)
            return self.lce(self.model.lm_head.weight, h, batch["labels"][:, 1:].flatten())
        return self.head(hidden, batch["labels"])


def log(message: str) -> None:
    """Progress on stderr (a variant stopped by its time limit still shows how far it got)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sync(dev: str) -> None:
    if dev.startswith("cuda"):
        torch.cuda.synchronize()


def loop(kind: str, model: Any, tok: Any, args: argparse.Namespace) -> dict[str, Any]:
    dev = args.device
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=dev.startswith("cuda"))
    ref = None
    loss_fn = Loss(model, args.loss, args.compile)
    if kind == "sft":
        batches = sft_batches(tok, args)
    else:
        batches = dpo_batches(tok, args, random.Random(0))
        ref = copy.deepcopy(model).eval().requires_grad_(False)
        ref_decoder = torch.compile(ref.model) if args.compile else ref.model
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    useful = total_time = 0.0
    first_step_s = 0.0
    for step in range(args.warmup + args.steps):
        batch = {
            k: (v.to(dev, non_blocking=True) if torch.is_tensor(v) else v)
            for k, v in batches[step % len(batches)].items()
        }
        sync(dev)
        t = time.perf_counter()
        if kind == "sft":
            loss = loss_fn(batch)
            tokens = int((batch["labels"][:, 1:] != IGNORE).sum())
        else:
            seg, n = batch["seg"], batch["n"]
            hidden = loss_fn.hidden(batch)
            pol = seg_logps(model.lm_head(hidden), batch["labels"], seg, n + 1)[:n]
            with torch.no_grad():
                inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"]}
                ref_hidden = ref_decoder(**inputs)[0]
                refl = seg_logps(ref.lm_head(ref_hidden), batch["labels"], seg, n + 1)[:n]
            margin = (pol[0::2] - refl[0::2]) - (pol[1::2] - refl[1::2])
            loss = -F.logsigmoid(0.1 * margin).mean()
            tokens = batch["real"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(dev)
        if step == 0:
            first_step_s = time.perf_counter() - t
            log(f"{args.label}: {kind} first step {first_step_s:.1f}s")
        if step >= args.warmup:
            total_time += time.perf_counter() - t
            useful += tokens
    return finish(kind, model, useful, total_time, args) | {
        "first_step_s": round(first_step_s, 2),
        "final_loss": round(float(loss.detach()), 4),
    }


def trl_sft(model: Any, tok: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The ``oversight train sft`` path: TRL SFTTrainer, our packed rows and collator."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTTrainer

    from oversight.training.config import SFTSettings

    rows = packed_sft_rows(tok, args)
    collate = collator_for(model, tok.pad_token_id)
    counts: list[int] = []

    def counting(batch_rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        batch = collate(batch_rows)
        counts.append(int((batch["labels"][:, 1:] != IGNORE).sum()))
        return batch

    times: list[float] = []

    class Timer(TrainerCallback):  # type: ignore[misc]
        start = 0.0

        def on_step_begin(self, *a: Any, **k: Any) -> None:
            sync(args.device)
            self.start = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            sync(args.device)
            times.append(time.perf_counter() - self.start)

    overrides: dict[str, Any] = {"torch_compile": args.compile}
    if args.loss == "liger":
        overrides["use_liger_kernel"] = True
    settings = SFTSettings(
        output_dir=tempfile.mkdtemp(prefix="trl-bench-"), max_steps=args.warmup + args.steps,
        batch_size=args.rows_per_step, max_length=args.seq_len, learning_rate=1e-5,
        eval_fraction=0.0, save_steps=10**9, logging_steps=10**9, seed=0,
        bf16=args.device.startswith("cuda"), trl_overrides=overrides,
    )  # fmt: skip
    config = settings.to_trl(device_bf16=settings.bf16 or False)
    config.eval_strategy = "no"
    config.use_cpu = not args.device.startswith("cuda")
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        data_collator=counting,
        callbacks=[Timer()],
    )
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    # The dataloader collates one batch ahead of the step that uses it, so align from the end.
    timed = times[args.warmup :]
    useful = sum(counts[args.warmup : args.warmup + len(timed)])
    return finish("sft", model, useful, sum(timed), args) | {"first_step_s": round(times[0], 2)}


def finish(
    kind: str, model: Any, useful: float, seconds: float, args: argparse.Namespace
) -> dict[str, Any]:
    params = sum(p.numel() for p in model.parameters())
    tps = useful / seconds if seconds else 0.0
    flops_per_token = 6 * params if kind == "sft" else 8 * params
    return {
        "useful_tokens_per_s": round(tps, 1),
        "mfu": round(flops_per_token * tps / (args.peak_tflops * 1e12), 4),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if args.device.startswith("cuda")
        else None,
        "steps": args.steps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description="SFT/DPO training throughput (JSON).")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="2-layer toy model and byte tokenizer")
    ap.add_argument("--tokenizer", default=None, help="tokenizer dir (default: the embedded one)")
    ap.add_argument("--kind", choices=["sft", "dpo", "both"], default="both")
    ap.add_argument("--attn", default="sdpa",
                    choices=["sdpa", "flex_attention", "flash_attention_2", "eager"])  # fmt: skip
    ap.add_argument("--layout", choices=["rows", "concat"], default="rows",
                    help="rows: [B, seq_len]; concat: [1, B * seq_len] (flash varlen)")  # fmt: skip
    ap.add_argument("--compile", action="store_true", help="torch.compile the decoder")
    ap.add_argument("--loss", choices=["hf", "liger"], default="hf")
    ap.add_argument("--trainer", choices=["loop", "trl"], default="loop")
    ap.add_argument("--seq-len", type=int, default=4096, help="tokens per packed row")
    ap.add_argument("--rows-per-step", type=int, default=4, help="packed rows per step")
    ap.add_argument("--rows", type=int, default=2000, help="synthetic conversations")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 SXM)")
    ap.add_argument("--label", default=None, help="a name for this variant in the JSON")
    args = ap.parse_args()
    model, tok = build(args)
    log(f"{args.label}: model built ({args.attn}, compile={args.compile}, loss={args.loss})")
    out: dict[str, Any] = {
        "label": args.label,
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "model": "tiny" if args.tiny else "smollm2-360m-shaped (random weights)",
        "params": sum(p.numel() for p in model.parameters()),
        "attention": args.attn,
        "compile": args.compile,
        "loss": args.loss,
        "trainer": args.trainer,
        "layout": args.layout,
        "seq_len": args.seq_len,
        "rows_per_step": args.rows_per_step,
    }
    if args.trainer == "trl":
        out["sft"] = trl_sft(model, tok, args)
    else:
        for kind in ("sft", "dpo") if args.kind == "both" else (args.kind,):
            log(f"{args.label}: {kind} starts")
            out[kind] = loop(kind, model, tok, args)
            log(f"{args.label}: {kind} {json.dumps(out[kind])}")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
