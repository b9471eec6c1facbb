"""Per-token log-probabilities on a CPU: one LM-head matmul over the scored positions only.

TRL 1.16's trainers patch the model with a "fused LM head" (``trl.trainer.utils.add_fused_lm_head``)
built for GPU memory: the logits are computed in vocabulary tiles with an online log-sum-exp and
recomputed tile by tile in the backward. With Triton (CUDA, XPU) it scores only the positions
whose label is not -100. Without Triton, i.e. on every CPU, it falls back to torch ops that score
**every** position (prompt and padding included), compute the metric fields (entropy, mean logit,
top-1) with their own passes over the ``positions x vocabulary`` tile in fp32, recompute the
logits in the backward, and run both gradient matmuls in fp32 even under bf16 autocast
(``acc.addmm_(a.float(), b.float())``). On SmolLM2-135M (vocabulary 49,152) the LM head is a fifth
of a token's forward FLOPs, so that made TRL's DPO step on a bf16 CPU slower than a plain fp32 loop.

:func:`install` replaces that fallback for CPU training: the backbone runs as before, the LM head
is applied once to the hidden states of the scored positions (``labels != -100``), in the autocast
dtype when autocast is on, and the log-probabilities come from one fp32 ``log_softmax``; the
backward is ordinary autograd (two matmuls in the autocast dtype, like the plain loop's). The metric
fields are computed without gradient from the same logits. Memory: one ``scored x vocabulary``
fp32 tile and its gradient, never more than the model's own forward with labels (which builds the
logits of every position). Where TRL's head does something this one does not (a logit soft-cap or
scale, MoE router losses, pre-shifted labels, a vision model's text config, Triton devices), TRL's
head stays.
"""

from __future__ import annotations

import logging
import types
from typing import Any

logger = logging.getLogger("oversight.training")

IGNORE = -100
FIELDS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")

_SCALES = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
           "logits_scaling")  # fmt: skip


def supported(model: Any) -> str | None:
    """Why TRL's fused head must stay on ``model`` (``None``: :func:`install` can replace it)."""
    text = model.config.get_text_config()
    if text is not model.config:
        return "a multimodal model (its text backbone is nested)"
    for name in _SCALES:
        if getattr(text, name, None) is not None:
            return f"the model scales its logits ({name})"
    if getattr(text, "output_router_logits", False):
        return "a mixture-of-experts model with router losses"
    device = next(model.parameters()).device
    if device.type != "cpu":
        return f"training on {device.type}, where TRL's Triton head scores only the labelled tokens"
    return None


def install(model: Any, outputs: tuple[str, ...] = ("log_probs",)) -> bool:
    """Replace TRL's fused head of ``model`` (patched already) by the CPU head; ``outputs`` are
    the fields besides ``log_probs`` the trainer reads (as TRL's ``add_fused_lm_head`` takes them).

    Returns whether it was installed (:func:`supported`). A forward without
    ``fused_lm_head=True`` goes to the forward it replaced (TRL's, then the model's own).
    """
    if supported(model) is not None:
        return False
    unknown = set(outputs) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown fused-head fields {sorted(unknown)}; known: {FIELDS}")
    previous = model.forward
    wanted = frozenset(outputs)

    def forward(self: Any, *args: Any, fused_lm_head: bool = False, **kwargs: Any) -> Any:
        if not fused_lm_head or kwargs.get("shift_labels") is not None:
            return previous(*args, fused_lm_head=fused_lm_head, **kwargs)
        return _scored_forward(self, wanted, *args, **kwargs)

    forward.oversight_cpu_head = tuple(outputs)  # type: ignore[attr-defined]
    model.forward = types.MethodType(forward, model)
    return True


def installed(model: Any) -> tuple[str, ...] | None:
    """The fields of the CPU head ``model`` computes with now (``None``: not installed, or
    wrapped since by another trainer's fused head)."""
    return getattr(getattr(model.forward, "__func__", None), "oversight_cpu_head", None)


def _scored_forward(
    model: Any,
    wanted: frozenset[str],
    *args: Any,
    labels: Any,
    num_items_in_batch: Any = None,
    **kwargs: Any,
) -> Any:
    import torch
    from trl.trainer.utils import FusedCausalLMOutput

    kwargs["use_cache"] = False
    hidden = model.base_model(*args, **kwargs).last_hidden_state[:, :-1]
    labels = labels[:, 1:].to(hidden.device)
    mask = labels != IGNORE
    target = labels[mask]
    logits = model.get_output_embeddings()(hidden[mask])  # autocast dtype under autocast
    log_softmax = logits.float().log_softmax(-1)
    scored = {"log_probs": log_softmax.gather(-1, target.unsqueeze(-1)).squeeze(-1)}
    with torch.no_grad():
        if "entropy" in wanted:
            scored["entropy"] = -(log_softmax.exp() * log_softmax).sum(-1)
        if "log_sum_sq_probs" in wanted:
            scored["log_sum_sq_probs"] = torch.logsumexp(2 * log_softmax, -1)
        if "mean_logits" in wanted:
            scored["mean_logits"] = logits.mean(-1, dtype=torch.float32)
        if "is_top1" in wanted:
            scored["is_top1"] = logits.argmax(-1) == target

    def spread(values: Any) -> Any:  # back to (batch, seq_len - 1), zero where not scored
        out = values.new_zeros(mask.shape)
        return out.masked_scatter(mask, values)

    fields = {name: spread(scored[name]) for name in FIELDS if name in scored}
    count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
    loss = -fields["log_probs"].sum() / count
    return FusedCausalLMOutput(loss=loss, label_mask=mask, **fields)


TRAINER_FIELDS = {
    "sft": ("log_probs", "entropy", "is_top1"),
    "dpo": ("log_probs", "entropy", "mean_logits", "is_top1"),
}
"""The fields TRL 1.16's ``SFTTrainer`` / ``DPOTrainer`` read from the policy's fused head (DPO adds
``log_sum_sq_probs`` with WPO weighting); the DPO reference reads ``log_probs`` only."""


def install_on(trainer: Any, kind: str) -> str:
    """Install the CPU head on a built TRL trainer's policy (and DPO's separate reference model).

    ``kind`` is ``"sft"`` or ``"dpo"``. Returns which head computes the log-probabilities, and
    why, for the logs and the benchmarks' JSON.
    """
    model = trainer.model
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    fields = TRAINER_FIELDS[kind]
    if getattr(trainer, "use_weighting", False):
        fields += ("log_sum_sq_probs",)
    why = supported(base)
    if why is not None:
        head = f"TRL's fused LM head: {why}"
    else:
        install(base, fields)
        ref = getattr(trainer, "ref_model", None)
        if ref is not None and supported(ref) is None:
            install(ref)
        head = "oversight.training.cpu_head: one LM-head matmul over the labelled positions (CPU)"
    logger.info("log-probabilities: %s", head)
    return head
