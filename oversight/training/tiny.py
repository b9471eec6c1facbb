"""Tiny offline test doubles: a byte-level tokenizer with a ChatML template and a tiny Llama.

Nothing is downloaded: the tokenizer's vocabulary is the 256 byte symbols plus three special
tokens, and the model is built from a config with random weights. Used by the tests and by
``benchmarks/train_gpu.py --tiny`` on machines without a GPU; the SmolLM2-shaped configs give the
benchmarks real model shapes with random weights.
"""

from __future__ import annotations

from typing import Any

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer() -> Any:
    """A ``PreTrainedTokenizerFast`` over bytes (vocab 259) with a ChatML chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
    )
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    fast.chat_template = CHATML
    return fast


def tiny_llama(
    vocab_size: int, *, hidden: int = 32, layers: int = 2, heads: int = 4, seed: int = 0, **kw: Any
) -> Any:
    """A random-weight ``LlamaForCausalLM`` small enough to train in a test."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        **kw,
    )
    return LlamaForCausalLM(config)


def smollm2_360m_config(tokenizer: Any, **kw: Any) -> Any:
    """A ``LlamaConfig`` shaped like SmolLM2-360M (random weights when built) for ``tokenizer``.

    The GPU benchmarks (``benchmarks/train_gpu.py``, ``benchmarks/pipeline.py --random-360m``)
    use it: no weights can be downloaded there, and throughput depends on the shape only.
    """
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
        num_attention_heads=15, num_key_value_heads=5, max_position_embeddings=8192,
        rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **kw,
    )  # fmt: skip


def smollm2_135m_config(tokenizer: Any, **kw: Any) -> Any:
    """A ``LlamaConfig`` shaped like SmolLM2-135M (the embedded default) for ``tokenizer``.

    ``benchmarks/train_cpu.py --random-init`` uses it when the cached weights are not wanted:
    a training step costs the same whatever the weights are.
    """
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
        rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **kw,
    )  # fmt: skip
