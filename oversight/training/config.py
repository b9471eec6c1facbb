"""Training configurations: dataclasses with help on every field, loadable from YAML.

They are deliberately small: the fields a user of ``oversight train`` changes, mapped onto TRL's
``SFTConfig`` / ``DPOConfig`` by :meth:`SFTSettings.to_trl` and :meth:`DPOSettings.to_trl`.
Anything else TRL accepts can be passed through ``trl_overrides``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..config import Problems, config_error, did_you_mean, read_config
from ..errors import ConfigError


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapters through peft (merged into the base weights when training ends)."""

    r: int = field(default=16, metadata={"help": "Rank of the LoRA update matrices."})
    alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (alpha / r)."})
    dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    target_modules: tuple[str, ...] = field(
        default=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        metadata={"help": "Module names that get adapters (Llama-style names by default)."},
    )
    merge: bool = field(
        default=True,
        metadata={
            "help": "Merge the adapters into the weights of the final model directory, so the "
            "transformers backend loads it without peft."
        },
    )


@dataclass(frozen=True)
class CommonSettings:
    """Fields shared by SFT and DPO."""

    model: str | None = field(
        default=None,
        metadata={
            "help": "Model directory or name to start from; default: the embedded default model "
            "(SmolLM2-135M-Instruct)."
        },
    )
    output_dir: str = field(
        default="models/oversight-sft",
        metadata={"help": "Where checkpoints and the final model directory (final/) go."},
    )
    seed: int = field(default=0, metadata={"help": "Seed for the split, shuffling and init."})
    eval_fraction: float = field(
        default=0.1, metadata={"help": "Share of rows held out for evaluation (0 disables)."}
    )
    max_length: int = field(
        default=512, metadata={"help": "Tokens per example (longer ones are truncated)."}
    )
    epochs: float = field(default=1.0, metadata={"help": "Passes over the training rows."})
    max_steps: int = field(
        default=-1, metadata={"help": "Stop after this many optimizer steps (-1: use epochs)."}
    )
    batch_size: int = field(default=8, metadata={"help": "Examples per device per step."})
    grad_accum: int = field(default=1, metadata={"help": "Gradient accumulation steps."})
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak learning rate."})
    warmup_ratio: float = field(
        default=0.0, metadata={"help": "Share of steps of LR warmup (0-1)."}
    )
    lr_scheduler: str = field(
        default="cosine", metadata={"help": "transformers scheduler name (cosine, linear, ...)."}
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    bf16: bool | None = field(
        default=None,
        metadata={
            "help": "bf16 mixed precision (fp32 weights, bf16 autocast); default: the machine's "
            "choice (oversight.devices.pick_dtype): on with a bf16 CUDA GPU or a CPU with "
            "AVX512-BF16 or AMX-BF16, off elsewhere (emulated bf16 is slower than fp32)."
        },
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={
            "help": "Attention kernel (sdpa, flex_attention, flash_attention_2, eager); default: "
            "flash_attention_2 on a GPU with flash_attn installed, else sdpa. On a GPU, "
            "flex_attention with trl_overrides {torch_compile: true} was the fastest measured "
            "(docs/training.md)."
        },
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Trade compute for memory; off by default (small models fit)."},
    )
    cpu_logprob_head: bool = field(
        default=True,
        metadata={
            "help": "On a CPU, compute the log-probabilities with one LM-head matmul over the "
            "labelled positions (oversight.training.cpu_head) instead of TRL's fused head, whose "
            "CPU fallback scores every position and runs its backward matmuls in fp32 "
            "(docs/training.md, training speed on the CPU). No effect on a GPU."
        },
    )
    save_steps: int = field(
        default=500, metadata={"help": "Write a checkpoint every N steps (checkpoint-N/)."}
    )
    save_total_limit: int | None = field(
        default=2, metadata={"help": "Keep at most this many checkpoints (None: all)."}
    )
    logging_steps: int = field(default=10, metadata={"help": "Log the loss every N steps."})
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder of the evaluation sets (xstest/, harmbench/, jbb-behaviors/); rows "
            "whose prompt near-duplicates one of them are dropped (oversight.dedup). Default: "
            "$OVERSIGHT_DATA, then ../shared/data; absent: the check is skipped, with a note."
        },
    )
    drop_eval_duplicates: bool = field(
        default=True,
        metadata={"help": "Drop rows whose prompt near-duplicates an evaluation prompt."},
    )
    lora: LoraSettings | None = field(
        default=None, metadata={"help": "LoRA settings; None trains all weights."}
    )
    trl_overrides: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Extra keyword arguments for TRL's config, applied last."},
    )

    def _common_trl(self, device_bf16: bool) -> dict[str, Any]:
        from transformers import TrainingArguments

        bf16 = device_bf16 if self.bf16 is None else self.bf16
        # transformers 5 renamed gradient_checkpointing and folded warmup_ratio into warmup_steps.
        names = {f.name for f in dataclasses.fields(TrainingArguments)}
        checkpointing = (
            "activation_checkpointing" if "activation_checkpointing" in names
            else "gradient_checkpointing"
        )  # fmt: skip
        warmup = "warmup_ratio" if "warmup_ratio" in names else "warmup_steps"
        return {
            "output_dir": self.output_dir,
            "seed": self.seed,
            "max_length": self.max_length,
            "num_train_epochs": self.epochs,
            "max_steps": self.max_steps,
            "per_device_train_batch_size": self.batch_size,
            "per_device_eval_batch_size": self.batch_size,
            "gradient_accumulation_steps": self.grad_accum,
            "learning_rate": self.learning_rate,
            warmup: self.warmup_ratio,  # a float < 1 is a ratio in transformers 5
            "lr_scheduler_type": self.lr_scheduler,
            "weight_decay": self.weight_decay,
            "bf16": bf16,
            checkpointing: self.gradient_checkpointing,
            "save_steps": self.save_steps,
            "save_total_limit": self.save_total_limit,
            "logging_steps": self.logging_steps,
            "report_to": "none",
            "eval_strategy": "epoch" if self.eval_fraction > 0 else "no",
            "dataloader_pin_memory": False,
            # bf16 without a GPU is CPU autocast (3x faster than fp32 on AVX512-BF16 CPUs);
            # transformers then asks for use_cpu explicitly.
            **({"use_cpu": True} if bf16 and not _cuda() else {}),
        }


@dataclass(frozen=True)
class SFTSettings(CommonSettings):
    """Supervised fine-tuning on the consensus answers (loss on the answer tokens only)."""

    output_dir: str = field(
        default="models/oversight-sft",
        metadata={"help": "Where checkpoints and the final model directory (final/) go."},
    )
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak learning rate."})
    packing: bool = field(
        default=True,
        metadata={
            "help": "Pack several examples per row; attention never crosses example boundaries "
            "(position ids restart per example, flash-attention varlen or a block mask)."
        },
    )

    def to_trl(self, *, device_bf16: bool = False) -> Any:
        """The equivalent ``trl.SFTConfig``."""
        from trl import SFTConfig

        kwargs = self._common_trl(device_bf16)
        # Answer-only loss comes from our own tokenization (labels are -100 outside the
        # assistant turn), so TRL gets pre-tokenized rows and must not re-pack them.
        kwargs.update(dataset_kwargs={"skip_prepare_dataset": True}, remove_unused_columns=False)
        kwargs.update(self.trl_overrides)
        return SFTConfig(**kwargs)


@dataclass(frozen=True)
class DPOSettings(CommonSettings):
    """Direct preference optimisation: consensus answer (chosen) over the losing candidate."""

    output_dir: str = field(
        default="models/oversight-dpo",
        metadata={"help": "Where checkpoints and the final model directory (final/) go."},
    )
    learning_rate: float = field(default=5e-6, metadata={"help": "Peak learning rate."})
    beta: float = field(
        default=0.1, metadata={"help": "Strength of the KL penalty to the reference model."}
    )
    loss_type: str = field(
        default="sigmoid", metadata={"help": "TRL DPO loss (sigmoid, ipo, robust, ...)."}
    )
    sft_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of an extra NLL loss on the chosen answer (RPO); 0 disables it."},
    )

    def to_trl(self, *, device_bf16: bool = False) -> Any:
        """The equivalent ``trl.DPOConfig``."""
        from trl import DPOConfig

        kwargs = self._common_trl(device_bf16)
        if self.sft_weight > 0:
            kwargs.update(loss_type=[self.loss_type, "sft"], loss_weights=[1.0, self.sft_weight])
        else:
            kwargs.update(loss_type=self.loss_type)
        kwargs.update(beta=self.beta)
        kwargs.update(self.trl_overrides)
        return DPOConfig(**kwargs)


S = TypeVar("S", SFTSettings, DPOSettings)


def load_settings(cls: type[S], path: str | Path | None = None, **overrides: Any) -> S:
    """Settings from a YAML mapping (keys are the field names), then ``overrides`` (non-None).

    The file is read through the config base (:mod:`oversight.config`): every problem (unknown
    keys, with "did you mean"; keys given twice) is reported at once in one
    :class:`ConfigError` naming the file and each problem's line.
    """
    data: dict[str, Any] = {}
    doc = None
    if path is not None:
        doc = read_config(path, what="training config", allow_empty=True)
        data.update(doc.data)
    data.update({k: v for k, v in overrides.items() if v is not None})
    problems = Problems(data, path=path)
    if doc is not None:
        problems.extend(doc.problems)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            problems.add((key,), _unknown_key(key, names))
    lora = data.get("lora")
    if isinstance(lora, dict):
        lora_names = [f.name for f in dataclasses.fields(LoraSettings)]
        for key in lora:
            if key not in lora_names:
                problems.add(("lora", key), _unknown_key(key, lora_names))
    if problems:
        found = list(problems)
        raise config_error(doc.locate(found) if doc is not None else found, path=path)
    if isinstance(lora, dict):
        if "target_modules" in lora:
            lora = {**lora, "target_modules": tuple(lora["target_modules"])}
        data["lora"] = LoraSettings(**lora)
    elif lora is True:
        data["lora"] = LoraSettings()
    elif lora is False:
        data["lora"] = None
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"invalid training settings: {exc}", path=path) from None


def _unknown_key(key: str, names: list[str]) -> str:
    return f"unknown key{did_you_mean(key, names)}; valid keys: {', '.join(sorted(names))}"


def settings_help(cls: type[Any]) -> dict[str, str]:
    """Field name -> help text, e.g. for documentation or ``--help`` output."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}
