"""``oversight check PATH...``: validate constitutions, overlays, hierarchies, policies and
simulation settings; every problem of a file is listed with its line, key and fix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..errors import ConfigError, OversightError
from ._common import err_console


def kind_of(path: Path) -> str:
    """Guess what a YAML file is from its top-level keys (ConfigError for unreadable YAML)."""
    from ..config import read_config
    from ..simulate.config import SimulationConfig

    data = read_config(path, what="config").data
    if "agents" in data:
        return "hierarchy"
    if "principles" in data:
        return "constitution"
    if "triggers" in data:
        return "policy"
    if "name" not in data and data.keys() & SimulationConfig.model_fields.keys():
        return "simulation"  # a policy has a name; simulation settings have none
    if "reviewers_per_case" in data:
        return "policy"
    if {"add_principles", "remove_principles", "weights", "add_priorities"} & data.keys():
        return "overlay"
    raise ConfigError(
        "not a constitution (principles:), overlay (add_principles:/weights:/...), hierarchy "
        "(agents:), escalation policy (triggers:) or simulation settings (episodes:, "
        "case_mix:, ...)",
        path=path,
    )


def check_file(path: Path) -> str:
    """Load and validate one file; return a one-line description. Raises on any error."""
    from ..constitution import load_constitution, load_overlay
    from ..escalation.policy import load_policy
    from ..hierarchy import load_hierarchy
    from ..priority import PriorityGraph
    from ..simulate.config import load_simulation_config

    kind = kind_of(path)
    if kind == "hierarchy":
        spec = load_hierarchy(path)
        PriorityGraph(spec.constitution)
        return (
            f"hierarchy {spec.name!r}: {len(spec.agents)} agents, "
            f"{max(spec.levels().values())} supervision levels, constitution "
            f"{spec.constitution.name!r} ({len(spec.constitution.principles)} principles)"
        )
    if kind == "constitution":
        constitution = load_constitution(path)
        PriorityGraph(constitution)
        return (
            f"constitution {constitution.name!r} v{constitution.version}: "
            f"{len(constitution.principles)} principles, {len(constitution.priorities)} priority "
            f"edges, {len(constitution.rules)} conditional rules"
        )
    if kind == "overlay":
        overlay = load_overlay(path)
        return f"overlay {overlay.name!r}"
    if kind == "simulation":
        config = load_simulation_config(path)
        return (
            f"simulation settings: {config.episodes} episodes per configuration, "
            f"{len(config.case_mix)} case categories"
        )
    policy = load_policy(path)
    return f"escalation policy {policy.name!r}"


def register(app: typer.Typer) -> None:
    @app.command()
    def check(
        paths: Annotated[list[Path], typer.Argument(help="YAML files to validate.")],
    ) -> None:
        """Validate constitutions, overlays, hierarchies, escalation policies and simulation
        settings.

        Exit status 0 when every file is valid, 2 otherwise. Every problem of a file is listed
        (not only the first), each with the file, its line, the key and the fix."""
        failed = 0
        for path in paths:
            try:
                description = check_file(path)
            except OversightError as exc:
                failed += 1
                err_console.print(f"[red]✗[/] {escape(str(exc))}", highlight=False)
            else:
                line = escape(f"{path}: {description}")
                err_console.print(f"[green]✓[/] {line}", highlight=False)
        if failed:
            raise typer.Exit(2)
