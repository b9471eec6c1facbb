"""Escalation policies: when a case goes to people, how many people, and how urgently.

A policy is a YAML file in ``escalation/`` (``escalation/default.yaml``)::

    name: default
    triggers:
      disagreement: true          # agents disagree on the chosen answer
      low_confidence: 0.55        # a finding on it is less confident than this
      severity: {harm: 0.8}       # a violation of harm at severity >= 0.8
      unresolved: true            # no strategy settled a conflict
      audit_rate: 0.02            # 2% of consensus cases are sampled for review
    reviewers_per_case: 1
    lease_seconds: 900
    weighted_margin: 0.1
    review_confidence: 0.6
    priority: {severity: 3, unresolved: 2, disagreement: 1, low_confidence: 1, audit: 0}

The decision core (:mod:`oversight.consensus`) compiles the triggers and thresholds once; the
queue reads ``reviewers_per_case``, ``lease_seconds`` and :meth:`EscalationPolicy.case_priority`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..config import Problems, did_you_mean, read_config
from ..errors import UnknownPrincipleError
from ..messages import TriggerName
from ..paths import resolve_config

TRIGGER_NAMES: tuple[str, ...] = get_args(TriggerName)
"""Every trigger name, in the bit order of :mod:`oversight.consensus` (1, 2, 4, 8, 16, 32)."""

_DEFAULT_PRIORITY: dict[TriggerName, int] = {
    "safety": 3,
    "severity": 3,
    "unresolved": 2,
    "disagreement": 1,
    "low_confidence": 1,
    "audit": 0,
}


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EscalationTriggers(_Config):
    """The conditions that send a case to people (any one is enough)."""

    disagreement: bool = True
    """Escalate when agents disagree about the chosen candidate (e.g. a critic says violated,
    its auditor says satisfied)."""
    low_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    """Escalate when a finding on the chosen candidate is less confident than this (0: never)."""
    severity: dict[str, float] = Field(default_factory=dict)
    """Principle id -> severity threshold in [0, 1]: a violation at or above it escalates."""
    unresolved: bool = True
    """Escalate when priority, weighted scoring and review all fail to settle a conflict."""
    audit_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Probability that a case the agents agreed on is still sampled for human review."""

    @field_validator("severity")
    @classmethod
    def _thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        for pid, threshold in value.items():
            if not 0.0 <= float(threshold) <= 1.0:
                raise ValueError(
                    f"severity threshold of {pid!r} is {threshold}; a threshold is a severity, "
                    "so it must lie in [0, 1]"
                )
        return value

    @property
    def can_escalate(self) -> bool:
        """Whether any trigger can fire."""
        return bool(
            self.disagreement
            or self.low_confidence > 0.0
            or self.severity
            or self.unresolved
            or self.audit_rate > 0.0
        )


class EscalationPolicy(_Config):
    """When cases escalate, how many reviewers decide each, and how urgent each case is."""

    name: str
    """Name of the policy (``default``, ``strict``)."""
    description: str = ""
    """What the policy is for, in a sentence or two."""
    triggers: EscalationTriggers = Field(default_factory=EscalationTriggers)
    """The conditions that send a case to people."""
    reviewers_per_case: int = Field(default=1, ge=1)
    """How many different people must decide a case before it is closed (agreement recorded)."""
    lease_seconds: float = Field(default=900.0, gt=0.0)
    """How long a reviewer's claim on a case lasts before others may take it."""
    weighted_margin: float = Field(default=0.1, ge=0.0)
    """Weighted scoring decides a conflict only when the runner-up costs at least this much
    more than the cheapest candidate."""
    review_confidence: float = Field(default=0.6, ge=0.0, le=1.0)
    """Hierarchical review (the supervising judge) decides only at this confidence or above."""
    priority: dict[TriggerName, int] = Field(default_factory=lambda: dict(_DEFAULT_PRIORITY))
    """Case priority per trigger (higher is reviewed first); a case takes the highest priority
    of the triggers that fired. Triggers left out get priority 0."""
    source: str | None = None
    """The file the policy was loaded from (named in errors)."""

    @property
    def can_escalate(self) -> bool:
        """Whether any trigger can send a case to people."""
        return self.triggers.can_escalate

    def case_priority(self, triggers: Iterable[str]) -> int:
        """Priority of a case escalated for these triggers (the highest; 0 when none)."""
        known: dict[str, int] = {str(name): value for name, value in self.priority.items()}
        return max((known.get(name, 0) for name in triggers), default=0)

    def check_principles(self, principle_ids: Iterable[str]) -> None:
        """Raise UnknownPrincipleError when a severity threshold names an unknown principle."""
        ids = list(principle_ids)
        problems = Problems(self, path=self.source)
        for pid in self.triggers.severity:
            if pid not in ids:
                problems.add(
                    ("triggers", "severity", pid),
                    f"unknown principle {pid!r}{did_you_mean(pid, ids)}; the constitution "
                    f"defines {', '.join(ids)}. Fix the id or remove the threshold",
                    UnknownPrincipleError,
                )
        problems.raise_if_any()


def load_policy(path: str | Path, *, relative_to: str | Path | None = None) -> EscalationPolicy:
    """Load an escalation policy YAML file.

    ``path`` is looked up as given, next to ``relative_to`` (e.g. the hierarchy file), then in
    the packaged ``escalation/`` folder. Any problem raises :class:`ConfigError` naming the file
    and the key (a probability outside [0, 1], an unknown key, a missing name).
    """
    resolved = resolve_config(path, relative_to=relative_to)
    doc = read_config(resolved, what="escalation policy", example="escalation/default.yaml")
    return doc.validate(EscalationPolicy)


__all__ = [
    "TRIGGER_NAMES",
    "EscalationPolicy",
    "EscalationTriggers",
    "TriggerName",
    "load_policy",
]
