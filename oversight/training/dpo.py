"""Preference optimisation on the runs' pairs: a thin layer over TRL's ``DPOTrainer``.

Each ``dpo.jsonl`` row is TRL's conversational preference format already (``prompt``,
``chosen``, ``rejected``); TRL applies the model's chat template. The reference model is a frozen
copy of the starting model (or, with LoRA, the base weights without the adapters).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from .config import DPOSettings


def dpo_dataset(rows: Sequence[dict[str, Any]]) -> Any:
    """A ``datasets.Dataset`` with the three conversational columns (provenance dropped)."""
    from datasets import Dataset

    return Dataset.from_list(
        [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
    )


def dpo_trainer(
    model: Any,
    tokenizer: Any,
    args: Any,
    train_dataset: Any,
    settings: DPOSettings,
    *,
    ref_model: Any = None,
    eval_dataset: Any = None,
    peft_config: Any = None,
    callbacks: Sequence[Any] | None = None,
) -> Any:
    """TRL's ``DPOTrainer`` as ``oversight train dpo`` runs it: on a CPU, with the log-probability
    head of :mod:`oversight.training.cpu_head` on the policy and the reference (unless
    ``settings.cpu_logprob_head`` is off)."""
    from trl import DPOTrainer

    from . import cpu_head

    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=list(callbacks) if callbacks else None,
    )
    if settings.cpu_logprob_head:
        cpu_head.install_on(trainer, "dpo")
    return trainer


def train_dpo(
    run_dirs: Sequence[str | Path],
    settings: DPOSettings,
    *,
    is_refusal: Callable[[str], bool] | None = None,
    model: Any = None,
    tokenizer: Any = None,
    embeddings: bool = True,
) -> Any:
    """Train on the runs' DPO pairs; return a :class:`~oversight.training._common.TrainResult`."""
    from . import _common

    _common.require_training_extras()
    from .eval import default_refusal_detector

    detector = is_refusal or default_refusal_detector()
    _, _, split, card = _common.prepare_data(run_dirs, settings, detector, embeddings=embeddings)
    if not split.train:
        raise InputError(
            f"no DPO pairs to train on in {', '.join(map(str, run_dirs))}; pairs exist only "
            "where a candidate lost (a revised draft, a rejected revision)"
        )
    model, tokenizer = _common.load_model_and_tokenizer(
        settings.model, model, tokenizer, settings.attn_implementation
    )
    model.config.use_cache = False
    dtype = _common.training_dtype(settings)
    args = settings.to_trl(device_bf16=dtype.bf16)
    evaluation = dpo_dataset(split.eval) if split.eval else None
    if evaluation is None:
        args.eval_strategy = "no"
    peft = _common.peft_config(settings)
    # The frozen reference: a copy of the starting weights (with LoRA, the base without adapters).
    ref_model = None if peft is not None else copy.deepcopy(model).eval()
    trainer = dpo_trainer(
        model, tokenizer, args, dpo_dataset(split.train), settings,
        ref_model=ref_model, eval_dataset=evaluation, peft_config=peft,
    )  # fmt: skip
    trainer.train()
    final = _common.save_final(trainer, tokenizer, settings)
    metrics = _common.write_metrics(trainer, settings, {}, dtype)
    return _common.TrainResult(
        model_dir=final,
        train_rows=len(split.train),
        eval_rows=len(split.eval),
        metrics=metrics,
        card=card,
        dtype=dtype.as_dict(),
    )
