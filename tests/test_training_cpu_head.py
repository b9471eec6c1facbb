"""The CPU log-probability head (oversight.training.cpu_head) against TRL's fused head."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from oversight.training.config import DPOSettings, SFTSettings
from oversight.training.tiny import tiny_llama, tiny_tokenizer

torch = pytest.importorskip("torch")
trl_utils = pytest.importorskip("trl.trainer.utils")

ALL = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")


def _pair(**config: Any) -> tuple[Any, Any]:
    """Two copies of a tiny model, both with TRL's fused head; the CPU head on the second."""
    from oversight.training import cpu_head

    trl_model = tiny_llama(259, **config)
    trl_model.config.use_cache = False
    ours = copy.deepcopy(trl_model)
    trl_utils.add_fused_lm_head(trl_model, outputs=ALL)
    trl_utils.add_fused_lm_head(ours, outputs=ALL)
    assert cpu_head.install(ours, ALL)
    return trl_model, ours


def _batch() -> tuple[Any, Any, Any]:
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 259, (3, 16), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, 11:] = 0  # padding
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :5] = -100  # a prompt
    return ids, mask, labels


@pytest.mark.parametrize("autocast", [False, True])
def test_cpu_head_gives_trls_fields_and_gradients(autocast: bool) -> None:
    trl_model, ours = _pair()
    ids, mask, labels = _batch()
    outs = []
    for model in (trl_model, ours):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
        (out.log_probs.sum() + out.loss).backward()
        outs.append(out)
    for field in (*ALL, "label_mask"):
        a, b = getattr(outs[0], field), getattr(outs[1], field)
        assert a.shape == b.shape == (3, 15), field
        assert torch.allclose(a.float(), b.float(), atol=1e-4), field
    assert torch.equal(outs[1].log_probs == 0, labels[:, 1:] == -100)  # zero where not scored
    tolerance = 1e-2 if autocast else 1e-5  # bf16 gradient matmuls vs TRL's fp32 ones
    for (name, p), q in zip(trl_model.named_parameters(), ours.parameters(), strict=True):
        assert (p.grad - q.grad).norm() <= tolerance * p.grad.norm(), name


def test_a_plain_forward_is_untouched() -> None:
    trl_model, ours = _pair()
    ids, mask, _ = _batch()
    with torch.no_grad():
        a = trl_model(input_ids=ids, attention_mask=mask).logits
        b = ours(input_ids=ids, attention_mask=mask).logits
    assert a.shape == (3, 16, 259)
    assert torch.equal(a, b)


def test_models_with_scaled_logits_keep_trls_head() -> None:
    from oversight.training import cpu_head

    model = tiny_llama(259)
    model.config.final_logit_softcapping = 30.0
    trl_utils.add_fused_lm_head(model)
    assert "final_logit_softcapping" in (cpu_head.supported(model) or "")
    assert not cpu_head.install(model)
    assert cpu_head.installed(model) is None
    with pytest.raises(ValueError, match="unknown"):
        cpu_head.install(tiny_llama(259), ("log_probs", "logits"))


def _dpo_rows(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        answer = f"answer number {i} with a few words"
        rows.append({
            "prompt": [{"role": "user", "content": f"question {i}?"}],
            "chosen": [{"role": "assistant", "content": answer}],
            "rejected": [{"role": "assistant", "content": answer[::-1]}],
        })  # fmt: skip
    return rows


def _dpo_run(tmp_path: Path, head: bool) -> tuple[Any, Any, list[dict[str, Any]]]:
    from oversight.training.dpo import dpo_dataset, dpo_trainer

    tok = tiny_tokenizer()
    model = tiny_llama(len(tok), seed=3)
    model.config.use_cache = False
    settings = DPOSettings(
        output_dir=str(tmp_path / f"dpo-{head}"), max_steps=2, batch_size=2, eval_fraction=0.0,
        logging_steps=1, max_length=96, learning_rate=1e-2, bf16=False, cpu_logprob_head=head,
        trl_overrides={"save_strategy": "no", "disable_tqdm": True},
    )  # fmt: skip
    trainer = dpo_trainer(
        model, tok, settings.to_trl(), dpo_dataset(_dpo_rows(4)), settings,
        ref_model=copy.deepcopy(model).eval(),
    )  # fmt: skip
    trainer.train()
    return model, trainer, trainer.state.log_history


def test_dpo_trainer_installs_the_head_and_trains_as_trl_does(tmp_path: Path) -> None:
    from oversight.training import cpu_head

    ours, trainer, ours_log = _dpo_run(tmp_path, True)
    assert cpu_head.installed(ours) == cpu_head.TRAINER_FIELDS["dpo"]
    assert cpu_head.installed(trainer.ref_model) == ("log_probs",)
    theirs, trl_trainer, trl_log = _dpo_run(tmp_path, False)
    assert cpu_head.installed(theirs) is None
    assert cpu_head.installed(trl_trainer.ref_model) is None
    keys = ("loss", "rewards/margins", "logps/chosen", "entropy", "logits/chosen",
            "mean_token_accuracy")  # fmt: skip
    for a, b in zip(ours_log[:2], trl_log[:2], strict=True):
        for key in keys:
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-4), key
    start = tiny_llama(len(tiny_tokenizer()), seed=3)
    moved = [(p - s, q - s) for p, q, s in zip(ours.parameters(), theirs.parameters(),
                                                 start.parameters(), strict=True)]  # fmt: skip
    ours_step = torch.cat([a.flatten() for a, _ in moved])
    trl_step = torch.cat([b.flatten() for _, b in moved])
    assert trl_step.norm() > 0
    assert (ours_step - trl_step).norm() <= 1e-2 * trl_step.norm()


def test_sft_trainer_installs_the_head_unless_turned_off(tmp_path: Path) -> None:
    from oversight.training import cpu_head
    from oversight.training.sft import sft_dataset, sft_trainer

    tok = tiny_tokenizer()
    turns = [({"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i} " * 5})
             for i in range(4)]  # fmt: skip
    rows = [{"messages": list(pair)} for pair in turns]
    for head in (True, False):
        model = tiny_llama(len(tok))
        settings = SFTSettings(
            output_dir=str(tmp_path / f"sft-{head}"), max_steps=1, batch_size=2, bf16=False,
            eval_fraction=0.0, max_length=64, cpu_logprob_head=head,
            trl_overrides={"save_strategy": "no", "disable_tqdm": True},
        )  # fmt: skip
        dataset = sft_dataset(rows, tok, settings)
        trainer = sft_trainer(model, tok, settings.to_trl(), dataset, settings)
        expected = cpu_head.TRAINER_FIELDS["sft"] if head else None
        assert cpu_head.installed(model) == expected
        trainer.train()
        assert trainer.state.log_history[-1]["train_loss"] > 0


def test_train_cpu_plain_copies_run_their_own_weights_in_fp32(tmp_path: Path) -> None:
    """A deep copy of a trained model keeps the trainers' patched forward, whose closures call
    the *original* model (under accelerate's bf16 autocast): the plain DPO loop of
    benchmarks/train_cpu.py ran on the library's model that way. Its copies now drop them."""
    from _bench import load_benchmark

    bench = load_benchmark("train_cpu")
    model, _, _ = _dpo_run(tmp_path, True)  # trained: TRL, the CPU head and accelerate patched it
    ids = torch.randint(0, 200, (1, 8))

    def q_proj_outputs(copy_of: Any) -> list[Any]:
        seen: list[Any] = []
        layer = copy_of.model.layers[0].self_attn.q_proj
        hook = layer.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
        with torch.no_grad():
            copy_of(input_ids=ids)
        hook.remove()
        return seen

    assert q_proj_outputs(copy.deepcopy(model)) == []  # the copy's own layers never ran
    assert q_proj_outputs(bench.pristine(model)) == [torch.float32]
