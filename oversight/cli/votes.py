"""``oversight queue propose`` / ``proposals`` / ``tally``: stakeholder votes on constitution
changes (:mod:`oversight.escalation.votes`).

An admin puts the changes of an overlay file (or single edges and weights) to the vote;
stakeholders vote on the review page (``/votes``); ``tally`` counts the votes and writes the
adopted changes as an overlay with provenance. Errors exit with status 2; a tally with nothing
to adopt writes no file and exits with status 1 after saying why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .queue import QueueOption, cli_errors, open_queue, queue_app


def propose(
    ctx: typer.Context,
    overlay: Annotated[
        Path | None,
        typer.Argument(help="Overlay YAML whose added principles, weights and edges to propose."),
    ] = None,
    edge: Annotated[
        list[str] | None, typer.Option("--edge", help="A priority edge 'winner > loser'.")
    ] = None,
    weight: Annotated[
        list[str] | None, typer.Option("--weight", help="A principle's weight, id=number.")
    ] = None,
    by: Annotated[str, typer.Option("--by", help="Who proposes (recorded).")] = "admin",
    rationale: Annotated[str, typer.Option(help="Why (shown to the voters).")] = "",
    queue: QueueOption = None,
) -> None:
    """Put constitution changes to the stakeholders' vote; prints one proposal id per line."""
    from ..constitution import load_overlay
    from ..errors import InputError
    from ..escalation.votes import StakeholderVotes

    with cli_errors(), open_queue(ctx, queue) as human_queue:
        ballot = StakeholderVotes(human_queue.store)
        ids: list[str] = []
        if overlay is not None:
            ids += ballot.propose_overlay(load_overlay(overlay), by=by, rationale=rationale)
        for item in edge or []:
            winner, found, loser = item.partition(">")
            if not found:
                raise InputError(f"--edge {item!r}: write it as 'winner > loser'")
            change: dict[str, Any] = {"winner": winner.strip(), "loser": loser.strip()}
            ids.append(ballot.propose("edge", change, by=by, rationale=rationale))
        for item in weight or []:
            pid, found, value = item.partition("=")
            try:
                number = float(value)
            except ValueError:
                found = ""
            if not found:
                raise InputError(f"--weight {item!r}: write it as principle_id=number")
            change = {"principle_id": pid.strip(), "weight": number}
            ids.append(ballot.propose("weight", change, by=by, rationale=rationale))
        if not ids:
            raise InputError("nothing to propose: give an overlay file, --edge or --weight")
    typer.echo("\n".join(ids))
    typer.echo(f"{len(ids)} proposal(s) open for votes at /votes", err=True)


def tally(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the overlay YAML.")
    ] = Path("stakeholder-votes.yaml"),
    name: Annotated[str, typer.Option(help="The overlay's name.")] = "stakeholder-votes",
    constitution: Annotated[
        str | None,
        typer.Option(
            "--constitution", "-C", help="Check that the overlay applies to this constitution."
        ),
    ] = None,
    quorum: Annotated[int, typer.Option(min=1, help="Least approve+reject votes.")] = 1,
    threshold: Annotated[
        float, typer.Option(min=0.0, max=0.99, help="Approvals must exceed this share.")
    ] = 0.5,
    close: Annotated[bool, typer.Option(help="Close the tallied proposals.")] = False,
    queue: QueueOption = None,
) -> None:
    """Count the stakeholders' votes and write the adopted changes as an overlay."""
    from ..constitution import load_constitution
    from ..escalation.votes import StakeholderVotes, overlay_yaml

    with cli_errors(), open_queue(ctx, queue) as human_queue:
        ballot = StakeholderVotes(human_queue.store)
        base = load_constitution(constitution).name if constitution else None
        report = ballot.tally(name=name, base=base, quorum=quorum, threshold=threshold)
        typer.echo(report.summary())
        if report.overlay is None:
            raise typer.Exit(1)
        if constitution:
            load_constitution(constitution, overlays=[report.overlay])  # a cycle fails here
        header = (
            f"# Overlay adopted by stakeholder vote ({report.votes} vote(s) on "
            f"{len(report.proposals)} proposal(s)); `oversight queue tally` wrote it.\n"
            "# provenance: every proposal with its counts, agreement and voters.\n"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(header + overlay_yaml(report.overlay), encoding="utf-8")
        if close:
            for t in report.proposals:
                ballot.close(t.proposal.id)
    typer.echo(f"wrote {out}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``propose`` and ``tally`` to the ``queue`` group (mounting it when absent)."""
    if not any(info.typer_instance is queue_app for info in app.registered_groups):
        from .queue import register as register_queue

        register_queue(app)
    names = {c.name for c in queue_app.registered_commands}
    if "propose" not in names:
        queue_app.command("propose")(propose)
    if "tally" not in names:
        queue_app.command("tally")(tally)


__all__ = ["propose", "register", "tally"]
