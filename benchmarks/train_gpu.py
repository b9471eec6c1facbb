"""SFT and DPO training throughput on packed, boundary-respecting sequences; prints one JSON.

A random-weight SmolLM2-360M-shaped Llama (or ``--tiny``: a 2-layer toy for a CPU smoke run)
trains on synthetic consensus-format conversations with SFT-like lengths. SFT uses the same
tokenization, best-fit packing and padding-free collator as ``oversight train sft``
(:mod:`oversight.training.packing`): position ids restart per example, so flash-attention varlen
(when installed) or sdpa with a block-diagonal mask keeps examples apart. DPO packs each pair's
chosen and rejected sequences the same way, sums per-segment log-probabilities for the policy
and a frozen reference, and applies the sigmoid DPO loss.

Figures: useful tokens/s (tokens with a loss for SFT; all non-pad tokens for DPO, there is no
padding), MFU (6 * params * tokens/s over the device's dense bf16 peak, ``--peak-tflops``),
peak memory. Written for an H100 (``--device cuda``); not measured on a GPU in this task.

    python benchmarks/train_gpu.py --device cuda --steps 30
    python benchmarks/train_gpu.py --device cpu --tiny --steps 3
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

import torch
import torch.nn.functional as F

from oversight.training.packing import (
    IGNORE,
    PackedCollator,
    pack,
    packed_rows,
    tokenize_conversation,
)

WORDS = [
    "the",
    "model",
    "should",
    "answer",
    "clearly",
    "and",
    "safely",
    "with",
    "steps",
    "examples",
    "and",
    "reasons",
    "because",
    "people",
    "ask",
    "about",
    "science",
    "history",
    "code",
    "cooking",
    "travel",
    "health",
    "money",
    "law",
    "and",
    "many",
    "other",
    "topics",
]


def conversations(n: int, rng: random.Random) -> list[list[dict[str, str]]]:
    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))

    return [
        [{"role": "user", "content": text(8, 60)}, {"role": "assistant", "content": text(20, 300)}]
        for _ in range(n)
    ]


def build(args: argparse.Namespace) -> tuple[Any, Any]:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from oversight.training._common import attention_implementation
    from oversight.training.tiny import tiny_tokenizer

    if args.tiny:
        tok = tiny_tokenizer()
        shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    else:
        from oversight.backends.embedded import default_model_dir

        tok = AutoTokenizer.from_pretrained(default_model_dir())
        shape = dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
                     num_attention_heads=15, num_key_value_heads=5)  # fmt: skip
    attn = attention_implementation() if args.device.startswith("cuda") else "sdpa"
    config = LlamaConfig(vocab_size=len(tok), max_position_embeddings=8192, rope_theta=100000.0,
                         tie_word_embeddings=True, use_cache=False, **shape)  # fmt: skip
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    model = LlamaForCausalLM(config).to(device=args.device, dtype=dtype)
    model.config._attn_implementation = attn
    return model, tok


def sft_batches(tok: Any, args: argparse.Namespace, rng: random.Random) -> list[dict]:
    examples = [tokenize_conversation(tok, c, args.seq_len) for c in conversations(args.rows, rng)]
    rows = packed_rows(pack([e for e in examples if e is not None], args.seq_len))
    collate = PackedCollator()
    return [
        collate(rows[i : i + args.rows_per_step]) for i in range(0, len(rows), args.rows_per_step)
    ]


def seg_logps(
    logits: torch.Tensor, labels: torch.Tensor, seg: torch.Tensor, n: int
) -> torch.Tensor:
    lp = -F.cross_entropy(
        logits[0, :-1].float(), labels[0, 1:], ignore_index=IGNORE, reduction="none"
    )
    return torch.zeros(n, device=lp.device).index_add(0, seg[1:], lp)


def dpo_batches(tok: Any, args: argparse.Namespace, rng: random.Random) -> list[dict]:
    convs = conversations(args.rows, rng)
    out, collate = [], PackedCollator()
    pairs = []
    for c in convs:
        rejected = [
            c[0],
            {"role": "assistant", "content": " ".join(reversed(c[1]["content"].split()))},
        ]
        a, b = (tokenize_conversation(tok, x, args.seq_len // 2) for x in (c, rejected))
        if a and b:
            pairs.append((a, b))
    per_row = max(1, args.seq_len // max(len(a.input_ids) + len(b.input_ids) for a, b in pairs))
    step = per_row * args.rows_per_step
    for i in range(0, len(pairs), step):
        chunk = pairs[i : i + step]
        batch = collate(packed_rows([[x for pair in chunk for x in pair]]))
        starts = (batch["position_ids"][0] == 0).long()
        batch["seg"] = starts.cumsum(0) - 1
        batch["n"] = 2 * len(chunk)
        out.append(batch)
    return out


def run(kind: str, model: Any, tok: Any, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(0)
    dev = args.device
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=dev.startswith("cuda"))
    ref = None
    if kind == "sft":
        batches = sft_batches(tok, args, rng)
    else:
        batches = dpo_batches(tok, args, rng)
        import copy

        ref = copy.deepcopy(model).eval().requires_grad_(False)
    params = sum(p.numel() for p in model.parameters())
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    useful = total_time = 0.0
    for step in range(args.warmup + args.steps):
        batch = {
            k: (v.to(dev) if torch.is_tensor(v) else v)
            for k, v in batches[step % len(batches)].items()
        }
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"]}
        if kind == "sft":
            loss = model(**inputs, labels=batch["labels"]).loss
            tokens = int((batch["labels"][0, 1:] != IGNORE).sum())
        else:
            pol = seg_logps(model(**inputs).logits, batch["labels"], batch["seg"], batch["n"])
            with torch.no_grad():
                refl = seg_logps(ref(**inputs).logits, batch["labels"], batch["seg"], batch["n"])
            margin = (pol[0::2] - refl[0::2]) - (pol[1::2] - refl[1::2])
            loss = -F.logsigmoid(0.1 * margin).mean()
            tokens = batch["input_ids"].shape[1]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        if step >= args.warmup:
            total_time += time.perf_counter() - t
            useful += tokens
    tps = useful / total_time
    # DPO: forward+backward on the policy (6N) plus a reference forward (2N) per token.
    flops_per_token = 6 * params if kind == "sft" else 8 * params
    return {
        "useful_tokens_per_s": round(tps, 1),
        "mfu": round(flops_per_token * tps / (args.peak_tflops * 1e12), 4),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if dev.startswith("cuda")
        else None,
        "steps": args.steps,
        "final_loss": round(float(loss.detach()), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description="SFT/DPO training throughput (JSON).")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="2-layer toy model and byte tokenizer")
    ap.add_argument("--kind", choices=["sft", "dpo", "both"], default="both")
    ap.add_argument("--seq-len", type=int, default=4096, help="tokens per packed row")
    ap.add_argument("--rows-per-step", type=int, default=4, help="packed rows per step")
    ap.add_argument("--rows", type=int, default=2000, help="synthetic conversations")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 SXM)")
    args = ap.parse_args()
    model, tok = build(args)
    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "model": "tiny" if args.tiny else "smollm2-360m-shaped (random weights)",
        "attention": model.config._attn_implementation,
        "params": sum(p.numel() for p in model.parameters()),
        "seq_len": args.seq_len,
        "rows_per_step": args.rows_per_step,
    }
    for kind in ("sft", "dpo") if args.kind == "both" else (args.kind,):
        out[kind] = run(kind, model, tok, args)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
