"""A reward model on the runs' preference pairs: a thin layer over TRL's ``RewardTrainer``.

``oversight train rm RUN...`` reads the runs' ``dpo.jsonl`` (consensus answer chosen over each
losing candidate; TRL's conversational preference format), merges and splits them like SFT / DPO
(:mod:`oversight.training.data`: human override, de-duplication, split by prompt), and trains a
sequence-classification head with one output (the reward) on the Bradley-Terry loss
``-log sigmoid(r(chosen) - r(rejected))``. The default start is the embedded SmolLM2-135M-Instruct
with a fresh, seeded score head. ``output_dir/final`` loads with
``AutoModelForSequenceClassification.from_pretrained`` and as the ``reward`` backend
(:mod:`oversight.backends.reward`), which lets a judge rank candidates by reward.

Accuracy (share of pairs whose chosen answer gets the higher reward) is reported on

* ``eval``: the held-out split of the training runs (``eval_fraction``);
* ``heldout``: the pairs of other runs (``heldout_runs``), minus any prompt also trained on;
* ``hh_rlhf``: the HH-RLHF harmless-base sample in ``../shared/data/hh-rlhf`` (an evaluation set:
  never trained on), parsed into the same conversational form.

Every figure comes with the untrained model's accuracy on the same pairs (``baseline``: the
starting weights and the same seeded head), so a number is never read without its floor.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..errors import InputError
from .config import CommonSettings, load_settings
from .data import Row, _norm

HH_RLHF_FILE = Path("hh-rlhf") / "harmless-base" / "test.jsonl"
"""The HH-RLHF harmless sample, relative to the shared data folder."""


@dataclass(frozen=True)
class RewardSettings(CommonSettings):
    """Reward model on the preference pairs (Bradley-Terry loss on a one-output score head)."""

    output_dir: str = field(
        default="models/oversight-rm",
        metadata={"help": "Where checkpoints and the final model directory (final/) go."},
    )
    learning_rate: float = field(default=2e-5, metadata={"help": "Peak learning rate."})
    center_rewards_coefficient: float | None = field(
        default=0.01,
        metadata={
            "help": "Weight of a penalty on the squared mean reward, so rewards stay centred on "
            "0 (the reward backend's softmax reads differences only; None disables it)."
        },
    )
    eval_batch_size: int = field(
        default=16, metadata={"help": "Conversations per forward pass when measuring accuracy."}
    )
    eval_dtype: str = field(
        default="float32",
        metadata={
            "help": "torch dtype for measuring accuracy (bfloat16 is several times faster on a "
            "CPU with AMX / AVX512-BF16)."
        },
    )

    def to_trl(self, *, device_bf16: bool = False) -> Any:
        """The equivalent ``trl.RewardConfig``."""
        from trl import RewardConfig

        kwargs = self._common_trl(device_bf16)
        kwargs.update(center_rewards_coefficient=self.center_rewards_coefficient)
        kwargs.update(self.trl_overrides)
        return RewardConfig(**kwargs)


def load_reward_settings(path: str | Path | None = None, **overrides: Any) -> RewardSettings:
    """:class:`RewardSettings` from a YAML file and overrides (same rules as SFT / DPO)."""
    return cast(RewardSettings, load_settings(cast(Any, RewardSettings), path, **overrides))


@dataclass
class RewardResult:
    """What :func:`train_reward` produced."""

    model_dir: Path
    """The final model directory (``AutoModelForSequenceClassification``; ``reward`` backend)."""
    train_rows: int
    eval_rows: int
    accuracy: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Set name -> :func:`pairwise_accuracy` of the trained model, with ``baseline`` inside."""
    metrics: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_dir": str(self.model_dir),
            "train_rows": self.train_rows,
            "eval_rows": self.eval_rows,
            "accuracy": self.accuracy,
            "metrics": self.metrics,
        }


# --- data ----------------------------------------------------------------------------------------


def preference_dataset(rows: Sequence[Row]) -> Any:
    """A ``datasets.Dataset`` with the three conversational columns (provenance dropped)."""
    from datasets import Dataset

    return Dataset.from_list(
        [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
    )


_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def parse_hh_transcript(text: str) -> list[dict[str, str]]:
    """``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` -> chat turns (user / assistant)."""
    parts = _HH_TURN.split(text)
    if parts[0].strip():
        raise ValueError("a transcript starts with '\\n\\nHuman: '")
    roles = {"Human": "user", "Assistant": "assistant"}
    return [
        {"role": roles[speaker], "content": content.strip()}
        for speaker, content in zip(parts[1::2], parts[2::2], strict=True)
    ]


def hh_rlhf_pairs(path: str | Path) -> list[Row]:
    """The HH-RLHF sample as conversational pairs: the shared turns are the prompt, the turns
    where ``chosen`` and ``rejected`` differ are the two answers. Unusable lines (no
    difference, or a transcript that does not parse) are left out."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path} not found: the HH-RLHF harmless sample lives in the shared data folder "
            "(hh-rlhf/harmless-base/test.jsonl); pass --data-dir or set $OVERSIGHT_DATA"
        )
    rows: list[Row] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                chosen = parse_hh_transcript(record["chosen"])
                rejected = parse_hh_transcript(record["rejected"])
            except (ValueError, KeyError, TypeError):
                continue
            common = 0
            for a, b in zip(chosen, rejected, strict=False):
                if a != b:
                    break
                common += 1
            tail_c, tail_r = chosen[common:], rejected[common:]
            if not common or not tail_c or not tail_r or tail_c[0]["role"] != "assistant":
                continue
            rows.append(
                {
                    "prompt": chosen[:common],
                    "chosen": tail_c,
                    "rejected": tail_r,
                    "provenance": {"source": "hh-rlhf", "line": number},
                }
            )
    return rows


def _prompt_key(row: Row) -> str:
    return "\x1f".join(_norm(str(t.get("content", ""))) for t in row["prompt"])


def drop_trained_prompts(pairs: Sequence[Row], trained: Iterable[Row]) -> tuple[list[Row], int]:
    """``pairs`` without those whose prompt (normalised text) was trained on; and how many."""
    seen = {_prompt_key(r) for r in trained}
    kept = [r for r in pairs if _prompt_key(r) not in seen]
    return kept, len(pairs) - len(kept)


# --- scoring -------------------------------------------------------------------------------------


class RewardScorer:
    """Rewards of conversations from a reward model, batched and without gradients.

    A conversation is tokenized as TRL's ``RewardTrainer`` tokenizes a pair's side (the chat
    template over the whole conversation); one longer than ``max_length`` keeps its last
    ``max_length`` tokens, so the answer being judged is never cut (``truncated`` counts them).
    """

    def __init__(
        self, model: Any, tokenizer: Any, *, max_length: int = 1024, batch_size: int = 16
    ) -> None:
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.truncated = 0

    @classmethod
    def from_dir(
        cls, path: str | Path, *, dtype: str = "float32", device: str | None = None, **kw: Any
    ) -> RewardScorer:
        """Load a trained reward model directory (``final/``)."""
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(path)
        if not (path / "config.json").is_file():
            raise InputError(
                f"{path}: not a model directory (no config.json); pass the final/ folder that "
                "`oversight train rm` wrote"
            )
        model = AutoModelForSequenceClassification.from_pretrained(
            path, dtype=getattr(torch, dtype)
        )
        if model.config.num_labels != 1:
            raise InputError(
                f"{path}: has {model.config.num_labels} outputs; a reward model has one "
                "(train it with `oversight train rm`)"
            )
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(model.to(device), AutoTokenizer.from_pretrained(path), **kw)

    def _ids(self, conversation: Sequence[dict[str, str]]) -> list[int]:
        out = self.tokenizer.apply_chat_template(
            list(conversation), tokenize=True, return_dict=True
        )
        ids = list(out["input_ids"])
        if len(ids) > self.max_length:
            self.truncated += 1
            ids = ids[-self.max_length :]
        return ids

    def rewards(self, conversations: Sequence[Sequence[dict[str, str]]]) -> list[float]:
        """One reward per conversation (its last turn is the answer judged)."""
        import torch

        encoded = [self._ids(c) for c in conversations]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = [0.0] * len(encoded)
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = max(len(encoded[i]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[row, : len(encoded[i])] = 1
            with torch.no_grad():
                logits = self.model(
                    input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False
                ).logits
            for row, i in enumerate(batch):
                out[i] = float(logits[row, 0].float())
        return out


def pairwise_accuracy(scorer: RewardScorer, pairs: Sequence[Row]) -> dict[str, Any]:
    """Share of pairs whose chosen side gets the higher reward (a tie counts half)."""
    if not pairs:
        return {"pairs": 0, "accuracy": None, "ties": 0, "mean_margin": None}
    before = scorer.truncated
    convs = [[*r["prompt"], *r["chosen"]] for r in pairs]
    convs += [[*r["prompt"], *r["rejected"]] for r in pairs]
    rewards = scorer.rewards(convs)
    chosen, rejected = rewards[: len(pairs)], rewards[len(pairs) :]
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    wins = sum(m > 0 for m in margins)
    ties = sum(m == 0 for m in margins)
    return {
        "pairs": len(pairs),
        "accuracy": round((wins + ties / 2) / len(pairs), 4),
        "ties": ties,
        "mean_margin": round(
            sum(c - r for c, r in zip(chosen, rejected, strict=True)) / len(pairs), 4
        ),
        "truncated_conversations": scorer.truncated - before,
    }


CALIBRATION_FILE = "reward_calibration.json"
"""Written into ``final/``: how the reward backend turns one reward into P(violates)."""


def calibrate(scorer: RewardScorer, pairs: Sequence[Row]) -> dict[str, Any]:
    """Map a reward to P("Yes", violates) for the reward backend's Yes/No answers.

    ``P = sigmoid((threshold - reward) / scale)`` with the threshold halfway between the mean
    rewards of the chosen and the rejected answers of ``pairs`` and the scale a quarter of that
    gap, so the mean rejected answer maps to 0.88 and the mean chosen one to 0.12. ``usable`` is
    false when chosen answers do not score higher on average (the backend then refuses Yes/No).
    """
    if not pairs:
        return {"usable": False, "pairs": 0}
    rewards = scorer.rewards(
        [[*r["prompt"], *r["chosen"]] for r in pairs]
        + [[*r["prompt"], *r["rejected"]] for r in pairs]
    )
    chosen = sum(rewards[: len(pairs)]) / len(pairs)
    rejected = sum(rewards[len(pairs) :]) / len(pairs)
    gap = chosen - rejected
    return {
        "usable": gap > 0,
        "pairs": len(pairs),
        "threshold": round((chosen + rejected) / 2, 6),
        "scale": round(gap / 4, 6) if gap > 0 else None,
        "mean_chosen": round(chosen, 6),
        "mean_rejected": round(rejected, 6),
    }


# --- training ------------------------------------------------------------------------------------


def load_reward_base(name: str | None, seed: int) -> tuple[Any, Any]:
    """The starting model with a fresh one-output score head (seeded), in float32."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    from ._common import resolve_model

    path = resolve_model(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    set_seed(seed)  # the score head is initialised randomly
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, dtype=torch.float32
    )
    return model, tokenizer


def _peft_config(settings: CommonSettings) -> Any:
    if settings.lora is None:
        return None
    from peft import LoraConfig

    lora = settings.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="SEQ_CLS",  # keeps the score head trainable and saved
    )


def train_reward(
    run_dirs: Sequence[str | Path],
    settings: RewardSettings,
    *,
    heldout_runs: Sequence[str | Path] = (),
    hh_rlhf: str | Path | None = None,
    hh_rlhf_limit: int | None = None,
    is_refusal: Callable[[str], bool] | None = None,
    model: Any = None,
    tokenizer: Any = None,
    embeddings: bool = True,
    baseline: bool = True,
) -> RewardResult:
    """Train on the runs' DPO pairs, then measure pairwise accuracy (see the module docstring).

    ``model`` / ``tokenizer`` may be given (tests pass a tiny ``LlamaForSequenceClassification``
    with ``num_labels=1``); otherwise ``settings.model`` (or the embedded default) is loaded with
    a new score head. ``hh_rlhf`` is the sample's path (``None`` skips it); ``hh_rlhf_limit``
    measures a seeded sample of that many of its pairs. ``baseline=False`` skips scoring the
    untrained model.
    """
    import copy

    import torch

    from . import _common

    _common.require_training_extras()
    from trl import RewardTrainer

    from .data import load_runs
    from .eval import default_refusal_detector

    detector = is_refusal or default_refusal_detector()
    _, _, split, card = _common.prepare_data(run_dirs, settings, detector, embeddings=embeddings)
    if not split.train:
        raise InputError(
            f"no preference pairs to train on in {', '.join(map(str, run_dirs))}; pairs exist "
            "only where a candidate lost (a revised draft, a rejected revision)"
        )
    sets: dict[str, list[Row]] = {"eval": split.eval}
    dropped = 0
    if heldout_runs:
        sets["heldout"], dropped = drop_trained_prompts(load_runs(heldout_runs).dpo, split.train)
    if hh_rlhf is not None:
        hh = hh_rlhf_pairs(hh_rlhf)
        if hh_rlhf_limit is not None and hh_rlhf_limit < len(hh):
            keep = sorted(random.Random(settings.seed).sample(range(len(hh)), hh_rlhf_limit))
            hh = [hh[i] for i in keep]
        sets["hh_rlhf"] = hh

    if model is None or tokenizer is None:
        model, tokenizer = load_reward_base(settings.model, settings.seed)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.use_cache = False

    def measure(scorer: RewardScorer) -> dict[str, dict[str, Any]]:
        return {name: pairwise_accuracy(scorer, pairs) for name, pairs in sets.items() if pairs}

    opts: dict[str, Any] = {
        "max_length": settings.max_length,
        "batch_size": settings.eval_batch_size,
    }
    floor: dict[str, dict[str, Any]] = {}
    if baseline:  # the starting weights and the same seeded head, measured like the result
        start = copy.deepcopy(model).to(getattr(torch, settings.eval_dtype))
        floor = measure(RewardScorer(start, tokenizer, **opts))
        del start
    dtype = _common.training_dtype(settings)
    args = settings.to_trl(device_bf16=dtype.bf16)
    evaluation = preference_dataset(split.eval) if split.eval else None
    if evaluation is None:
        args.eval_strategy = "no"
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=preference_dataset(split.train),
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=_peft_config(settings),
    )
    trainer.train()
    final = _common.save_final(trainer, tokenizer, settings)
    # Measured from the saved directory: what the reward backend will load.
    scorer = RewardScorer.from_dir(final, dtype=settings.eval_dtype, **opts)
    accuracy = measure(scorer)
    calibration = calibrate(scorer, split.train)
    (final / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=2) + "\n")
    for name, figures in accuracy.items():
        if name in floor:
            figures["baseline"] = floor[name]
    if "heldout" in sets:
        accuracy.setdefault("heldout", {"pairs": 0})["dropped_trained_prompts"] = dropped
    metrics = _common.write_metrics(trainer, settings, {}, dtype)
    (Path(settings.output_dir) / "rm_accuracy.json").write_text(
        json.dumps(accuracy, indent=2) + "\n", encoding="utf-8"
    )
    return RewardResult(
        model_dir=final,
        train_rows=len(split.train),
        eval_rows=len(split.eval),
        accuracy=accuracy,
        metrics={**metrics, "calibration": calibration},
        card=card,
    )
