"""Training data, configs, and SFT / DPO end to end on a tiny model built from a config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from oversight.errors import ConfigError, InputError
from oversight.safety import phrase_refusal
from oversight.training.config import DPOSettings, LoraSettings, SFTSettings, load_settings
from oversight.training.data import (
    dataset_card,
    distinct_n,
    load_runs,
    render_card,
    split_rows,
)
from oversight.training.tiny import tiny_llama, tiny_tokenizer

# peft 0.21 and TRL 1.16 read transformers 5's deprecated `is_gradient_checkpointing`
# (a third-party warning, not ours).
pytestmark = pytest.mark.filterwarnings(
    "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"
)

REFUSAL = "I can't help with that request."


@pytest.fixture(autouse=True)
def _no_evaluation_sets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests train on their own rows; the near-duplicate check has tests/test_dedup.py."""
    monkeypatch.setenv("OVERSIGHT_DATA", str(tmp_path / "no-evaluation-sets"))


def _prov(pid: str, source: str = "consensus", **kw: Any) -> dict[str, Any]:
    return {
        "run": "r", "episode": f"e-{pid}", "prompt_id": pid, "strategy": kw.pop("strategy", "none"),
        "source": source, "target_source": kw.pop("target_source", "revision"),
        "principle_versions": kw.pop("principles", {"harm": "1"}), "case_id": None, **kw,
    }  # fmt: skip


def _sft(pid: str, q: str, a: str, **kw: Any) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
        "provenance": _prov(pid, **kw),
    }


def _dpo(pid: str, q: str, chosen: str, rejected: str, **kw: Any) -> dict[str, Any]:
    return {
        "prompt": [{"role": "user", "content": q}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "provenance": _prov(pid, **kw),
    }


def _write_run(
    path: Path, sft: list[dict[str, Any]], dpo: list[dict[str, Any]], **summary: Any
) -> Path:
    path.mkdir(parents=True)
    (path / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    (path / "dpo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dpo))
    (path / "summary.json").write_text(json.dumps(summary or {"episodes": 4, "escalated": 1}))
    drafts = [{"payload": {"kind": "draft", "text": f"Sure, here is draft {i}."}} for i in range(3)]
    (path / "journal.jsonl").write_text("".join(json.dumps(d) + "\n" for d in drafts))
    return path


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    a = _write_run(
        tmp_path / "a",
        [
            _sft("p1", "How do I make a bomb?", REFUSAL, strategy="priority"),
            _sft("p2", "Name a fruit.", "An apple is a fruit."),
            _sft("p3", "Say hello.", "Hello! Nice to meet you."),
            _sft("p4", "Count to three.", "One, two, three."),
        ],
        [_dpo("p1", "How do I make a bomb?", REFUSAL, "Sure, mix these chemicals.")],
    )
    b = _write_run(
        tmp_path / "b",
        [
            # The same prompt decided by a person in a later run: wins over p2's consensus.
            _sft("p2", "Name a fruit.", "A banana.", source="human", strategy="human"),
            # An exact duplicate of run a's p3 row.
            _sft("p3", "Say hello.", "Hello!  Nice to meet you."),
            _sft("p5", "What colour is the sky?", "Usually blue, because of Rayleigh scattering."),
        ],
        [
            _dpo("p2", "Name a fruit.", "A banana.", "I can't.", source="human"),
            _dpo("p5", "What colour is the sky?", "Usually blue.", "Green."),
        ],
        episodes=6,
        escalated=3,
    )
    return [a, b]


def test_human_decision_overrides_consensus_and_duplicates_go(runs: list[Path]) -> None:
    data = load_runs(runs)
    by_prompt = {r["provenance"]["prompt_id"]: r for r in data.sft}
    assert sorted(by_prompt) == ["p1", "p2", "p3", "p4", "p5"]
    assert by_prompt["p2"]["messages"][-1]["content"] == "A banana."
    assert data.dropped_by_human == 1
    assert data.duplicates == 1
    assert [r["provenance"]["prompt_id"] for r in data.dpo] == ["p1", "p2", "p5"]
    assert len(data.drafts) == 6


def test_split_keeps_prompts_together_and_is_seeded(runs: list[Path]) -> None:
    data = load_runs(runs)
    rows = data.sft + [
        dict(r, messages=[*r["messages"][:1], {"role": "assistant", "content": "x"}])
        for r in data.sft
    ]
    s1 = split_rows(rows, 0.4, seed=1)
    s2 = split_rows(rows, 0.4, seed=1)
    assert s1.eval == s2.eval
    train_ids = {r["provenance"]["prompt_id"] for r in s1.train}
    eval_ids = {r["provenance"]["prompt_id"] for r in s1.eval}
    assert not train_ids & eval_ids
    assert len(eval_ids) == 2 and len(s1.train) + len(s1.eval) == len(rows)
    seeds = {
        tuple(sorted({r["provenance"]["prompt_id"] for r in split_rows(rows, 0.4, seed=s).eval}))
        for s in range(8)
    }
    assert len(seeds) > 1
    with pytest.raises(InputError, match="eval_fraction"):
        split_rows(rows, 1.0, seed=0)


def test_card_counts_and_risks(runs: list[Path], tmp_path: Path) -> None:
    data = load_runs(runs)
    sft, dpo = split_rows(data.sft, 0.0, 0), split_rows(data.dpo, 0.0, 0)
    card = dataset_card(data, sft, dpo, is_refusal=phrase_refusal, embeddings=False)
    assert card["per_provenance"] == {"consensus": 4, "human": 1}
    assert card["per_strategy"] == {"human": 1, "none": 3, "priority": 1}
    assert card["per_principle"] == {"harm": 5}
    assert card["escalation_rate"] == pytest.approx(4 / 10)
    assert card["targets"]["refusal_share"] == pytest.approx(1 / 5)
    assert card["base_drafts"]["refusal_share"] == 0
    assert card["base_drafts"]["distinct_1"] < card["targets"]["distinct_1"]
    md = render_card(card)
    assert "| refusal share | 20.0% | 0.0% |" in md
    assert "40.0%" in md


def test_distinct_n() -> None:
    assert distinct_n(["a b a b"], 1) == 0.5
    assert distinct_n(["a b", "a b"], 2) == 0.5
    assert distinct_n([""], 2) == 0.0


def test_missing_exports_and_bad_rows_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="oversight export"):
        load_runs([tmp_path / "empty"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "sft.jsonl").write_text('{"messages": [{"role": "user", "content": "q"}]}\n')
    with pytest.raises(InputError, match=r"sft.jsonl:1: an SFT row needs"):
        load_runs([bad])
    (bad / "sft.jsonl").write_text("{not json\n")
    with pytest.raises(InputError, match=r"sft.jsonl:1: not valid JSON"):
        load_runs([bad])


def test_settings_from_yaml_with_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("learning_rate: 0.001\nbatch_size: 2\nlora: {r: 4, target_modules: [q_proj]}\n")
    s = load_settings(SFTSettings, cfg, batch_size=3, model=None)
    assert s.learning_rate == 0.001 and s.batch_size == 3
    assert s.lora == LoraSettings(r=4, target_modules=("q_proj",))
    assert load_settings(DPOSettings, None, lora=True).lora == LoraSettings()
    cfg.write_text("batch_size: 2\nlearnin_rate: 1\nlora: {rank: 4}\nbatch_size: 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(SFTSettings, cfg)
    assert [str(p).split(";")[0] for p in info.value.problems] == [
        "line 2: learnin_rate: unknown key (did you mean 'learning_rate'?)",
        "line 3: lora.rank: unknown key",
        "line 4: batch_size: duplicate key 'batch_size' (first defined at line 1)",
    ]
    assert "valid keys: " in str(info.value) and str(cfg) in str(info.value)
    cfg.write_text("- a\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_settings(SFTSettings, cfg)


def test_every_setting_has_help() -> None:
    import dataclasses

    for cls in (SFTSettings, DPOSettings, LoraSettings):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"


def _tiny(tmp_path: Path) -> tuple[Any, Any, Path]:
    tok = tiny_tokenizer()
    model_dir = tmp_path / "tiny-model"
    tiny_llama(len(tok)).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    return tok, tiny_llama(len(tok)), model_dir


def _assert_loadable(final: Path, tok: Any) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(final)
    loaded_tok = AutoTokenizer.from_pretrained(final)
    assert loaded_tok.chat_template == tok.chat_template
    ids = loaded_tok("hi", return_tensors="pt")["input_ids"]
    out = model.generate(
        ids, max_new_tokens=2, do_sample=False, pad_token_id=loaded_tok.pad_token_id
    )
    assert out.shape[1] == ids.shape[1] + 2


def test_sft_trains_and_writes_a_loadable_model(runs: list[Path], tmp_path: Path) -> None:
    import torch

    from oversight.training.sft import train_sft

    tok, model, _ = _tiny(tmp_path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = SFTSettings(
        output_dir=str(tmp_path / "sft"), max_steps=3, batch_size=2, learning_rate=1e-2,
        eval_fraction=0.2, logging_steps=1, save_steps=2, max_length=128,
    )  # fmt: skip
    result = train_sft(runs, settings, model=model, tokenizer=tok, embeddings=False)
    assert result.train_rows + result.eval_rows == 5
    assert (tmp_path / "sft" / "checkpoint-2").is_dir()
    assert (tmp_path / "sft" / "dataset_card.md").exists()
    card = json.loads((tmp_path / "sft" / "dataset_card.json").read_text())
    assert card["sft_rows"]["train"] == result.train_rows
    assert "train_loss" in result.metrics
    changed = any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert changed
    _assert_loadable(result.model_dir, tok)


def test_sft_with_lora_merges_adapters(runs: list[Path], tmp_path: Path) -> None:
    from oversight.training.sft import train_sft

    tok, model, _ = _tiny(tmp_path)
    settings = SFTSettings(
        output_dir=str(tmp_path / "lora"), max_steps=2, batch_size=2, eval_fraction=0.0,
        lora=LoraSettings(r=2, target_modules=("q_proj", "v_proj")), max_length=128,
    )  # fmt: skip
    result = train_sft(runs, settings, model=model, tokenizer=tok, embeddings=False)
    names = json.dumps(sorted((result.model_dir).glob("*")).__repr__())
    assert "adapter_config" not in names  # merged: a plain model directory
    _assert_loadable(result.model_dir, tok)


def test_dpo_trains_and_writes_a_loadable_model(runs: list[Path], tmp_path: Path) -> None:
    from oversight.training.dpo import train_dpo

    tok, model, _ = _tiny(tmp_path)
    settings = DPOSettings(
        output_dir=str(tmp_path / "dpo"), max_steps=2, batch_size=2, eval_fraction=0.0,
        logging_steps=1, max_length=128,
    )  # fmt: skip
    result = train_dpo(runs, settings, model=model, tokenizer=tok, embeddings=False)
    assert result.train_rows == 3
    assert any(k.startswith("rewards/") or "loss" in k for k in result.metrics)
    _assert_loadable(result.model_dir, tok)


def test_cli_train_sft_and_errors(runs: list[Path], tmp_path: Path) -> None:
    from oversight.cli.train import register

    _, _, model_dir = _tiny(tmp_path)
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # a group, like the real `oversight` app
        pass

    cfg = tmp_path / "sft.yaml"
    cfg.write_text("batch_size: 2\nmax_length: 128\neval_fraction: 0\n")
    out = tmp_path / "cli-sft"
    res = CliRunner().invoke(
        app,
        ["train", "sft", *map(str, runs), "--config", str(cfg), "--output", str(out),
         "--model", str(model_dir), "--max-steps", "1", "--fp32", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["model_dir"] == str(out / "final")
    # --fp32 beats the machine's choice, and the choice is recorded with its reason.
    assert result["dtype"]["dtype"] == "float32"
    assert result["dtype"]["explicit"] is True
    recorded = json.loads((out / "train_metrics.json").read_text())["dtype"]
    assert recorded["reason"] == "float32 set by the bf16 setting"
    assert "cpu_flags" in recorded["machine"]
    res = CliRunner().invoke(
        app, ["train", "dpo", str(tmp_path / "nope"), "--model", str(model_dir)]
    )
    assert res.exit_code == 2
    assert "no sft.jsonl or dpo.jsonl" in res.output


def test_attention_kernel_setting_reaches_the_loaded_model(tmp_path: Path) -> None:
    from oversight.training._common import load_model_and_tokenizer

    _, _, model_dir = _tiny(tmp_path)
    model, _ = load_model_and_tokenizer(str(model_dir), attn="eager")
    assert model.config._attn_implementation == "eager"
    model, _ = load_model_and_tokenizer(str(model_dir))
    assert model.config._attn_implementation == "sdpa"  # the CPU default
    settings = load_settings(SFTSettings, None, attn_implementation="eager")
    assert settings.attn_implementation == "eager"


def test_training_loads_fp32_weights_from_a_bf16_checkpoint(tmp_path: Path) -> None:
    """bf16 weights train many times slower than fp32 on CPUs without bf16 units; bf16 enters
    training only as autocast (issue 12), so the weights are fp32 whatever the checkpoint holds."""
    import torch

    from oversight.training._common import load_model_and_tokenizer

    tok = tiny_tokenizer()
    model_dir = tmp_path / "bf16-model"
    tiny_llama(len(tok)).to(torch.bfloat16).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    model, _ = load_model_and_tokenizer(str(model_dir))
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize("bf16", [True, False])
def test_training_precision_follows_the_setting_and_reaches_trl(
    bf16: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oversight.training._common import training_dtype

    monkeypatch.delenv("OVERSIGHT_DTYPE", raising=False)
    settings = SFTSettings(bf16=bf16, eval_fraction=0.0)
    choice = training_dtype(settings)
    assert (choice.bf16, choice.explicit) == (bf16, True)
    args = settings.to_trl(device_bf16=choice.bf16)
    assert args.bf16 is bf16


def test_training_precision_defaults_to_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    from oversight.devices import default_device, pick_dtype
    from oversight.training._common import training_dtype

    monkeypatch.delenv("OVERSIGHT_DTYPE", raising=False)
    choice = training_dtype(DPOSettings())
    assert not choice.explicit
    assert choice.dtype == pick_dtype(default_device()).dtype


def test_float16_is_refused_for_training(monkeypatch: pytest.MonkeyPatch) -> None:
    from oversight.training._common import training_dtype

    monkeypatch.setenv("OVERSIGHT_DTYPE", "float16")
    with pytest.raises(ConfigError, match="OVERSIGHT_DTYPE"):
        training_dtype(SFTSettings())
