"""Packing: answer-only labels, best-fit bins, and no attention across example boundaries."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from oversight.errors import InputError
from oversight.training.packing import (
    IGNORE,
    Example,
    PackedCollator,
    collator_for,
    pack,
    packed_rows,
    tokenize_conversation,
)
from oversight.training.tiny import tiny_llama, tiny_tokenizer


def _conv(q: str, a: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


def _loss_sum(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits
    return F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(),
        batch["labels"][:, 1:].flatten(),
        ignore_index=IGNORE,
        reduction="sum",
    )


def test_labels_cover_only_the_answer() -> None:
    tok = tiny_tokenizer()
    ex = tokenize_conversation(tok, _conv("What is 2+2?", "Four."), max_length=200)
    assert ex is not None
    target = [t for t in ex.labels if t != IGNORE]
    assert tok.decode(target) == "Four.<|im_end|>\n"
    assert len(ex.labels) == len(ex.input_ids)


def test_truncation_that_removes_the_answer_drops_the_example() -> None:
    tok = tiny_tokenizer()
    assert tokenize_conversation(tok, _conv("x" * 100, "yes"), max_length=20) is None


def test_missing_chat_template_is_a_clear_error() -> None:
    tok = tiny_tokenizer()
    tok.chat_template = None
    with pytest.raises(InputError, match="chat template"):
        tokenize_conversation(tok, _conv("a", "b"), max_length=50)


def test_best_fit_respects_capacity_and_keeps_every_example() -> None:
    examples = [Example([1] * n, [1] * n) for n in (7, 5, 4, 3, 3, 2, 1)]
    groups = pack(examples, max_length=8)
    assert all(sum(len(e.input_ids) for e in g) <= 8 for g in groups)
    assert sorted(len(e.input_ids) for g in groups for e in g) == [1, 2, 3, 3, 4, 5, 7]
    assert len(groups) == 4  # 25 tokens need at least ceil(25 / 8) = 4 rows
    with pytest.raises(InputError, match="exceeds max_length"):
        pack([Example([1] * 9, [1] * 9)], max_length=8)


@pytest.mark.parametrize("layout", ["rows", "concat"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_loss_equals_sum_of_example_losses(attn: str, layout: str) -> None:
    tok = tiny_tokenizer()
    model = tiny_llama(len(tok), attn_implementation=attn).eval()
    convs = [
        _conv("Name a colour.", "Blue is a colour."),
        _conv("How do I pick a lock?", "I can't help with that."),
        _conv("Say hi", "Hi there, how can I help today?"),
    ]
    examples = [tokenize_conversation(tok, c, max_length=256) for c in convs]
    assert all(e is not None for e in examples)
    exs = [e for e in examples if e is not None]
    collate = PackedCollator(layout, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        separate = sum(_loss_sum(model, collate(packed_rows([[e]]))) for e in exs)
        packed = _loss_sum(model, collate(packed_rows([exs])))
        # Two packed rows in one batch (stacked and padded, or concatenated): no crossing.
        split = _loss_sum(model, collate(packed_rows([exs[:2], exs[2:]])))
    assert torch.allclose(packed, separate, rtol=1e-5, atol=1e-5)
    assert torch.allclose(split, separate, rtol=1e-5, atol=1e-5)

    # Control: without restarting positions, the examples would see each other.
    crossing = PackedCollator("concat")(packed_rows([exs]))
    crossing["position_ids"] = torch.arange(crossing["input_ids"].shape[1])[None]
    with torch.no_grad():
        leaked = _loss_sum(model, crossing)
    assert not torch.allclose(leaked, separate, rtol=1e-4, atol=1e-4)


def test_model_loss_on_packed_batch_matches_token_mean() -> None:
    """The loss the trainer sees (model's own shift) is the mean over answer tokens."""
    tok = tiny_tokenizer()
    model = tiny_llama(len(tok)).eval()
    exs = [tokenize_conversation(tok, _conv(q, a), 256) for q, a in [("a?", "b."), ("c?", "dd.")]]
    batch = PackedCollator("concat")(packed_rows([[e for e in exs if e is not None]]))
    with torch.no_grad():
        out = model(**batch, use_cache=False)
        total = _loss_sum(model, batch)
    n = int((batch["labels"][0, 1:] != IGNORE).sum())
    assert torch.allclose(out.loss * n, total, rtol=1e-5)


def test_rows_layout_pads_each_row_as_its_own_segment() -> None:
    rows = packed_rows([[Example([5, 6, 7], [IGNORE, 6, 7])], [Example([8, 9], [IGNORE, 9])]])
    batch = PackedCollator("rows", pad_token_id=0)(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7], [IGNORE, 9, IGNORE]]
    assert batch["position_ids"].tolist() == [[0, 1, 2], [0, 1, 0]]
    with pytest.raises(ValueError, match="layout"):
        PackedCollator("diagonal")


def test_collator_follows_the_attention_kernel() -> None:
    tok = tiny_tokenizer()
    assert collator_for(tiny_llama(len(tok), attn_implementation="sdpa"), 0).layout == "rows"
    flash = tiny_llama(len(tok))
    flash.config._attn_implementation = "flash_attention_2"
    assert collator_for(flash, 0).layout == "concat"
