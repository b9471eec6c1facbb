"""Self-critique rows: the critique as a training target, and critique-then-revision.

The constitutional AI recipe teaches a model two things: the corrected answer (``sft.jsonl``)
and the pattern that produces it, critiquing an answer against a principle and revising it
accordingly. ``oversight export RUN_DIR --self-critique`` writes the second kind into a separate
file, ``self_critique.jsonl``, in the conversational SFT format (``{"messages": [...],
"provenance": {...}}``, loss on the final assistant turn), so ``oversight train sft
runs/a/self_critique.jsonl`` trains on it:

* **critique rows** (``row_kind: critique``)::

      user: <prompt>            assistant: <candidate>
      user: <CRITIQUE_REQUEST for one principle>
      assistant: <the critique>                                   <- target

  one per :class:`~oversight.messages.Critique` whose verdict is ``violated`` or ``uncertain``,
  plus a seeded sample (``satisfied_rate``) of ``satisfied`` ones;
* **critique-then-revision rows** (``row_kind: critique_revision``)::

      user: <prompt>            assistant: <candidate>
      user: <MULTI_CRITIQUE_REQUEST>   assistant: <the critiques of that candidate>
      user: <REVISION_REQUEST>
      assistant: <the revision>                                   <- target

  one per revision on the path to the episode's final answer (a revision that lost teaches
  nothing worth copying; a ``template`` revision is the fallback sentence, not a revision).

A critique becomes a target only when it is written text: at least :data:`MIN_WORDS` words once
the probability note (``P(violates harm) = 0.90``) is removed, and a quoted span, when the
critique has one, found verbatim in the candidate. Everything else is counted by reason in
:class:`SelfCritiqueCounts`. Only finished episodes count (consensus, or a human decision); a
critique that a human decision contradicts (it says the answer the reviewer chose violates a
principle) is dropped.

Critiques are internal reasoning: these rows exist only in this opt-in file, never in
``sft.jsonl`` or ``dpo.jsonl`` (``tests/test_self_critique.py`` plants canaries to check).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .messages import (
    Adjudication,
    Consensus,
    Critique,
    Draft,
    Envelope,
    Prompt,
    Resolution,
    Revision,
)

FILE_NAME = "self_critique.jsonl"
"""The opt-in file in the run folder."""
MIN_WORDS = 8
"""A critique with fewer words (after the probability note is removed) is not a target."""
DEFAULT_SATISFIED_RATE = 0.1
"""Share of ``satisfied`` critiques (with text) kept, so the model also learns to say "fine"."""

CRITIQUE_REQUEST = (
    'Review your last response against the principle "{principle}". Say whether it violates the '
    "principle, quote the part that does, and say what a better answer would do."
)
MULTI_CRITIQUE_REQUEST = (
    "Review your last response against these principles: {principles}. Identify any "
    "violations, quote the parts that violate them, and explain what a better answer would do."
)
REVISION_REQUEST = (
    "Rewrite your response according to the critique: remove what violates the principles, keep "
    "what is safe and useful, and where you decline, point to the legitimate alternative."
)

_PROBABILITY_NOTE = re.compile(r"P\(violates [^)]*\)\s*=\s*[0-9.]+[;,.:]?\s*")
_WORD = re.compile(r"[^\W\d_]{2,}")
_REVISION_SOURCES = ("model", "few_shot", "best_of_n")


@dataclass
class SelfCritiqueCounts:
    """What :func:`self_critique_rows` wrote and skipped, over a whole run."""

    critique_rows: int = 0
    revision_rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    """Reason -> count: ``no_text`` (a number, not a written critique), ``quote_not_in_candidate``,
    ``satisfied_not_sampled``, ``overruled_by_human``, ``episode_not_final``,
    ``template_revision``, ``revision_without_critique``."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "critique_rows": self.critique_rows,
            "revision_rows": self.revision_rows,
            "skipped": dict(sorted(self.skipped.items())),
        }


def critique_text(critique: Critique) -> str:
    """The written critique: the rationale, plus the quoted span and the suggestion when the
    message carries them and the rationale does not already say them. The probability note
    (``P(violates x) = 0.9``) is removed: it is a score, not a critique."""
    text = _PROBABILITY_NOTE.sub("", critique.rationale).strip()
    quote = str(getattr(critique, "quote", "") or "").strip()
    suggestion = str(getattr(critique, "suggestion", "") or "").strip()
    parts = [text] if text else []
    if quote and quote not in text:
        parts.append(f'Quote: "{quote}"')
    if suggestion and suggestion not in text:
        parts.append(f"A better answer would: {suggestion}")
    return "\n".join(parts)


def is_written(text: str) -> bool:
    """At least :data:`MIN_WORDS` words (two or more letters each)."""
    return len(_WORD.findall(text)) >= MIN_WORDS


def _sampled(rate: float, *keys: str) -> bool:
    digest = hashlib.sha256("\x1f".join(keys).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def _turns(prompt: Prompt) -> list[dict[str, str]]:
    return [t.chat() for t in prompt.messages]


def self_critique_rows(
    envs: list[Envelope],
    counts: SelfCritiqueCounts,
    *,
    satisfied_rate: float = DEFAULT_SATISFIED_RATE,
    principle_names: Mapping[tuple[str, str], str] | None = None,
) -> list[dict[str, Any]]:
    """The self-critique rows of one episode's envelopes; ``counts`` is updated in place.

    ``principle_names`` maps ``(principle id, version)`` to a readable name
    (``Avoid harmful instructions``) used in the critique request; the id is used otherwise.
    """
    prompt_env = next((e for e in envs if isinstance(e.payload, Prompt)), None)
    if prompt_env is None or not isinstance(prompt_env.payload, Prompt):
        return []
    prompt = prompt_env.payload
    candidates: dict[str, tuple[str, Envelope]] = {}
    revisions: dict[str, Envelope] = {}
    critiques: list[Envelope] = []
    final: str | None = None
    human_choice: str | None = None
    finished = False
    strategy = "none"
    for env in envs:
        p = env.payload
        if isinstance(p, Draft):
            candidates[p.candidate_id] = (p.text, env)
        elif isinstance(p, Revision):
            candidates[p.candidate_id] = (p.text, env)
            revisions[p.candidate_id] = env
        elif isinstance(p, Critique):
            critiques.append(env)
        elif isinstance(p, Resolution):
            strategy = p.strategy
        elif isinstance(p, Consensus):
            final, finished = p.candidate_id, True
        elif isinstance(p, Adjudication):
            finished = True
            human_choice = p.choice if not p.edited_text else None
            final = human_choice
    if not finished:
        counts.skipped["episode_not_final"] += len(critiques)
        return []

    def name(pid: str, version: str) -> str:
        return (principle_names or {}).get((pid, version), pid)

    base: dict[str, Any] = {
        "run": prompt_env.run,
        "episode": prompt_env.episode,
        "prompt_id": prompt.prompt_id,
        "source": "self_critique",
        "strategy": strategy,
    }
    turns = _turns(prompt)
    rows: list[dict[str, Any]] = []
    written: dict[str, list[tuple[Envelope, Critique, str]]] = {}  # candidate -> usable ones
    for env in critiques:
        c = env.payload
        assert isinstance(c, Critique)
        if c.candidate_id not in candidates:
            continue
        candidate_text, candidate_env = candidates[c.candidate_id]
        text = critique_text(c)
        quote = str(getattr(c, "quote", "") or "").strip()
        if not is_written(text):
            counts.skipped["no_text"] += 1
            continue
        if quote and quote not in candidate_text:
            counts.skipped["quote_not_in_candidate"] += 1
            continue
        if c.verdict != "satisfied" and human_choice == c.candidate_id:
            counts.skipped["overruled_by_human"] += 1
            continue
        if c.verdict != "satisfied":
            written.setdefault(c.candidate_id, []).append((env, c, text))
        elif not _sampled(satisfied_rate, prompt.prompt_id, c.candidate_id, c.principle_id):
            counts.skipped["satisfied_not_sampled"] += 1
            continue
        request = CRITIQUE_REQUEST.format(principle=name(c.principle_id, c.principle_version))
        rows.append(
            {
                "messages": [
                    *turns,
                    {"role": "assistant", "content": candidate_text},
                    {"role": "user", "content": request},
                    {"role": "assistant", "content": text},
                ],
                "provenance": {
                    **base,
                    "row_kind": "critique",
                    "target_source": "critique",
                    "candidate_id": c.candidate_id,
                    "principle_id": c.principle_id,
                    "principle_version": c.principle_version,
                    "principle_versions": {c.principle_id: c.principle_version},
                    "verdict": c.verdict,
                    "critique_kind": str(getattr(c, "critique_kind", "") or "") or None,
                    "critic": env.sender,
                    "message_ids": {
                        "prompt": prompt_env.id,
                        "candidate": candidate_env.id,
                        "critiques": [env.id],
                    },
                },
            }
        )
        counts.critique_rows += 1

    # Critique-then-revision: the revisions on the path to the final answer.
    chain: list[Envelope] = []
    cursor = final
    while cursor in revisions and len(chain) <= len(revisions):
        chain.append(revisions[cursor])
        rev = revisions[cursor].payload
        assert isinstance(rev, Revision)
        cursor = rev.revises
    for rev_env in reversed(chain):
        rev = rev_env.payload
        assert isinstance(rev, Revision)
        if rev.source not in _REVISION_SOURCES:
            counts.skipped["template_revision"] += 1
            continue
        found = written.get(rev.revises, [])
        if rev.principle_ids:
            found = [f for f in found if f[1].principle_id in rev.principle_ids] or found
        if not found or rev.revises not in candidates:
            counts.skipped["revision_without_critique"] += 1
            continue
        before_text, before_env = candidates[rev.revises]
        found = sorted(found, key=lambda f: f[1].principle_id)
        pids = [(c.principle_id, c.principle_version) for _, c, _ in found]
        critique_block = "\n\n".join(
            f"{name(c.principle_id, c.principle_version)}: {text}" for _, c, text in found
        )
        rows.append(
            {
                "messages": [
                    *turns,
                    {"role": "assistant", "content": before_text},
                    {
                        "role": "user",
                        "content": MULTI_CRITIQUE_REQUEST.format(
                            principles=", ".join(f'"{name(pid, ver)}"' for pid, ver in pids)
                        ),
                    },
                    {"role": "assistant", "content": critique_block},
                    {"role": "user", "content": REVISION_REQUEST},
                    {"role": "assistant", "content": rev.text},
                ],
                "provenance": {
                    **base,
                    "row_kind": "critique_revision",
                    "target_source": rev.source,
                    "candidate_id": rev.candidate_id,
                    "revises": rev.revises,
                    "principle_versions": dict(sorted(pids)),
                    "message_ids": {
                        "prompt": prompt_env.id,
                        "candidate": before_env.id,
                        "critiques": [f[0].id for f in found],
                        "revision": rev_env.id,
                    },
                },
            }
        )
        counts.revision_rows += 1
    return rows
