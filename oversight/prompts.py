"""Prompt sets: JSONL (one object per line) or plain text (one prompt per line).

A JSONL line is ``{"id": ..., "prompt": "..."}`` or ``{"id": ..., "messages": [{"role":
"user", "content": ...}, ...]}``, with optional ``context`` and ``labels`` dicts. The context's
``region``, ``user`` (profile) and ``surface`` (product surface) may also be given at the top
level; they select per-request constitutions (:mod:`oversight.governance`) and are checked
(one short value per key, no nesting). A line that
cannot be used (invalid UTF-8, NUL bytes, empty, over the size limit, malformed JSON) does not
stop the run: it becomes a :class:`PromptProblem` that the runtime journals as a ``Failure``
for that prompt, naming the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from .errors import InputError
from .governance import CONTEXT_SHORTHANDS, check_context
from .messages import Prompt, Turn
from .paths import DATA_DIR

MAX_PROMPT_CHARS = 32_000
"""Default limit on a prompt's total characters (a 1 MB prompt is refused, not truncated)."""

BUILTIN_PROMPTS = DATA_DIR / "prompts" / "default.jsonl"


@dataclass(frozen=True)
class PromptProblem:
    """A prompt line that cannot be used."""

    prompt_id: str
    """``<file>:<line>``, stable across runs (used for resume)."""
    message: str
    """What is wrong and how to fix it."""


def _check_text(text: str, where: str, limit: int) -> str | None:
    if "\x00" in text:
        return f"{where}: NUL byte in the prompt; remove it (binary data is not a prompt)"
    if not text.strip():
        return f"{where}: empty prompt; remove the line or write a request"
    if len(text) > limit:
        return (
            f"{where}: prompt of {len(text):,} characters exceeds the limit of {limit:,}; "
            "shorten it or raise --max-prompt-chars"
        )
    return None


def parse_prompt_line(
    raw: bytes, *, source: str, number: int, jsonl: bool, limit: int = MAX_PROMPT_CHARS
) -> Prompt | PromptProblem:
    where = f"{source}:{number}"
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return PromptProblem(
            where, f"{where}: invalid UTF-8 at byte {exc.start}; re-encode the file as UTF-8"
        )
    if not jsonl:
        problem = _check_text(line, where, limit)
        if problem:
            return PromptProblem(where, problem)
        return Prompt(prompt_id=where, messages=(Turn(role="user", content=line.strip()),))
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return PromptProblem(where, f"{where}: malformed JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(obj, dict):
        return PromptProblem(where, f"{where}: expected a JSON object with 'prompt' or 'messages'")
    prompt_id = str(obj.get("id", where))
    if "messages" in obj:
        turns = obj["messages"]
    elif "prompt" in obj:
        turns = [{"role": "user", "content": obj["prompt"]}]
    else:
        return PromptProblem(prompt_id, f"{where}: missing key 'prompt' (or 'messages')")
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        return PromptProblem(
            prompt_id, f"{where}: 'messages' must be a list of role/content objects"
        )
    text = "".join(str(t.get("content", "")) for t in turns)
    problem = _check_text(text, where, limit)
    if problem:
        return PromptProblem(prompt_id, problem)
    raw_context = obj.get("context")
    shorthand = {k: obj[k] for k in CONTEXT_SHORTHANDS if k in obj}
    if shorthand and (raw_context is None or isinstance(raw_context, dict)):
        both = sorted(set(shorthand) & set(raw_context or {}))
        if both:
            return PromptProblem(
                prompt_id,
                f"{where}: {both[0]!r} is given both at the top level and in 'context'; keep one",
            )
        raw_context = {**(raw_context or {}), **shorthand}
    context = check_context(raw_context, where)
    if isinstance(context, str):
        return PromptProblem(prompt_id, context)
    try:
        return Prompt(
            prompt_id=prompt_id,
            messages=tuple(Turn(**t) for t in turns),
            context=context,
            labels={str(k): str(v) for k, v in (obj.get("labels") or {}).items()},
        )
    except (ValidationError, TypeError) as exc:
        return PromptProblem(prompt_id, f"{where}: invalid prompt: {exc}".splitlines()[0])


def load_prompts(
    path: str | Path | None = None, *, limit: int = MAX_PROMPT_CHARS
) -> list[Prompt | PromptProblem]:
    """Read a prompt file (default: the built-in set). Raises :class:`InputError` only when the
    file itself cannot be read; bad lines come back as :class:`PromptProblem`."""
    file = Path(path) if path is not None else BUILTIN_PROMPTS
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InputError(f"{file}: cannot read the prompt file ({exc.strerror})") from None
    jsonl = file.suffix in (".jsonl", ".json")
    out: list[Prompt | PromptProblem] = []
    seen: set[str] = set()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        item = parse_prompt_line(raw, source=file.name, number=number, jsonl=jsonl, limit=limit)
        if item.prompt_id in seen:
            item = PromptProblem(
                f"{file.name}:{number}",
                f"{file.name}:{number}: duplicate prompt id {item.prompt_id!r}; ids must be unique",
            )
        seen.add(item.prompt_id)
        out.append(item)
    if not out:
        raise InputError(f"{file}: no prompts found; write one prompt per line")
    return out
