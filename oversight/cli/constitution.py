"""``oversight constitution ...``: inspect a constitution and try its conflict resolution.

``show`` prints the principles, the priority edges and the conditional rules that apply to a
context (overlays applied); ``diff A B`` lists principle, edge and rule changes; ``resolve``
settles a conflict between candidates given the principles each violates, the way the decision
core does. Errors exit with status 2.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ._common import user_errors

DEFAULT = "constitutions/default.yaml"

ConstitutionOpt = Annotated[
    str, typer.Option("--constitution", "-C", help="Constitution YAML file.")
]
OverlayOpt = Annotated[
    list[str] | None, typer.Option("--overlay", "-o", help="Overlay file, applied in order.")
]
ContextOpt = Annotated[
    list[str] | None,
    typer.Option("--context", "-c", help="Context fact key=value (e.g. domain=medical)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _pairs(items: list[str] | None, what: str, sep: str = "=") -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, found, value = item.partition(sep)
        if not found or not key.strip():
            raise typer.BadParameter(f"{item!r}: write {what} as key{sep}value")
        out[key.strip()] = value.strip()
    return out


def _load(path: str, overlays: list[str] | None) -> Any:
    from ..constitution import load_constitution
    from ..priority import PriorityGraph

    return PriorityGraph(load_constitution(path, overlays=overlays or []))


def show_command(
    path: str = DEFAULT,
    overlays: list[str] | None = None,
    context: dict[str, str] | None = None,
    as_json: bool = False,
) -> None:
    """Print a constitution's principles, its edges in a context and the rules that apply."""
    graph = _load(path, overlays)
    c = graph.constitution
    edges = [list(edge) for edge in graph.graph(context).edges]
    rules = list(graph.context_key(context))
    if as_json:
        summary = {
            "name": c.name,
            "version": c.version,
            "overlays": list(c.overlays),
            "principles": [
                {
                    "id": p.id,
                    "version": p.version,
                    "category": p.category,
                    "weight": p.weight,
                    "severity": p.severity,
                    "refusal_template": p.refusal_template is not None,
                }
                for p in c.principles
            ],
            "context": context or {},
            "rules_applied": rules,
            "edges": edges,
        }
        typer.echo(json.dumps(summary, indent=2))
        return
    console = Console(soft_wrap=True)
    title = f"{c.name} v{c.version}" + "".join(f" + {name}" for name in c.overlays)
    table = Table(title=title)
    for column in ("id", "version", "category", "weight", "severity", "refusal"):
        table.add_column(column)
    for p in c.principles:
        table.add_row(
            p.id, p.version, p.category, f"{p.weight:g}", f"{p.severity:g}",
            "yes" if p.refusal_template else "",
        )  # fmt: skip
    console.print(table)
    console.print("priority edges (winner > loser):", highlight=False)
    for winner, loser in edges:
        console.print(f"  {winner} > {loser}", highlight=False)
    console.print(f"rules applied: {', '.join(rules) or 'none'}", highlight=False)


def resolve_command(
    candidates: dict[str, list[str]],
    path: str = DEFAULT,
    overlays: list[str] | None = None,
    context: dict[str, str] | None = None,
    margin: float = 0.1,
    as_json: bool = False,
) -> None:
    """Resolve a conflict between candidates given the principles each violates."""
    graph = _load(path, overlays)
    result = graph.resolve(candidates, context=context, margin=margin)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result), indent=2))
        return
    strategy = result.strategy or "open (hierarchical review or people)"
    typer.echo(f"strategy: {strategy}\nwinner: {result.winner or '-'}\n{result.rationale}")


def diff_command(
    a: str,
    b: str,
    overlays_a: list[str] | None = None,
    overlays_b: list[str] | None = None,
    as_json: bool = False,
) -> dict[str, Any]:
    """Print what changes from constitution A to B (principles, edges, rules); return it."""
    from ..constitution import load_constitution
    from ..governance import diff_constitutions, format_diff

    diff = diff_constitutions(
        load_constitution(a, overlays=overlays_a or []),
        load_constitution(b, overlays=overlays_b or []),
    )
    typer.echo(json.dumps(diff, indent=2) if as_json else format_diff(diff))
    return diff


def draft_command(
    document: str,
    out: str | None = None,
    name: str | None = None,
    base: str = DEFAULT,
    model: str | None = None,
    model_options: dict[str, str] | None = None,
) -> None:
    """Draft candidate principles from a policy document as an overlay (see
    :mod:`oversight.drafting`); print it, or write it to ``out``."""
    from pathlib import Path

    from ..constitution import load_constitution
    from ..drafting import Drafter, ModelDrafter, RuleDrafter, draft_overlay, read_policy
    from ..escalation.votes import overlay_yaml

    text = read_policy(document)
    constitution = load_constitution(base)
    drafter: Drafter = RuleDrafter()
    if model:
        from ..backends import create_backend

        drafter = ModelDrafter(create_backend(model, **(model_options or {})), name=model)
    overlay = draft_overlay(
        text,
        document=document,
        name=name or f"{Path(document).stem}-drafted",
        base=constitution,
        drafter=drafter,
    )
    load_constitution(base, overlays=[overlay])  # the draft applies (no clash, no cycle)
    header = (
        f"# Drafted by `oversight constitution draft {Path(document).name}` "
        f"({overlay.provenance['drafter']} drafter): candidate principles for a person to\n"
        "# review. Each cites its paragraph under provenance.paragraphs.\n"
    )
    text_out = header + overlay_yaml(overlay)
    if out is None:
        typer.echo(text_out, nl=False)
        return
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text_out, encoding="utf-8")
    count = len(overlay.add_principles)
    typer.echo(f"wrote {out}: {count} candidate principle(s) from {document}", err=True)


def register(app: typer.Typer) -> None:
    constitution_app = typer.Typer(
        name="constitution",
        help="Inspect constitutions: principles, priority graph, conflict resolution.",
        no_args_is_help=True,
    )

    @constitution_app.command("show")
    def show(
        path: Annotated[str, typer.Argument(help="Constitution YAML file.")] = DEFAULT,
        overlay: OverlayOpt = None,
        context: ContextOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Principles, weights, and which principle prevails over which in a context."""
        facts = _pairs(context, "--context")
        with user_errors():
            show_command(path, overlay, facts, as_json)

    @constitution_app.command("resolve")
    def resolve(
        candidate: Annotated[
            list[str],
            typer.Argument(help="candidate=principle,principle (e.g. c0=harm c1=helpfulness)."),
        ],
        constitution: ConstitutionOpt = DEFAULT,
        overlay: OverlayOpt = None,
        context: ContextOpt = None,
        margin: Annotated[
            float, typer.Option(help="Least cost gap for weighted scoring to decide.")
        ] = 0.1,
        as_json: JsonOpt = False,
    ) -> None:
        """Which candidate wins when candidates violate different principles, and why."""
        facts = _pairs(context, "--context")
        parsed = {
            cid: [p.strip() for p in pids.split(",") if p.strip()]
            for cid, pids in _pairs(candidate, "a candidate").items()
        }
        with user_errors():
            resolve_command(parsed, constitution, overlay, facts, margin, as_json)

    @constitution_app.command("diff")
    def diff(
        a: Annotated[str, typer.Argument(help="Constitution A (YAML file).")],
        b: Annotated[str, typer.Argument(help="Constitution B (YAML file).")],
        overlay_a: Annotated[
            list[str] | None, typer.Option("--overlay-a", help="Overlay applied to A.")
        ] = None,
        overlay_b: Annotated[
            list[str] | None,
            typer.Option("--overlay-b", "-o", help="Overlay applied to B (e.g. A + an overlay)."),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """What changes from A to B: principles added, removed and changed, priority edges and
        conditional rules added and removed."""
        with user_errors():
            diff_command(a, b, overlay_a, overlay_b, as_json)

    @constitution_app.command("draft")
    def draft(
        document: Annotated[str, typer.Argument(help="Policy document (text or Markdown).")],
        out: Annotated[
            str | None, typer.Option("--out", "-o", help="Write the overlay here (else stdout).")
        ] = None,
        name: Annotated[
            str | None, typer.Option(help="Overlay name (default: <stem>-drafted).")
        ] = None,
        base: ConstitutionOpt = DEFAULT,
        model: Annotated[
            str | None,
            typer.Option(help="Backend that drafts the purposes (default: offline rules)."),
        ] = None,
        model_option: Annotated[
            list[str] | None, typer.Option("--model-option", help="Backend option key=value.")
        ] = None,
    ) -> None:
        """Candidate principles from a policy document, each citing its paragraph."""
        options = _pairs(model_option, "--model-option")
        with user_errors():
            draft_command(document, out, name, base, model, options)

    app.add_typer(constitution_app)


__all__ = ["diff_command", "draft_command", "register", "resolve_command", "show_command"]
