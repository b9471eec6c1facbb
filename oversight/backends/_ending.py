"""How a generated answer ended, and answers that end on a whole sentence.

Small models loop. SmolLM2-135M-Instruct, asked the main job's 53 prompts with room for 256
new tokens, ran to the limit on 31 of them, most by repeating one phrase or list item until the
limit ("a fleeting moment of beauty, a fleeting moment of beauty, ..."). Those tokens cost time
and teach nothing: an SFT row built from such an answer teaches the loop, or (cut at a smaller
limit) an answer that stops mid-sentence. So a backend may stop a sequence as soon as it repeats
an ``n``-token stretch it already wrote (``finish == "repetition"``), keep the text before the
repeat, and trim it to its last whole sentence; an answer the token limit cut
(``finish == "length"``) is trimmed the same way by the agent that keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

Finish = Literal["stop", "length", "repetition"]
"""``stop``: the model ended the answer (or a stop string did); ``length``: the token limit cut
it; ``repetition``: it began repeating itself and was stopped there."""

_END = re.compile(r"(?<![0-9])[.!?][)\"'\]\u201d\u2019*]*(?=\s|$)|```\s*$|\n", re.MULTILINE)
"""A sentence end (not a list number like ``3.``), a closing code fence, or a line break."""


def first_repeat(tokens: Sequence[int], n: int) -> int | None:
    """Where the first ``n``-token stretch that already occurred earlier in ``tokens`` begins
    (its second occurrence), or None. The first occurrence stays whole before that index."""
    if n <= 0:
        return None
    seen: set[tuple[int, ...]] = set()
    for i in range(len(tokens) - n + 1):
        window = tuple(tokens[i : i + n])
        if window in seen:
            return i
        seen.add(window)
    return None


def whole_sentences(text: str) -> str:
    """``text`` up to its last complete sentence or line, right-stripped; empty when no
    sentence or line of it is complete (the caller decides what a stub is worth)."""
    text = text.rstrip()
    if not text:
        return ""
    ends = [m.end() for m in _END.finditer(text)]
    if not ends:
        return ""
    return text[: ends[-1]].rstrip()


__all__ = ["Finish", "first_repeat", "whole_sentences"]
