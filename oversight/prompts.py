"""Prompt sets: JSONL (one object per line) or plain text (one prompt per line).

A JSONL line is ``{"id": ..., "prompt": "..."}`` or ``{"id": ..., "messages": [{"role":
"user", "content": ...}, ...]}``, with optional ``context`` and ``labels`` dicts. The context's
``region``, ``user`` (profile) and ``surface`` (product surface) may also be given at the top
level; they select per-request constitutions (:mod:`oversight.governance`) and are checked
(one short value per key, no nesting).

Conversations may use tools, in OpenAI's chat shape: an assistant turn with
``"tool_calls": [{"id": ..., "function": {"name": ..., "arguments": "<JSON object>"}}]`` (or
``{"id", "name", "arguments": {...}}``) and a ``{"role": "tool", "tool_call_id": ..., "name": ...,
"content": ...}`` turn with the result; a result given as a JSON object or array is kept as its
JSON text, and a result string that starts with ``{`` or ``[`` must be valid JSON.

A line that cannot be used (invalid UTF-8, NUL bytes, empty, over the size limit, malformed
JSON, malformed tool calls or results) does not stop the run: it becomes a
:class:`PromptProblem` that the runtime journals as a ``Failure`` for that prompt, naming the
file, the line (and the turn) and the fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _json_problem(exc: json.JSONDecodeError) -> str:
    return f"malformed JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"


def _tool_call(raw: object, where: str) -> dict[str, Any] | str:
    """One tool call in the internal shape ``{"id", "name", "arguments": {...}}``, or the
    problem."""
    if not isinstance(raw, dict):
        return f"{where}: a tool call must be an object with 'name' and 'arguments'"
    function = raw.get("function", raw)
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        return f"{where}: a tool call needs a 'name' (or 'function': {{'name': ...}})"
    name, arguments = function["name"], function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            return (
                f"{where}: the arguments of tool call {name!r} are {_json_problem(exc)}; write "
                "them as a JSON object (or a string holding one)"
            )
    if not isinstance(arguments, dict):
        return f"{where}: the arguments of tool call {name!r} must be a JSON object"
    return {"id": str(raw.get("id", "")), "name": name, "arguments": arguments}


def _check_tool_turns(turns: list[dict[str, Any]], where: str) -> list[dict[str, Any]] | str:
    """The turns with tool calls parsed and tool results as text, or the first problem (naming
    the turn and the fix)."""
    out: list[dict[str, Any]] = []
    call_ids: set[str] = set()
    for number, turn in enumerate(turns, start=1):
        at = f"{where}: turn {number}"
        turn = dict(turn)
        if "tool_calls" in turn:
            raw_calls = turn["tool_calls"]
            if not isinstance(raw_calls, list):
                return f"{at}: 'tool_calls' must be a list of tool calls"
            calls = []
            for raw in raw_calls:
                call = _tool_call(raw, at)
                if isinstance(call, str):
                    return call
                calls.append(call)
                call_ids.add(call["id"])
            turn["tool_calls"] = calls
            turn.setdefault("content", "")
            if turn["content"] is None:  # OpenAI's shape: no text beside the calls
                turn["content"] = ""
        if turn.get("role") == "tool":
            content = turn.get("content")
            if isinstance(content, dict | list):
                turn["content"] = json.dumps(content, ensure_ascii=False)
            elif isinstance(content, str) and content.lstrip()[:1] in ("{", "["):
                try:
                    json.loads(content)
                except json.JSONDecodeError as exc:
                    tool = turn.get("name") or "the tool"
                    return (
                        f"{at}: the result of {tool} is {_json_problem(exc)}; fix the JSON, or "
                        "give the result as plain text that does not start with '{' or '['"
                    )
            call_id = turn.get("tool_call_id")
            if call_id and str(call_id) not in call_ids:
                return (
                    f"{at}: tool result for call {call_id!r}, but no earlier assistant turn "
                    "made that call; match 'tool_call_id' to a 'tool_calls' id"
                )
        out.append(turn)
    return out


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
    checked = _check_tool_turns(turns, where)
    if isinstance(checked, str):
        return PromptProblem(prompt_id, checked)
    turns = checked
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
    messages = []
    for number, turn in enumerate(turns, start=1):
        try:
            messages.append(Turn(**turn))
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"])
            return PromptProblem(
                prompt_id,
                f"{where}: turn {number}: {field + ': ' if field else ''}{error['msg']}",
            )
        except TypeError as exc:
            return PromptProblem(prompt_id, f"{where}: turn {number}: {exc}")
    try:
        return Prompt(
            prompt_id=prompt_id,
            messages=tuple(messages),
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
