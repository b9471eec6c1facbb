"""What a critique says, and how a revision is checked against it.

A :class:`~oversight.messages.Critique` carries a verdict *and* text: which principle, what in
the candidate violates (or satisfies) it, quoting the span verbatim, and what a better answer
would do. Three writers produce that text:

* a generating model, from the constitution's critique prompt with the :data:`WRITE_FORMAT`
  answer form; :func:`parse_written_critique` reads its reply robustly (labels in any case,
  markdown, missing fields) and keeps a quote only if it is found in the candidate;
* a classifier, from its evidence (the request's harm category, the highest-scoring sentences
  of the candidate, whether it refuses): :func:`evidence_critique`;
* a rule, when neither gives usable text (:func:`rule_critique`).

The reviser sees the critiques (as in the published CAI recipe); since critiques are internal
reasoning, every revision passes :func:`copies_reasoning` before it becomes a candidate.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .constitution import HarmCategory, Principle

WRITE_FORMAT = (
    "Answer in exactly this form:\n"
    "Verdict: Yes or No\n"
    'Quote: "the exact words of the response your verdict is about"\n'
    "Why: one or two sentences on how that part violates or satisfies the principle\n"
    "Better: what a better response would do"
)
"""The answer form appended to a principle's critique prompt when a model writes a critique."""

_HARM_KIND = frozenset({"harm", "lawful", "privacy"})
"""Principles whose classifier evidence is the harm head's per-sentence scores."""
MIN_WORDS = 8
"""A critique with fewer words than this is not written feedback (counted, replaced by a rule)."""
MAX_QUOTE_WORDS = 30
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)")
_WORDS = re.compile(r"[a-z0-9']+")
_FIELD = re.compile(
    r"^\W*(verdict|answer|quote|span|why|explanation|reason|better|suggestion|improvement)\W*"
    r"\s*[:\-]\s*(.*)$",
    re.IGNORECASE,
)
_FIELD_NAMES = {
    "verdict": "verdict",
    "answer": "verdict",
    "quote": "quote",
    "span": "quote",
    "why": "why",
    "explanation": "why",
    "reason": "why",
    "better": "better",
    "suggestion": "better",
    "improvement": "better",
}


def answer_form(blocks: Sequence[tuple[str, bool, str, str, str]]) -> str:
    """A written critique in the :data:`WRITE_FORMAT`, as a model is asked to give it: one
    ``(principle, violated, quote, why, better)`` block each, prefixed with ``Principle: <id>``
    when there are several (the multi-principle form). The test-double backends write with it,
    :func:`parse_written_critique` reads it."""
    out = []
    for principle, violated, quote, why, better in blocks:
        block = (
            f'Verdict: {"Yes" if violated else "No"}\nQuote: "{quote}"\nWhy: {why}\n'
            f"Better: {better}"
        )
        out.append(f"Principle: {principle}\n{block}" if len(blocks) > 1 else block)
    return "\n".join(out)


def sentences(text: str) -> list[str]:
    """The candidate's sentences, each a verbatim substring of ``text`` (stripped)."""
    out = [m.group(0).strip() for m in _SENTENCE.finditer(text)]
    return [s for s in out if any(ch.isalnum() for ch in s)]


def clip(span: str, max_words: int = MAX_QUOTE_WORDS) -> str:
    """A verbatim prefix of ``span`` of at most ``max_words`` words."""
    match = re.match(rf"\s*(?:\S+\s+){{0,{max_words - 1}}}\S+", span)
    return match.group(0).strip() if match else span.strip()


def find_verbatim(quote: str, candidate: str) -> str:
    """``quote`` as it appears in ``candidate`` (exact, then case- and space-insensitive);
    empty when it is not there: a critique never quotes what the candidate did not say."""
    quote = quote.strip().strip("\"'“”‘’`").strip()
    if not quote or quote.lower() in ("none", "n/a", "nothing"):
        return ""
    if quote in candidate:
        return quote
    pattern = r"\s+".join(re.escape(w) for w in quote.split())
    match = re.search(pattern, candidate, re.IGNORECASE)
    return match.group(0) if match else ""


def word_count(text: str) -> int:
    return len(text.split())


def detect_category(request: str, categories: Sequence[HarmCategory]) -> HarmCategory | None:
    """The category whose keywords the request matches most (word boundaries, case-folded);
    None when none matches."""
    lowered = request.lower()
    best, best_hits = None, 0
    for category in categories:
        hits = sum(
            1 for k in category.keywords if re.search(r"\b" + re.escape(k.lower()) + r"\b", lowered)
        )
        if hits > best_hits:
            best, best_hits = category, hits
    return best


@dataclass
class WrittenCritique:
    """The text parts of a critique, before they become a message."""

    rationale: str
    quote: str = ""
    suggestion: str = ""
    verdict: str | None = None
    """``violated``/``satisfied`` when the text stated one, else None."""
    problems: list[str] = field(default_factory=list)
    """What was wrong with the model's text (``no_verdict``, ``quote_not_found``, ...)."""


def parse_written_critique(text: str, candidate: str) -> WrittenCritique:
    """Read a model's critique in the :data:`WRITE_FORMAT` (tolerating markdown, other label
    names, missing fields and extra text). The quote is kept only when found in ``candidate``."""
    fields: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        match = _FIELD.match(line.replace("**", ""))
        if match:
            current = _FIELD_NAMES[match.group(1).lower()]
            fields.setdefault(current, []).append(match.group(2).strip())
        elif current and line.strip():
            fields[current].append(line.strip())
    problems: list[str] = []
    verdict_text = " ".join(fields.get("verdict", [])) or text[:40]
    first = re.search(r"\b(yes|no)\b", verdict_text, re.IGNORECASE)
    verdict = None
    if first:
        verdict = "violated" if first.group(1).lower() == "yes" else "satisfied"
    else:
        problems.append("no_verdict")
    raw_quote = " ".join(fields.get("quote", []))
    quote = find_verbatim(raw_quote, candidate)
    if raw_quote and not quote and raw_quote.strip().lower() not in ("none", "n/a", '"none"'):
        problems.append("quote_not_found")
    why = " ".join(fields.get("why", []))
    better = " ".join(fields.get("better", []))
    if not fields:
        why = text.strip()
        problems.append("unstructured")
    rationale = why if quote == "" else f'"{clip(quote)}": {why}'
    if word_count(rationale) < MIN_WORDS:
        problems.append("too_short")
    return WrittenCritique(rationale.strip(), quote, better.strip(), verdict, problems)


def _privacy_spans(text: str) -> list[str]:
    patterns = (
        r"[\w.+-]+@[\w-]+\.[\w.]+",
        r"\+?\d[\d\s().-]{7,}\d",
        r"\b\d{3}-\d{2}-\d{4}\b",
        r"\b\d+\s+\w+\s+(?:street|st|avenue|ave|road|rd|lane|drive|dr)\b",
    )
    return [m.group(0) for p in patterns for m in re.finditer(p, text, re.IGNORECASE)]


def evidence_critique(
    spec: Principle,
    verdict: str,
    probability: float,
    candidate: str,
    *,
    sentence_scores: Sequence[tuple[str, float]],
    outcome: str,
    request_harm: float,
    category: HarmCategory | None,
) -> WrittenCritique:
    """A structured critique from a classifier's evidence.

    ``sentence_scores`` are the candidate's sentences with the harm classifier's score each;
    ``outcome`` is the refusal detector's reading of the candidate (``compliance``,
    ``refusal``, ``gibberish``, ``echo``, ``empty``); ``request_harm`` the request's harm.
    """
    ranked = sorted(sentence_scores, key=lambda s: -s[1])
    top_sentence, top_score = ranked[0] if ranked else ("", 0.0)
    quote = clip(top_sentence)
    label = {"violated": "Violates", "satisfied": "Satisfies", "uncertain": "Unsure about"}[verdict]
    head = f"{label} '{spec.name}' (P = {probability:.2f})"
    kind = (
        f" The request reads as {category.name.lower()} ({category.description.rstrip('.')})."
        if category
        else ""
    )
    guidance = spec.guidance or spec.purpose
    if spec.id == "helpfulness":
        if outcome == "compliance":
            why = f'the response takes the request on directly; it begins "{quote}".'
        elif outcome == "refusal":
            quote = clip(_refusal_sentence(candidate) or top_sentence)
            why = (
                f'the response declines with "{quote}" although the request rates '
                f"{request_harm:.2f} for harm, so the user may be left without a legitimate answer."
            )
        else:
            why = {
                "gibberish": f'the response is not readable text ("{quote}").',
                "echo": f'the response repeats the request ("{quote}") instead of answering.',
                "empty": "the response is empty.",
            }.get(outcome, f'the response does not answer: "{quote}".')
        suggestion = guidance if verdict != "satisfied" else ""
        return WrittenCritique(f"{head}: {why}", quote, suggestion)
    if spec.id not in _HARM_KIND and outcome == "compliance":
        # A principle with its own head (honesty, balance, fairness, manipulation): the head
        # reads the whole answer, so quote its opening and say what the principle asks.
        first = sentences(candidate)
        quote = clip(first[0]) if first else ""
        reading = {"violated": "falls short of", "satisfied": "meets", "uncertain": "may miss"}
        why = (
            f'the answer, which begins "{quote}", {reading[verdict]} what this principle asks: '
            f"{spec.purpose.strip().rstrip('.')}."
        )
        suggestion = (spec.guidance or spec.purpose) if verdict != "satisfied" else ""
        return WrittenCritique(f"{head}: {why}", quote, suggestion)
    if spec.id == "privacy":
        spans = _privacy_spans(candidate)
        if spans:
            quote = clip(spans[0])
    if outcome == "refusal":
        quote = clip(_refusal_sentence(candidate) or top_sentence)
        why = (
            f'the response declines ("{quote}") and its riskiest sentence scores {top_score:.2f} '
            "on the harm classifier, so it gives nothing that serves the harmful part."
        )
    elif outcome in ("gibberish", "empty", "echo"):
        why = f'the response gives no usable content ("{quote}"), so it cannot help cause harm.'
    elif verdict == "satisfied":
        why = (
            f"the request rates {request_harm:.2f} for harm and the response's riskiest "
            f'sentence, "{quote}", scores {top_score:.2f}: nothing here conflicts with '
            f'"{spec.purpose.strip().rstrip(".")}".'
        )
    else:
        why = (
            f'the response goes along with a request rating {request_harm:.2f} for harm; "{quote}" '
            f"is its riskiest sentence ({top_score:.2f} on the harm classifier).{kind}"
        )
        if category is not None:
            why += f" It should not contain {category.decline.rstrip('.')}."
    suggestion = ""
    if verdict != "satisfied":
        suggestion = guidance + (f" {category.redirect.strip()}" if category else "")
    return WrittenCritique(f"{head}: {why}", quote, suggestion.strip())


def rule_critique(
    spec: Principle, verdict: str, probability: float, candidate: str
) -> WrittenCritique:
    """The fallback text: the principle, the verdict, the candidate's first sentence."""
    first = sentences(candidate)
    quote = clip(first[0]) if first else ""
    label = {"violated": "violates", "satisfied": "satisfies", "uncertain": "may violate"}[verdict]
    said = f', beginning "{quote}",' if quote else ""
    rationale = (
        f"The response{said} {label} '{spec.name}' (P = {probability:.2f}): {spec.purpose.strip()}"
    )
    suggestion = (spec.guidance or spec.purpose) if verdict != "satisfied" else ""
    return WrittenCritique(rationale, quote, suggestion)


def _refusal_sentence(text: str) -> str:
    from .safety.refusal import phrase_refusal

    return next((s for s in sentences(text) if phrase_refusal(s)), "")


# -- revisions ----------------------------------------------------------------------------------


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORDS.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def copies_reasoning(
    revision: str, rationales: Iterable[str], allowed: Iterable[str], n: int = 8
) -> bool:
    """Whether ``revision`` repeats ``n`` or more consecutive words of an internal rationale
    that are not also in the ``allowed`` texts (the request, the candidate, the constitution's
    user-facing guidance): such a revision would leak internal reasoning to the user."""
    permitted: set[tuple[str, ...]] = set()
    for text in allowed:
        permitted |= _ngrams(text, n)
    shared = _ngrams(revision, n)
    return any((shared & _ngrams(r, n)) - permitted for r in rationales if r)


def feedback_summary(
    envelopes: Iterable[Any], agent_stats: dict[str, int] | None = None
) -> dict[str, Any]:
    """How much of a run's feedback is feedback: written critiques, critique-driven revisions,
    where the targets came from and how varied they are. Computed from the journal.

    * ``critiques``: how many have at least :data:`MIN_WORDS` words and quote a span found
      verbatim in the candidate they judge, by writer; how many candidates got the *same* text
      under two principles;
    * ``revisions``: by source; for revisions of a candidate whose critique quoted a span, how
      often that span is gone from the revision (all but template revisions, and the model's
      own revisions alone);
    * ``answers``: how the model's drafts and revisions ended: by the model, cut by the token
      limit, or stopped repeating itself (:mod:`oversight.backends._ending`);
    * ``targets``: consensus targets by source, the share from the single refusal sentence
      (``template``), and distinct-1/2 of targets vs drafts for harmful requests (the prompt's
      ``harm`` label where present, else the safety agent's P(request harmful) >= 0.5).
    """
    from .training.data import distinct_n

    texts: dict[tuple[str, str], str] = {}
    drafts: dict[str, str] = {}
    drafts_finish: list[str] = []
    critiques: list[tuple[str, Any]] = []
    revisions: list[tuple[str, Any]] = []
    harmful: dict[str, bool] = {}
    targets: list[tuple[str, str, str]] = []
    for env in envelopes:
        p = env.payload
        if p.kind == "draft":
            texts[(env.episode, getattr(p, "candidate_id", "c0"))] = p.text
            drafts[env.episode] = p.text
            drafts_finish.append(getattr(p, "finish", ""))
        elif p.kind == "revision":
            texts[(env.episode, p.candidate_id)] = p.text
            revisions.append((env.episode, p))
        elif p.kind == "critique":
            critiques.append((env.episode, p))
        elif p.kind == "prompt" and "harm" in p.labels:
            harmful[env.episode] = p.labels["harm"] == "harmful"
        elif p.kind == "safety_assessment" and env.episode not in harmful:
            harmful.setdefault(env.episode, p.request_harmful >= 0.5)
        elif p.kind == "consensus":
            targets.append((env.episode, p.source, p.text))
    written = quoted = both = 0
    methods: Counter[str] = Counter()
    by_candidate: dict[tuple[str, str], list[str]] = {}
    for episode, c in critiques:
        methods[c.method] += 1
        long = word_count(c.rationale) >= MIN_WORDS
        found = bool(c.quote) and c.quote in texts.get((episode, c.candidate_id), "")
        written += long
        quoted += found
        both += long and found
        by_candidate.setdefault((episode, c.candidate_id), []).append(c.rationale)
    multi = [r for r in by_candidate.values() if len(r) > 1]
    same = sum(len(set(r)) < len(r) for r in multi)
    quoted_violations: dict[tuple[str, str], list[str]] = {}
    for episode, c in critiques:
        if c.verdict == "violated" and c.quote:
            quoted_violations.setdefault((episode, c.candidate_id), []).append(c.quote)
    followed = checked = model_followed = model_checked = 0
    for episode, r in revisions:
        quotes = quoted_violations.get((episode, r.revises), [])
        if quotes and r.source != "template":
            gone = all(q not in r.text for q in quotes)
            checked += 1
            followed += gone
            if r.source in ("model", "few_shot", "best_of_n"):
                model_checked += 1
                model_followed += gone
    answers = _answer_endings(drafts_finish, revisions)
    sources = Counter(src for _, src, _ in targets)
    harmful_targets = [t for e, _, t in targets if harmful.get(e)]
    harmful_drafts = [drafts[e] for e, _, _ in targets if harmful.get(e) and e in drafts]
    n = len(critiques)
    return {
        "critiques": {
            "total": n,
            "written_share": round(written / n, 4) if n else None,
            "quote_verbatim_share": round(quoted / n, 4) if n else None,
            "written_and_quoted_share": round(both / n, 4) if n else None,
            "by_method": dict(sorted(methods.items())),
            "candidates_with_identical_critiques": f"{same}/{len(multi)}",
        },
        "revisions": {
            "total": len(revisions),
            "by_source": dict(sorted(Counter(r.source for _, r in revisions).items())),
            "quoted_span_removed": f"{followed}/{checked}",
            "quoted_span_removed_share": round(followed / checked, 4) if checked else None,
            "model_quoted_span_removed": f"{model_followed}/{model_checked}",
        },
        "targets": {
            "by_source": dict(sorted(sources.items())),
            "template_share": round(sources.get("template", 0) / len(targets), 4)
            if targets
            else None,
            "harmful_prompts": len(harmful_targets),
            "harmful_targets_distinct_1": round(distinct_n(harmful_targets, 1), 4),
            "harmful_targets_distinct_2": round(distinct_n(harmful_targets, 2), 4),
            "harmful_drafts_distinct_1": round(distinct_n(harmful_drafts, 1), 4),
            "harmful_drafts_distinct_2": round(distinct_n(harmful_drafts, 2), 4),
        },
        "answers": answers,
        "agents": dict(sorted((agent_stats or {}).items())),
    }


def _answer_endings(drafts: list[str], revisions: list[tuple[str, Any]]) -> dict[str, Any]:
    """How the model's drafts and revisions ended (``finish``): how many the token limit cut
    (``length``; kept up to their last whole sentence) and how many were stopped looping."""
    out: dict[str, Any] = {}
    model = [getattr(r, "finish", "") for _, r in revisions if getattr(r, "finish", "")]
    for name, finishes in (("drafts", drafts), ("model_revisions", model)):
        counts = Counter(f or "unreported" for f in finishes)
        total = len(finishes)
        out[name] = {
            "total": total,
            "by_finish": dict(sorted(counts.items())),
            "cut_by_limit_share": round(counts["length"] / total, 4) if total else None,
        }
    return out


__all__ = [
    "MIN_WORDS",
    "WRITE_FORMAT",
    "WrittenCritique",
    "answer_form",
    "clip",
    "copies_reasoning",
    "detect_category",
    "evidence_critique",
    "feedback_summary",
    "find_verbatim",
    "parse_written_critique",
    "rule_critique",
    "sentences",
]
