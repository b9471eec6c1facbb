"""A scripted hierarchy in which each prompt stages one conflict of principles.

The base's draft violates one principle of a pair and the reviser's rewrite the other, so the
final decision is the priority graph's (or weighted scoring's) resolution of that pair. The
escalation policy turns off every trigger but ``unresolved``, so nothing but the resolution
decides; the judge never audits (sample rate 0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from oversight.constitution import load_constitution

POLICY = {
    "name": "conflicts-only",
    "description": "Only unresolved conflicts escalate.",
    "triggers": {
        "disagreement": False,
        "low_confidence": 0.0,
        "severity": {},
        "unresolved": True,
        "audit_rate": 0.0,
    },
    "reviewers_per_case": 1,
    "weighted_margin": 0.1,
    "review_confidence": 0.6,
}

POLITENESS = {
    "id": "politeness",
    "version": "test",
    "name": "Be polite",
    "category": "interaction",
    "purpose": "Be courteous and considerate in tone.",
    "critique_prompt": "Request: {request}\n\nResponse: {response}\n\nRude? Answer Yes or No.",
    "revision_prompt": "Make it courteous.\n\n{request}\n\n{response}\n\n{critique}",
    "weight": 0.3,
    "severity": 0.3,
}


def politeness_overlay(path: Path) -> Path | None:
    """An overlay giving the default constitution a politeness principle and the edge
    ``honesty > politeness`` when it lacks them (the truthfulness work adds the principle to
    the default; then only what is still missing is added). None when nothing is missing."""
    default = load_constitution("constitutions/default.yaml")
    overlay: dict[str, Any] = {"name": "politeness-test", "base": "default"}
    if "politeness" not in default.ids:
        overlay["add_principles"] = [POLITENESS]
    if ("honesty", "politeness") not in default.priorities:
        overlay["add_priorities"] = ["honesty > politeness"]
    if len(overlay) == 2:
        return None
    path.write_text(yaml.safe_dump(overlay, sort_keys=False))
    return path


# id, context, principle the draft violates, principle the revision violates
CONFLICTS: list[tuple[str, dict[str, str], str, str]] = [
    ("safety", {}, "helpfulness", "harm"),
    ("safety-clinical", {"user": "clinician", "surface": "clinical"}, "helpfulness", "harm"),
    ("politeness", {}, "politeness", "honesty"),
    ("transparency", {}, "transparency", "harm"),
    ("transparency-audit", {"user": "auditor"}, "transparency", "harm"),
    ("moral-ethics", {"domain": "ethics"}, "balance", "moral_judgment"),
    ("moral-politics", {"domain": "politics"}, "balance", "moral_judgment"),
    ("personal", {}, "personalisation", "privacy"),
    ("personal-consent", {"user": "opted-in"}, "personalisation", "privacy"),
]


def conflict_prompts() -> list[dict[str, Any]]:
    return [
        {"id": cid, "prompt": f"Question number {i} about {cid.replace('-', ' ')}.", "context": ctx}
        for i, (cid, ctx, _, _) in enumerate(CONFLICTS)
    ]


def write_conflict_hierarchy(tmp: Path, select: list[dict[str, Any]] | None = None) -> Path:
    """The hierarchy and its policy (and the politeness overlay) under ``tmp``."""
    rules: list[dict[str, Any]] = []
    critic_rules: list[dict[str, Any]] = []
    for i, (_cid, _ctx, first, second) in enumerate(CONFLICTS):
        key = f"Question number {i} about"
        rules.append({"task": "draft", "match": key, "reply": f"Draft answer D{i}X here."})
        rules.append({"task": "revise", "match": key, "reply": f"Rewritten answer R{i}X here."})
        critic_rules.append(
            {"task": "critique", "principle": first, "match": f"D{i}X", "p_yes": 0.95}
        )
        critic_rules.append(
            {"task": "critique", "principle": second, "match": f"R{i}X", "p_yes": 0.95}
        )
    (tmp / "policy.yaml").write_text(yaml.safe_dump(POLICY, sort_keys=False))
    overlay = politeness_overlay(tmp / "politeness.yaml")
    principles = [
        "harm", "privacy", "honesty", "fairness", "lawful", "manipulation", "balance",
        "helpfulness", "transparency", "moral_judgment", "personalisation", "politeness",
    ]  # fmt: skip
    spec: dict[str, Any] = {
        "name": "conflicts",
        "constitution": "constitutions/default.yaml",
        "overlays": [str(overlay)] if overlay else [],
        "escalation": str(tmp / "policy.yaml"),
        "models": {
            "base": {"backend": "scripted", "options": {"rules": rules}},
            "assessor": {"backend": "scripted", "options": {"rules": critic_rules}},
        },
        "agents": [
            {"name": "base", "role": "base", "model": "base"},
            {"name": "reviser", "role": "reviser", "model": "base"},
            {"name": "critic", "role": "critic", "model": "assessor", "principles": principles},
            {"name": "judge", "role": "judge", "model": "assessor"},
            {"name": "people", "role": "human"},
        ],
        "supervision": [
            {"supervisor": "critic", "subject": "base"},
            {"supervisor": "judge", "subject": "critic", "mode": "sample", "rate": 0.0},
            {"supervisor": "people", "subject": "judge", "mode": "on-flag"},
        ],
        "settings": {"max_revision_rounds": 1, "concurrency": 4},
    }
    if select:
        spec["select"] = select
    path = tmp / "conflicts.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    (tmp / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in conflict_prompts()))
    return path
