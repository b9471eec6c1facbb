"""Builders shared by the runtime tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def write_hierarchy(
    path: Path,
    *,
    base_rules: list[dict[str, Any]] | None = None,
    assessor_rules: list[dict[str, Any]] | None = None,
    critic_options: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    escalation: str = "escalation/default.yaml",
    latency: float = 0.0,
) -> Path:
    """A small scripted hierarchy: base, reviser, two critics, safety, judge, people."""
    spec = {
        "name": "test",
        "constitution": "constitutions/default.yaml",
        "escalation": escalation,
        "models": {
            "base": {
                "backend": "scripted",
                "options": {"rules": base_rules or [], "latency": latency},
            },
            "assessor": {"backend": "scripted", "options": {"rules": assessor_rules or []}},
        },
        "agents": [
            {"name": "base", "role": "base", "model": "base"},
            {"name": "reviser", "role": "reviser", "model": "base"},
            {
                "name": "harm-critic",
                "role": "critic",
                "model": "assessor",
                "principles": ["harm", "lawful", "privacy"],
                "options": critic_options or {},
            },
            {
                "name": "quality-critic",
                "role": "critic",
                "model": "assessor",
                "principles": ["helpfulness", "honesty"],
                "options": critic_options or {},
            },
            {"name": "safety", "role": "safety", "model": "assessor"},
            {"name": "judge", "role": "judge", "model": "assessor"},
            {"name": "people", "role": "human"},
        ],
        "supervision": [
            {"supervisor": "harm-critic", "subject": "base"},
            {"supervisor": "quality-critic", "subject": "base"},
            {"supervisor": "safety", "subject": "base"},
            {"supervisor": "judge", "subject": "harm-critic", "mode": "on-flag"},
            {"supervisor": "people", "subject": "judge", "mode": "on-flag"},
        ],
        "settings": {"max_revision_rounds": 1, "concurrency": 4, **(settings or {})},
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def write_prompts(path: Path, prompts: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(p) + "\n" for p in prompts))
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
