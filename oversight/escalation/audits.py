"""What human decisions say about the agents: each agent's accuracy with a 95% interval.

Every decided case carries the agents' findings about its candidates (``details``: critiques,
audits, safety assessments, the judge's ranking) and the reviewer's decision. A decision is a
label for some of those findings:

* the **chosen candidate** is an acceptable answer: every finding on it should say
  ``satisfied`` (a ``violated`` is a false alarm);
* a **rejected candidate** (every candidate when the reviewer wrote their own answer) violated
  the principles the reviewer cited (``principle_tags``): a finding on it for a cited principle
  should say ``violated`` (a ``satisfied`` is a miss). A rejected candidate's other principles
  are not labelled (the reviewer may simply have preferred another answer), so they are not
  scored;
* the **judge's ranking** is right when its first candidate is the one the reviewer chose (not
  scored when the reviewer wrote their own answer);
* ``uncertain`` findings are not scored; a safety assessment says ``violated`` when its risk is
  at least 0.5.

Cases are counted in two samples, reported separately and together: ``audit`` - the random
sample of consensus cases (the ``audit`` trigger, :class:`~oversight.escalation.EscalationPolicy`
``audit_rate``), which estimates an agent's accuracy on the decisions the system makes
automatically, without selection bias; ``escalated`` - the cases sent for a reason (disagreement,
low confidence, severity, ...), harder cases by construction. A hidden critic failure (a critic
that agrees with the others but is wrong) shows up in the audit sample.

The interval is Wilson's score interval (95%), which stays inside [0, 1] and behaves for small
counts and accuracies near 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .models import Case

Sample = Literal["audit", "escalated", "all"]
SAMPLES: tuple[Sample, ...] = ("audit", "escalated", "all")
"""The samples an :class:`AuditReport` counts, in display order."""
Z95 = 1.959963984540054
"""The standard normal quantile of a two-sided 95% interval."""


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for ``correct`` successes in ``n`` trials ((0, 1) when n = 0)."""
    if n <= 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AgentAccuracy(_Model):
    """One agent's accuracy on one question in one sample of decided cases."""

    agent: str
    """The agent's name (the envelope's sender)."""
    question: str
    """``critique:<principle>``, ``audit:<principle>``, ``safety:<principle>`` or ``ranking``."""
    sample: Sample
    """``audit`` (random audit sample), ``escalated`` (cases escalated for a reason) or
    ``all``."""
    n: int
    """Findings scored against a human decision."""
    correct: int
    """Of those, findings the decision agrees with."""
    false_alarms: int
    """``violated`` said of a candidate the reviewer accepted."""
    misses: int
    """``satisfied`` said of a candidate the reviewer rejected for that principle."""
    accuracy: float | None
    """``correct / n`` (None when n = 0)."""
    low: float
    """Lower end of the Wilson 95% interval of the accuracy."""
    high: float
    """Upper end of the Wilson 95% interval of the accuracy."""


class AuditReport(_Model):
    """Agents' accuracy estimated from human decisions."""

    cases: int
    """Decided cases read."""
    audit_cases: int
    """Of those, cases in the random audit sample."""
    escalated_cases: int
    """Of those, cases escalated for another reason."""
    rows: tuple[AgentAccuracy, ...]
    """One row per agent, question and sample (samples with no scored finding are left out),
    sorted by agent, question, sample."""


def _sample(case: Case) -> Sample:
    """``audit`` when the case was drawn only by the random audit, else ``escalated``."""
    return "audit" if set(case.triggers) == {"audit"} else "escalated"


def _payloads(details: dict[str, Any], key: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for env in details.get(key) or ():
        if isinstance(env, dict) and isinstance(env.get("payload"), dict):
            yield str(env.get("sender") or "?"), env["payload"]


def scored_findings(case: Case) -> Iterator[tuple[str, str, bool, bool | None]]:
    """``(agent, question, correct, said_violated)`` for each finding the case's final decision
    labels (see the module docstring); ``said_violated`` is None for the ranking."""
    if case.status != "decided" or case.final_decision_id is None:
        return
    final = next(d for d in case.decisions if d.id == case.final_decision_id)
    chosen = final.choice
    cited = set(final.principle_tags)

    def truth(candidate: str, principle: str) -> bool | None:
        """True = violated, False = satisfied, None = the decision does not say."""
        if candidate == chosen:
            return False
        if any(c.id == candidate for c in case.candidates) and principle in cited:
            return True
        return None

    for key, prefix in (("critiques", "critique"), ("audits", "audit")):
        for agent, p in _payloads(case.details, key):
            verdict = p.get("verdict")
            if verdict not in ("violated", "satisfied"):
                continue
            principle = str(p.get("principle_id", ""))
            label = truth(str(p.get("candidate_id", "")), principle)
            if label is None:
                continue
            said = verdict == "violated"
            yield agent, f"{prefix}:{principle}", said == label, said
    for agent, p in _payloads(case.details, "safety"):
        principle = str(p.get("principle_id", "harm"))
        label = truth(str(p.get("candidate_id", "")), principle)
        if label is None:
            continue
        said = float(p.get("risk", 0.0)) >= 0.5
        yield agent, f"safety:{principle}", said == label, said
    if chosen is not None:
        for agent, p in _payloads(case.details, "judgment"):
            ranking = p.get("ranking") or ()
            if ranking:
                yield agent, "ranking", ranking[0] == chosen, None


def audit_report(cases: Iterable[Case]) -> AuditReport:
    """Each agent's accuracy on the decided cases among ``cases`` (others are ignored)."""
    counts: dict[tuple[str, str, Sample], list[int]] = {}
    n_cases = n_audit = 0
    for case in cases:
        if case.status != "decided" or case.final_decision_id is None:
            continue
        n_cases += 1
        sample = _sample(case)
        n_audit += sample == "audit"
        for agent, question, correct, said in scored_findings(case):
            for s in (sample, "all"):
                c = counts.setdefault((agent, question, s), [0, 0, 0, 0])
                c[0] += 1
                c[1] += correct
                c[2] += (not correct) and said is True
                c[3] += (not correct) and said is False
    rows = []
    order = {s: i for i, s in enumerate(SAMPLES)}
    for (agent, question, sample), (n, right, fa, miss) in sorted(
        counts.items(), key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]])
    ):
        low, high = wilson_interval(right, n)
        rows.append(
            AgentAccuracy(
                agent=agent,
                question=question,
                sample=sample,
                n=n,
                correct=right,
                false_alarms=fa,
                misses=miss,
                accuracy=right / n if n else None,
                low=low,
                high=high,
            )
        )
    return AuditReport(
        cases=n_cases,
        audit_cases=n_audit,
        escalated_cases=n_cases - n_audit,
        rows=tuple(rows),
    )


__all__ = [
    "SAMPLES",
    "AgentAccuracy",
    "AuditReport",
    "Sample",
    "audit_report",
    "scored_findings",
    "wilson_interval",
]
