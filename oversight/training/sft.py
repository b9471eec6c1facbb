"""Supervised fine-tuning on consensus answers: a thin layer over TRL's ``SFTTrainer``.

The rows come from run exports (:mod:`oversight.training.data`), are tokenized with the model's
chat template with the loss on the answer tokens only, and packed without cross-example
attention (:mod:`oversight.training.packing`). TRL runs the loop, checkpoints and logging;
``output_dir/final`` is a plain model directory the transformers backend loads directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from .config import SFTSettings
from .packing import answer_tokens, collator_for, pack, packed_rows, tokenize_conversation


def sft_dataset(rows: Sequence[dict[str, Any]], tokenizer: Any, settings: SFTSettings) -> Any:
    """A ``datasets.Dataset`` of packed rows (or one example per row when packing is off)."""
    from datasets import Dataset

    examples = [tokenize_conversation(tokenizer, r["messages"], settings.max_length) for r in rows]
    kept = [e for e in examples if e is not None]
    groups = pack(kept, settings.max_length) if settings.packing else [[e] for e in kept]
    return Dataset.from_list(packed_rows(groups))


def sft_trainer(
    model: Any,
    tokenizer: Any,
    args: Any,
    train_dataset: Any,
    settings: SFTSettings,
    *,
    eval_dataset: Any = None,
    data_collator: Any = None,
    callbacks: Sequence[Any] | None = None,
) -> Any:
    """TRL's ``SFTTrainer`` as ``oversight train sft`` runs it: the packed collator, and on a CPU
    the log-probability head of :mod:`oversight.training.cpu_head` (unless
    ``settings.cpu_logprob_head`` is off)."""
    from trl import SFTTrainer

    from . import _common, cpu_head

    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=data_collator or collator_for(model, tokenizer.pad_token_id),
        peft_config=_common.peft_config(settings),
        callbacks=list(callbacks) if callbacks else None,
    )
    if settings.cpu_logprob_head:
        cpu_head.install_on(trainer, "sft")
    return trainer


def train_sft(
    run_dirs: Sequence[str | Path],
    settings: SFTSettings,
    *,
    is_refusal: Callable[[str], bool] | None = None,
    model: Any = None,
    tokenizer: Any = None,
    embeddings: bool = True,
) -> Any:
    """Train on the runs' SFT rows; return a :class:`~oversight.training._common.TrainResult`.

    ``model`` / ``tokenizer`` may be given as objects (tests pass a tiny model); otherwise
    ``settings.model`` (or the embedded default) is loaded.
    """
    from . import _common

    _common.require_training_extras()
    from .eval import default_refusal_detector

    detector = is_refusal or default_refusal_detector()
    _, split, _, card = _common.prepare_data(run_dirs, settings, detector, embeddings=embeddings)
    if not split.train:
        raise InputError(
            f"no SFT rows to train on in {', '.join(map(str, run_dirs))}; check that the runs "
            "reached consensus or that escalated cases were decided (`oversight export`)"
        )
    model, tokenizer = _common.load_model_and_tokenizer(
        settings.model, model, tokenizer, settings.attn_implementation
    )
    model.config.use_cache = False  # a KV cache would disable the packed attention mask
    train = sft_dataset(split.train, tokenizer, settings)
    evaluation = sft_dataset(split.eval, tokenizer, settings) if split.eval else None
    if evaluation is not None and len(evaluation) == 0:
        evaluation = None
    dtype = _common.training_dtype(settings)
    args = settings.to_trl(device_bf16=dtype.bf16)
    if evaluation is None:
        args.eval_strategy = "no"
    trainer = sft_trainer(model, tokenizer, args, train, settings, eval_dataset=evaluation)
    trainer.train()
    final = _common.save_final(trainer, tokenizer, settings)
    metrics = _common.write_metrics(
        trainer, settings, {"answer_tokens_per_epoch": answer_tokens(train)}, dtype
    )
    return _common.TrainResult(
        model_dir=final,
        train_rows=len(split.train),
        eval_rows=len(split.eval),
        metrics=metrics,
        card=card,
        dtype=dtype.as_dict(),
    )
