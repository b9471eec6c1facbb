"""Tokenization with answer-only labels, and packing that never attends across examples.

An SFT row becomes ``input_ids`` (the model's chat template applied to the whole conversation)
and ``labels`` that are ``-100`` everywhere except on the final assistant answer, so the loss
is on the answer tokens only.

Packing puts several examples into one row of at most ``max_length`` tokens (best-fit
decreasing). :class:`PackedCollator` stacks the packed rows of a batch (or, for
flash-attention, concatenates them into one padding-free sequence); ``position_ids`` restart at 0
at every example. No ``attention_mask`` is sent: transformers then derives a block-diagonal
causal mask from the position ids (sdpa / eager / flex, ``masking_utils``) or runs the
flash-attention varlen kernel with one segment per example. The label of every example's first
token is ``-100``, so no token is ever predicted from the previous example.
``tests/test_training_packing.py`` proves it: a packed batch's summed loss equals the sum of the
examples' losses computed one by one.

The model must run with ``use_cache=False`` when trained this way (a KV cache disables the packed
mask); :func:`oversight.training.sft.train_sft` sets it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InputError

IGNORE = -100


@dataclass(frozen=True)
class Example:
    """One tokenized conversation."""

    input_ids: list[int]
    labels: list[int]
    """``input_ids`` on the answer tokens, ``-100`` elsewhere."""


def _apply_template(tokenizer: Any, messages: list[dict[str, Any]], generation: bool) -> str:
    if getattr(tokenizer, "chat_template", None) is None:
        raise InputError(
            "the tokenizer has no chat template; use an instruct model, or set one with "
            "`tokenizer.chat_template = ...` before training"
        )
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)
    return str(text)


def tokenize_conversation(
    tokenizer: Any, messages: list[dict[str, Any]], max_length: int
) -> Example | None:
    """Tokenize a conversation whose last turn is the assistant's answer.

    Returns None when truncation to ``max_length`` leaves no answer token to learn from.
    """
    prompt_text = _apply_template(tokenizer, messages[:-1], generation=True)
    full_text = _apply_template(tokenizer, messages, generation=False)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    common = 0
    for a, b in zip(prompt_ids, full_ids, strict=False):
        if a != b:
            break
        common += 1
    full_ids = list(full_ids[:max_length])
    labels = [IGNORE] * min(common, len(full_ids)) + full_ids[common:]
    if all(x == IGNORE for x in labels):
        return None
    return Example(input_ids=full_ids, labels=labels)


def pack(examples: Sequence[Example], max_length: int) -> list[list[Example]]:
    """Best-fit decreasing: groups of examples whose total length is at most ``max_length``."""
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i].input_ids))
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = len(examples[i].input_ids)
        if n > max_length:
            raise InputError(f"example of {n} tokens exceeds max_length={max_length}")
        best = -1
        for b, free in enumerate(room):
            if n <= free and (best < 0 or free < room[best]):
                best = b
        if best < 0:
            bins.append([i])
            room.append(max_length - n)
        else:
            bins[best].append(i)
            room[best] -= n
    return [[examples[i] for i in b] for b in bins]


def packed_rows(groups: Iterable[Sequence[Example]]) -> list[dict[str, list[int]]]:
    """One dataset row per group: concatenated ids and labels, positions restarting per example."""
    rows = []
    for group in groups:
        ids: list[int] = []
        labels: list[int] = []
        pos: list[int] = []
        for ex in group:
            ids += ex.input_ids
            labels += [IGNORE, *ex.labels[1:]]  # the first token is never a target
            pos += list(range(len(ex.input_ids)))
        rows.append({"input_ids": ids, "labels": labels, "position_ids": pos})
    return rows


class PackedCollator:
    """Collate packed rows into a batch without attention across examples.

    ``layout="rows"`` (the default): a ``[B, L]`` batch, each row padded to the longest; the
    padding is one more segment (positions restart) with no loss. Attention work then grows
    with the row length, which is what sdpa needs: it masks, it does not skip.
    ``layout="concat"``: every row concatenated into one ``[1, T]`` sequence, for
    flash-attention's varlen kernel, which skips the cross-example blocks itself. With sdpa the
    concatenation makes attention quadratic in the whole batch: on an H200, 4 concatenated
    4,096-token rows did not finish 23 steps in 60 s, while stacked 8 x 2,048 rows (with a fused
    loss) ran at 58,000 tokens/s (``benchmarks/train_gpu.py --layout``).
    """

    def __init__(self, layout: str = "rows", pad_token_id: int = 0) -> None:
        if layout not in ("rows", "concat"):
            raise ValueError(f"layout must be 'rows' or 'concat', not {layout!r}")
        self.layout = layout
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        if self.layout == "concat":
            ids = [t for r in rows for t in r["input_ids"]]
            labels = [t for r in rows for t in r["labels"]]
            pos = [t for r in rows for t in r["position_ids"]]
            return {
                "input_ids": torch.tensor([ids], dtype=torch.long),
                "labels": torch.tensor([labels], dtype=torch.long),
                "position_ids": torch.tensor([pos], dtype=torch.long),
            }
        width = max(len(r["input_ids"]) for r in rows)
        out = {
            "input_ids": torch.full((len(rows), width), self.pad_token_id, dtype=torch.long),
            "labels": torch.full((len(rows), width), IGNORE, dtype=torch.long),
            "position_ids": torch.arange(width).repeat(len(rows), 1),
        }
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            out["input_ids"][i, :n] = torch.tensor(r["input_ids"], dtype=torch.long)
            out["labels"][i, :n] = torch.tensor(r["labels"], dtype=torch.long)
            out["position_ids"][i, :n] = torch.tensor(r["position_ids"], dtype=torch.long)
            out["position_ids"][i, n:] = torch.arange(width - n)
        return out


def collator_for(model: Any, pad_token_id: int | None) -> PackedCollator:
    """The layout that suits the model's attention kernel (see :class:`PackedCollator`)."""
    attn = getattr(getattr(model, "config", None), "_attn_implementation", None)
    layout = "concat" if attn and "flash" in str(attn) else "rows"
    return PackedCollator(layout, pad_token_id or 0)


def answer_tokens(rows: Iterable[dict[str, list[int]]]) -> int:
    """Tokens that carry a loss (the useful tokens of a throughput figure)."""
    return sum(sum(1 for t in r["labels"] if t != IGNORE) for r in rows)
