"""Jailbreak signals: undo obfuscation, then spot the framings that try to get around a policy.

:func:`normalize` returns every readable variant of a text (the text itself with zero-width
characters removed and homoglyphs folded, plus whatever base64 / hex / rot13 / leetspeak payload
it hides), so the classifier sees the decoded request as well as the wrapper.
:func:`detect_signals` names the techniques it finds with the
:data:`oversight.messages.JailbreakSignal` vocabulary:

``encoding``
    base64, hex or rot13 payloads that decode to readable text.
``obfuscation``
    zero-width characters, homoglyphs (Cyrillic/Greek letters inside Latin words), leetspeak,
    or an adversarial gibberish suffix (GCG-style token soup).
``injection``
    instruction override: "ignore previous instructions", "disregard your rules", fake system
    prompts, rules forbidding refusal phrases. :func:`scan_output` looks for the same inside
    model or tool outputs (indirect prompt injection).
``roleplay``
    a persona or fiction wrapper *combined with* a cue that it exists to evade rules (DAN,
    developer mode, "you are now an unfiltered AI", "in a world with no laws"). Plain role-play
    ("act as a travel guide") is not a signal.
``tool_injection``
    instructions planted inside a tool result (:mod:`oversight.safety.tools`): the tool's output
    is data, and a sentence in it that addresses the assistant is an attack on it.
``multi_turn``
    set by :func:`oversight.safety.classifier.assess_conversation` when earlier turns carry the
    harm that the last turn only continues.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from ..messages import JailbreakSignal

ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"), None)
"""Characters that render as nothing and are used to split trigger words."""

# Cyrillic and Greek letters that look like Latin ones.
_HOMOGLYPHS = str.maketrans(
    "АВСЕНІЈКМОРЅТХУаеіјорсухѕԁɡΑΒΕΖΗΙΚΜΝΟΡΤΥΧαορνι",
    "ABCEHIJKMOPSTXYaeijopcyxsdgABEZHIKMNOPTYXaopvi",
)
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
_LEET_WORD = re.compile(
    r"(?<![\w@$.])[a-z013457@$]*[a-z][013457@$]+[a-z][a-z013457@$]*(?![\w@$]|\.\w)", re.I
)
_ZW_IN_WORD = re.compile(r"\w[\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e]+\w")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[\s:]?){8,}\b")
_WORD = re.compile(r"[a-z]+")
_COMMON = frozenset(
    re.findall(
        r"\w+",
        "the a an and or to of in on for with how what is are you i me my make do can write "
        "give tell explain step steps get from this that it your please into at by be as who "
        "where why build create use steal kill hack bomb drug weapon money people person someone ",
    )
)

_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}\b(?:previous|prior|above|all|"
    r"earlier|your|any|the)\b[^.\n]{0,30}\b(?:instructions?|rules?|guidelines?|prompts?|"
    r"directives?|polic(?:y|ies)|restrictions?|programming)\b"
    r"|\bnew (?:system )?instructions?\s*:"
    r"|^\s*(?:\[?system\]?|<\|?system\|?>)\s*:"
    r"|\bnever (?:ever )?(?:refuse|say (?:no|that you can'?t)|use (?:phrases|words) like)"
    r"|\byou (?:must|will) (?:always )?(?:comply|answer) (?:with )?(?:any|every|all)"
    r"|\bdo not (?:include|add|give) (?:any )?(?:warnings?|disclaimers?)",
    re.I | re.M,
)
_PERSONA = re.compile(
    r"\b(?:you are now|from now on,? you|pretend (?:to be|you are|that you)|act as|"
    r"role-?play as|stay in character|in this hypothetical story|imagine you are|"
    r"you will (?:now )?(?:play|act|be)|simulate|in a (?:fictional|hypothetical) world|"
    r"write a (?:story|novel|scene|script) (?:in which|where))\b",
    re.I,
)
_EVASION = re.compile(
    r"\b(?:DAN|do anything now|developer mode|jailbr(?:eak|oken)|unfiltered|uncensored|amoral|"
    r"unrestricted|no (?:ethical|moral)|without (?:any )?(?:restrictions?|filters?|limits?|"
    r"censorship|ethics|morals?|rules)|no (?:restrictions?|filters?|limits|rules|laws|"
    r"guidelines)|not bound by|free from (?:the )?(?:rules|restrictions|policies)|"
    r"(?:ethical|moral) (?:implications|guidelines|constraints)|content polic(?:y|ies)|"
    r"never refuses?|always (?:answers?|complies|responds)|openai|anthropic)\b",
    re.I,
)
_GIBBERISH_TOKEN = re.compile(r"\S*(?:[a-z][A-Z]|[\\\[\]{}<>|^~*_#$@=+]|[^\x00-\x7f])\S*")


@dataclass(frozen=True, slots=True)
class Normalized:
    """A text after de-obfuscation, with the readable variants it hides."""

    text: str
    """The input with zero-width characters removed and homoglyphs folded to Latin."""
    variants: tuple[str, ...]
    """``text`` first, then every decoded payload (base64, hex, rot13, leetspeak)."""
    signals: tuple[JailbreakSignal, ...]
    """``encoding`` and/or ``obfuscation`` when something had to be undone."""


def _readable(text: str) -> bool:
    if len(text) < 4 or any(unicodedata.category(c) == "Cc" and c not in "\n\t\r" for c in text):
        return False
    printable = sum(c.isprintable() or c.isspace() for c in text)
    return printable / len(text) > 0.95 and sum(c.isalpha() for c in text) / len(text) > 0.5


def _english_score(text: str) -> float:
    words = _WORD.findall(text.lower())
    return sum(w in _COMMON for w in words) / len(words) if words else 0.0


def _decode_base64(text: str) -> list[str]:
    out = []
    for m in _BASE64.finditer(text):
        chunk = m.group(0)
        try:
            raw = base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if _readable(decoded) and " " in decoded.strip():
            out.append(decoded)
    return out


def _decode_hex(text: str) -> list[str]:
    out = []
    for m in _HEX.finditer(text):
        digits = re.sub(r"[\s:]", "", m.group(0))
        try:
            decoded = bytes.fromhex(digits[: len(digits) // 2 * 2]).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
        if _readable(decoded):
            out.append(decoded)
    return out


def _decode_rot13(text: str) -> list[str]:
    decoded = codecs.decode(text, "rot13")
    asked = re.search(r"\brot-?13\b", text, re.I) is not None
    if asked or _english_score(decoded) > _english_score(text) + 0.2:
        return [decoded]
    return []


def _unleet(text: str) -> str | None:
    words = _LEET_WORD.findall(text)
    if not words:
        return None
    return _LEET_WORD.sub(lambda m: m.group(0).translate(_LEET), text)


def normalize(text: str) -> Normalized:
    """De-obfuscate ``text``: the cleaned text and every payload it decodes to."""
    signals: list[JailbreakSignal] = []
    cleaned = text.translate(ZERO_WIDTH)
    if _ZW_IN_WORD.search(text):
        signals.append("obfuscation")
    folded = cleaned.translate(_HOMOGLYPHS)
    if folded != cleaned and re.search(r"[A-Za-z]", cleaned):
        signals.append("obfuscation")
    folded = unicodedata.normalize("NFKC", folded)
    variants = [folded]
    decoded = _decode_base64(folded) + _decode_hex(folded) + _decode_rot13(folded)
    if decoded:
        signals.append("encoding")
        variants.extend(decoded)
    unleet = _unleet(folded)
    if unleet is not None and unleet != folded:
        signals.append("obfuscation")
        variants.append(unleet)
    return Normalized(folded, tuple(dict.fromkeys(variants)), tuple(dict.fromkeys(signals)))


def has_adversarial_suffix(text: str) -> bool:
    """Token soup at the end of a prompt (GCG / random-search suffixes)."""
    if "```" in text or "def " in text:
        return False
    tail = text[-240:]
    tokens = tail.split()
    if len(tokens) < 8:
        return False
    odd = sum(bool(_GIBBERISH_TOKEN.fullmatch(t)) for t in tokens)
    non_ascii = sum(not c.isascii() for c in tail) / len(tail)
    return odd / len(tokens) > 0.25 or (non_ascii > 0.05 and odd / len(tokens) > 0.15)


def detect_signals(text: str) -> tuple[JailbreakSignal, ...]:
    """The jailbreak techniques visible in one user message."""
    norm = normalize(text)
    found: list[JailbreakSignal] = list(norm.signals)
    body = "\n".join(norm.variants)
    if _INJECTION.search(body):
        found.append("injection")
    if (_PERSONA.search(body) and _EVASION.search(body)) or len(_EVASION.findall(body)) >= 3:
        found.append("roleplay")
    if has_adversarial_suffix(norm.text):
        found.append("obfuscation")
    return tuple(dict.fromkeys(found))


def scan_output(text: str) -> tuple[JailbreakSignal, ...]:
    """Prompt injection carried by a model or tool output (e.g. a fetched page)."""
    body = "\n".join(normalize(text).variants)
    found: list[JailbreakSignal] = []
    if _INJECTION.search(body):
        found.append("injection")
    if re.search(
        r"\b(?:assistant|AI|model)\b[^.\n]{0,40}\bmust (?:now )?(?:send|reveal|run|email)",
        body,
        re.I,
    ):
        found.append("tool_misuse")
    return tuple(found)


def conversation_signals(turns: Sequence[tuple[str, str]]) -> tuple[JailbreakSignal, ...]:
    """Signals over a whole conversation of ``(role, content)`` turns.

    User turns are scanned for jailbreak framings; assistant and tool turns for injected
    instructions (an injection there means an earlier output tries to steer the model); a tool
    turn with a planted instruction adds ``tool_injection``.
    """
    from .tools import injected_spans

    found: list[JailbreakSignal] = []
    for role, content in turns:
        found.extend(detect_signals(content) if role == "user" else scan_output(content))
        if role == "tool" and injected_spans(content):
            found.append("tool_injection")
    return tuple(dict.fromkeys(found))
