"""Agreement between human reviewers: Cohen's kappa, Fleiss' kappa, per case and per reviewer.

Two decisions agree when they choose the same candidate id or write the same edited text
(:attr:`DecisionRecord.key`). Candidate ids are positional within an episode (``c0`` the draft,
``c1`` the first revision, ...), so they are comparable categories across cases.

- :func:`cohen_kappa` for two raters over the same items;
- :func:`fleiss_kappa` for several raters per item (the number of raters may vary by item);
- :func:`queue_agreement` summarises decided cases: Fleiss' kappa over every case with two or
  more reviews, Cohen's kappa over the cases with exactly two (first vs second reviewer), the
  observed agreement of each case, and for each reviewer how often their decision matched the
  final one (rate and Cohen's kappa of reviewer vs final).

A kappa is ``None`` when it is undefined: no items, or chance agreement of 1 (every rating in
one category) so that kappa would be 0/0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from itertools import combinations

from pydantic import BaseModel, ConfigDict

from ..errors import EscalationError
from .models import Case


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters who labelled the same items in the same order."""
    if len(a) != len(b):
        raise EscalationError(
            f"cohen_kappa needs two equally long label lists, got {len(a)} and {len(b)}"
        )
    n = len(a)
    if n == 0:
        return None
    observed = sum(1 for x, y in zip(a, b, strict=True) if x == y) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(ratings: Iterable[Sequence[Hashable]]) -> float | None:
    """Fleiss' kappa; ``ratings`` holds, per item, the labels its raters gave.

    Items with fewer than two ratings are skipped; the number of raters may differ by item
    (each item's agreement is averaged with equal weight, category shares are pooled).
    """
    per_item: list[float] = []
    totals: Counter[Hashable] = Counter()
    n_ratings = 0
    for labels in ratings:
        m = len(labels)
        if m < 2:
            continue
        counts = Counter(labels)
        per_item.append((sum(c * c for c in counts.values()) - m) / (m * (m - 1)))
        totals.update(counts)
        n_ratings += m
    if not per_item:
        return None
    observed = sum(per_item) / len(per_item)
    expected = sum((c / n_ratings) ** 2 for c in totals.values())
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


class CaseAgreement(_Model):
    """Agreement within one decided case."""

    case_id: str
    """The case."""
    reviewers: tuple[str, ...]
    """Reviewers who decided it (tie-breakers excluded), in decision order."""
    observed: float | None
    """Fraction of reviewer pairs that agree (None with a single reviewer)."""
    agrees_with_final: dict[str, bool]
    """Per reviewer, whether their decision matches the one that stands."""
    tie_break: bool
    """Whether an admin broke a tie."""


class ReviewerAgreement(_Model):
    """One reviewer's agreement with the final decisions."""

    reviewer: str
    """The reviewer."""
    decided: int
    """Decided cases they reviewed."""
    agreed: int
    """How many of those their decision matched the final decision."""
    rate: float
    """``agreed / decided``."""
    kappa: float | None
    """Cohen's kappa of the reviewer's decisions against the final decisions."""


class AgreementReport(_Model):
    """Agreement over a set of decided cases."""

    cases: int
    """Decided cases considered."""
    multi_reviewer_cases: int
    """Of those, cases with two or more reviews."""
    fleiss_kappa: float | None
    """Fleiss' kappa over the cases with two or more reviews."""
    cohen_kappa: float | None
    """Cohen's kappa (first vs second reviewer) over the cases with exactly two reviews."""
    per_case: tuple[CaseAgreement, ...]
    """Each case's agreement."""
    per_reviewer: tuple[ReviewerAgreement, ...]
    """Each reviewer's agreement with the final decisions, by name."""


def case_agreement(case: Case) -> CaseAgreement:
    """Agreement within one decided case (``EscalationError`` when it is not decided)."""
    if case.status != "decided" or case.final_decision_id is None:
        raise EscalationError(f"case {case.id} is {case.status}; agreement needs a decided case")
    final = next(d for d in case.decisions if d.id == case.final_decision_id)
    reviews = [d for d in case.decisions if not d.tie_break]
    pairs = list(combinations([d.key for d in reviews], 2))
    return CaseAgreement(
        case_id=case.id,
        reviewers=tuple(d.reviewer for d in reviews),
        observed=sum(1 for x, y in pairs if x == y) / len(pairs) if pairs else None,
        agrees_with_final={d.reviewer: d.key == final.key for d in reviews},
        tie_break=final.tie_break,
    )


def queue_agreement(cases: Iterable[Case]) -> AgreementReport:
    """Agreement statistics over the decided cases among ``cases`` (others are ignored)."""
    decided = [c for c in cases if c.status == "decided" and c.final_decision_id is not None]
    per_case: list[CaseAgreement] = []
    ratings: list[list[str]] = []
    first: list[str] = []
    second: list[str] = []
    by_reviewer: dict[str, tuple[list[str], list[str]]] = {}
    for case in decided:
        per_case.append(case_agreement(case))
        final = next(d for d in case.decisions if d.id == case.final_decision_id)
        keys = [d.key for d in case.decisions if not d.tie_break]
        ratings.append(keys)
        if len(keys) == 2:
            first.append(keys[0])
            second.append(keys[1])
        for d in case.decisions:
            if not d.tie_break:
                mine, finals = by_reviewer.setdefault(d.reviewer, ([], []))
                mine.append(d.key)
                finals.append(final.key)
    per_reviewer = tuple(
        ReviewerAgreement(
            reviewer=name,
            decided=len(mine),
            agreed=sum(1 for x, y in zip(mine, finals, strict=True) if x == y),
            rate=sum(1 for x, y in zip(mine, finals, strict=True) if x == y) / len(mine),
            kappa=cohen_kappa(mine, finals),
        )
        for name, (mine, finals) in sorted(by_reviewer.items())
    )
    return AgreementReport(
        cases=len(decided),
        multi_reviewer_cases=sum(1 for r in ratings if len(r) >= 2),
        fleiss_kappa=fleiss_kappa(ratings),
        cohen_kappa=cohen_kappa(first, second),
        per_case=tuple(per_case),
        per_reviewer=per_reviewer,
    )


__all__ = [
    "AgreementReport",
    "CaseAgreement",
    "ReviewerAgreement",
    "case_agreement",
    "cohen_kappa",
    "fleiss_kappa",
    "queue_agreement",
]
