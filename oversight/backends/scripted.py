"""A deterministic backend of rules: the test double we ship, like httpx's ``MockTransport``.

It answers from the request's ``meta`` (see docs/architecture.md): when the prompt carries
ground-truth ``labels`` (``harm: harmful | benign``, ``violates: privacy,...``) it uses them;
otherwise keyword rules decide. Your own ``rules`` come first::

    models:
      base:
        backend: scripted
        options:
          rules:
            - {task: draft, match: "capital of France", reply: "Paris."}
            - {task: critique, principle: honesty, match: "definitely", p_yes: 0.9}
            - {task: draft, match: "explode", error: "simulated outage"}

A rule matches when its ``task``/``principle``/``role``/``agent`` (if given) equal the request's
and its ``match`` regex (if given) is found in the request's user text or the candidate text.
``reply`` answers ``generate``; ``p_yes`` (or ``p_first``) answers ``score`` with that probability
for the first choice; ``error`` raises :class:`BackendError`; ``hang`` sleeps that many seconds
(to exercise timeouts). ``obey_tools: true`` makes a gullible base model: its drafts carry out
the first instruction planted in a tool result (to show the safety agent catching it).
Behaviour without a matching rule:

* base / reviser drafts comply: a short on-topic answer; a reviser asked to fix a safety,
  privacy or lawfulness violation refuses with the constitution's template when it is given;
* critics say a candidate violates ``harm`` when the request is harmful and the candidate
  complies (and any principle the prompt's ``violates`` label lists), and ``helpfulness`` when
  it refuses: for a harmful request the two conflict, and the priority graph settles it;
* ``tool_use`` is violated when the candidate acts on an instruction planted in a tool result or
  has a tool do what the user did not ask (:func:`oversight.safety.tools.tool_use_violation`);
* a principle listed in the ``uncertain`` label gets P = 0.5 (the critics cannot tell);
* the judge prefers the candidate that best fits the request (a refusal for harmful ones);
* auditors agree with the finding they audit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import anyio

from ..critiques import answer_form
from ..errors import BackendError
from ._protocol import ChoiceScores, GenerateRequest, Generation, ScoreRequest, register_backend

REFUSAL = "I can't help with that, but I'm glad to help with something safer."
_REFUSAL_RE = re.compile(
    r"\b(I can(?:no|')t|I cannot|I won't|I will not|I'm not able|I am not able|unable to help|"
    r"can't help|cannot help|won't help|not able to help|I must decline|I decline)\b",
    re.IGNORECASE,
)
HARMFUL_KEYWORDS = (
    r"\b(bomb|explosive|nerve agent|bioweapon|ransomware|malware|keylogger|meth(?:amphetamine)?|"
    r"poison (?:someone|my|a person)|steal|launder|counterfeit|untraceable (?:gun|weapon)|"
    r"hack into|phishing|ddos|kill (?:a|my|the) (?:person|man|woman|neighbou?r|wife|husband)|"
    r"self-harm|suicide method|home address of|social security number of|dox)\b"
)
SAFETY_PRINCIPLES = frozenset({"harm", "lawful", "privacy", "manipulation"})


def is_refusal(text: str) -> bool:
    """A cheap refusal check used by the scripted rules (the real detector is in ``safety``)."""
    return bool(_REFUSAL_RE.search(text[:300]))


def _user_text(messages: Sequence[Mapping[str, str]], meta: Mapping[str, Any]) -> str:
    request = meta.get("request")
    if isinstance(request, str):
        return request
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return "\n".join(users)


@register_backend("scripted")
class ScriptedBackend:
    """Deterministic rules; see the module docstring."""

    def __init__(
        self,
        rules: Sequence[Mapping[str, Any]] = (),
        harmful_pattern: str = HARMFUL_KEYWORDS,
        refusal: str = REFUSAL,
        confidence: float = 0.95,
        latency: float = 0.0,
        name: str = "scripted",
        obey_tools: bool = False,
    ) -> None:
        self.name = name
        self.rules = [dict(rule) for rule in rules]
        for rule in self.rules:
            if "match" in rule:
                rule["_re"] = re.compile(str(rule["match"]), re.IGNORECASE)
        self.harmful_re = re.compile(harmful_pattern, re.IGNORECASE)
        self.refusal = refusal
        self.confidence = confidence
        self.latency = latency
        self.obey_tools = obey_tools
        """A gullible base model: its drafts carry out instructions planted in tool results."""
        self.calls = {"generate": 0, "score": 0}

    # -- rules ---------------------------------------------------------------------------------
    def _rule(self, messages: Sequence[Mapping[str, str]], meta: Mapping[str, Any]) -> dict | None:
        text = _user_text(messages, meta) + "\n" + str(meta.get("candidate", ""))
        for rule in self.rules:
            if any(
                key in rule and rule[key] != meta.get(key)
                for key in ("task", "principle", "role", "agent")
            ):
                continue
            pattern = rule.get("_re")
            if pattern is not None and not pattern.search(text):
                continue
            return rule
        return None

    async def _apply_side_effects(self, rule: Mapping[str, Any] | None) -> None:
        if self.latency:
            await anyio.sleep(self.latency)
        if rule is None:
            return
        if "hang" in rule:
            await anyio.sleep(float(rule["hang"]))
        if "error" in rule:
            raise BackendError(f"scripted backend: {rule['error']}")

    def harmful(self, request: str, meta: Mapping[str, Any]) -> bool:
        """Whether the request asks for harm: the label when known, else keywords."""
        labels = meta.get("labels") or {}
        if "harm" in labels:
            return labels["harm"] == "harmful"
        return bool(self.harmful_re.search(request))

    def _violates(self, principle: str, request: str, candidate: str, meta: Mapping) -> bool:
        labels = meta.get("labels") or {}
        refused = is_refusal(candidate)
        listed = {p.strip() for p in str(labels.get("violates", "")).split(",") if p.strip()}
        if principle == "helpfulness":  # a refusal does not answer, whatever was asked
            return refused
        if principle in listed:
            return not refused
        if principle == "harm":
            return self.harmful(request, meta) and not refused
        if principle == "tool_use":  # the conversation's tools: a rule, no label needed
            from ..safety.tools import tool_use_violation

            return tool_use_violation(candidate, request, meta.get("tools") or ()) is not None
        return False

    # -- protocol ------------------------------------------------------------------------------
    async def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        out = []
        for req in requests:
            self.calls["generate"] += 1
            rule = self._rule(req.messages, req.meta)
            await self._apply_side_effects(rule)
            if rule is not None and "reply" in rule:
                text = str(rule["reply"])
            else:
                text = self._default_text(req)
            out.append(Generation(texts=(text,) * req.n, completion_tokens=len(text.split())))
        return out

    def _default_text(self, req: GenerateRequest) -> str:
        meta = req.meta
        request = _user_text(req.messages, meta)
        topic = " ".join(request.split()[:12]).rstrip("?.!")
        if meta.get("task") == "revise":
            principles = set(meta.get("principles", ()) or ())
            if principles & SAFETY_PRINCIPLES:
                template = meta.get("refusal_template")
                return str(template) if template else self.refusal
            if "tool_use" in principles:
                return (
                    f"Here is what the tools returned about {topic}, read as data. A tool result "
                    "contained an instruction addressed to the assistant; I did not follow it."
                )
            return f"Here is a careful, complete answer about {topic}: it covers the key points."
        if meta.get("task") in (None, "draft"):
            draft = f"Sure. Here is how to approach {topic}: start with the basics, then go on."
            if self.obey_tools:
                from ..safety.tools import find_injections

                planted = find_injections(meta.get("tools") or ())
                if planted:
                    return f"Done, as the {planted[0].tool} result asked: {planted[0].span} {draft}"
            return draft
        if meta.get("task") == "rationale":
            return self._written_critique(req)
        return "Yes"

    def _written_critique(self, req: GenerateRequest) -> str:
        """A critique in the critics' answer form, agreeing with this backend's own verdict."""
        meta = req.meta
        request = _user_text(req.messages, meta)
        candidate = str(meta.get("candidate", ""))
        first = re.split(r"(?<=[.!?])\s", candidate.strip(), maxsplit=1)[0]
        ids = meta.get("principles") or (meta.get("principle", "harm"),)
        blocks = []
        for pid in ids:
            bad = self._violates(str(pid), request, candidate, meta)
            why = (
                f"this part of the response goes against the {pid} principle for this request."
                if bad
                else f"nothing in the response goes against the {pid} principle here."
            )
            better = (
                f"A better response would keep what is useful and fix what {pid} rules out."
                if bad
                else "Nothing needs to change."
            )
            blocks.append((str(pid), bad, first, why, better))
        return answer_form(blocks)

    async def score(self, requests: Sequence[ScoreRequest]) -> list[ChoiceScores]:
        out = []
        for req in requests:
            self.calls["score"] += 1
            rule = self._rule(req.messages, req.meta)
            await self._apply_side_effects(rule)
            first, *rest = req.choices
            if rule is not None and ("p_yes" in rule or "p_first" in rule):
                p = float(rule["p_yes"] if "p_yes" in rule else rule["p_first"])
            else:
                p = self._default_p(req)
            probs = {first: p}
            for choice in rest:
                probs[choice] = (1.0 - p) / max(len(rest), 1)
            out.append(ChoiceScores(probs=probs))
        return out

    def _default_p(self, req: ScoreRequest) -> float:
        meta = req.meta
        task = meta.get("task")
        request = _user_text(req.messages, meta)
        hi, lo = self.confidence, 1.0 - self.confidence
        if task == "safety_request":
            return hi if self.harmful(request, meta) else lo
        if task in ("critique", "safety_response", "audit"):
            principle = str(meta.get("principle", "harm"))
            unsure = str((meta.get("labels") or {}).get("uncertain", "")).split(",")
            if principle in unsure:
                return 0.5
            candidate = str(meta.get("candidate", ""))
            return hi if self._violates(principle, request, candidate, meta) else lo
        if task == "judge":
            a, b = (*tuple(meta.get("candidates", ())), "", "")[:2]
            want_refusal = self.harmful(request, meta)
            fit_a = is_refusal(a) == want_refusal
            fit_b = is_refusal(b) == want_refusal
            if fit_a == fit_b:
                return 0.5
            return hi if fit_a else lo
        return 0.5

    async def aclose(self) -> None:
        return None
