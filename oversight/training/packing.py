"""Tokenization with answer-only labels, and packing that never attends across examples.

An SFT row becomes ``input_ids`` (the model's chat template applied to the whole conversation)
and ``labels`` that are ``-100`` everywhere except on the final assistant answer, so the loss
is on the answer tokens only.

Packing puts several examples into one row of at most ``max_length`` tokens (best-fit
decreasing). :class:`PackedCollator` concatenates the packed rows of a batch into a single
padding-free sequence whose ``position_ids`` restart at 0 at every example. No
``attention_mask`` is sent: transformers then derives a block-diagonal causal mask from the
position ids (sdpa / eager, ``masking_utils.find_packed_sequence_indices``) or runs the
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
    """Concatenate a batch of packed rows into one padding-free sequence of shape [1, T]."""

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        ids = [t for r in rows for t in r["input_ids"]]
        labels = [t for r in rows for t in r["labels"]]
        pos = [t for r in rows for t in r["position_ids"]]
        return {
            "input_ids": torch.tensor([ids], dtype=torch.long),
            "labels": torch.tensor([labels], dtype=torch.long),
            "position_ids": torch.tensor([pos], dtype=torch.long),
        }


def answer_tokens(rows: Iterable[dict[str, list[int]]]) -> int:
    """Tokens that carry a loss (the useful tokens of a throughput figure)."""
    return sum(sum(1 for t in r["labels"] if t != IGNORE) for r in rows)
