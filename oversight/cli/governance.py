"""``oversight replay`` and ``oversight explain``: governance over a finished run.

``replay RUN --constitution B`` re-decides the run's episodes from their recorded findings
under another constitution (no model calls) and lists the decisions that change; ``explain RUN
--episode ID`` (or ``--prompt``, ``--case``, ``--row sft.jsonl:3``) prints the preference chain
behind one answer. Errors exit with status 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import default_queue_url, user_errors

RunArg = Annotated[
    Path, typer.Argument(help="A run folder (runs/<name>), or a run name under --runs-dir.")
]
RunsDirOpt = Annotated[Path, typer.Option(help="Where runs are written.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def run_folder(run: Path, runs_dir: Path = Path("runs")) -> Path:
    """``run`` when it is a folder, else ``runs_dir/run``."""
    from ..errors import JournalError

    if (run / "journal.jsonl").is_file():
        return run
    if (runs_dir / run / "journal.jsonl").is_file():
        return runs_dir / run
    raise JournalError(
        f"{run}: no journal.jsonl there or in {runs_dir / run}; pass a run folder (runs/<name>)"
    )


def _hierarchy(run_dir: Path, hierarchy: str | None) -> Any:
    from ..errors import InputError
    from ..hierarchy import load_hierarchy

    if hierarchy is None:
        summary = run_dir / "summary.json"
        try:
            hierarchy = json.loads(summary.read_text()).get("hierarchy")
        except (OSError, json.JSONDecodeError):
            hierarchy = None
        if not hierarchy:
            raise InputError(
                f"{run_dir}: cannot tell which hierarchy ran (no summary.json naming it); pass "
                "--hierarchy roles/<file>.yaml"
            )
    return load_hierarchy(hierarchy)


def replay_command(
    run: Path,
    *,
    constitution: str | None = None,
    overlays: list[str] | None = None,
    hierarchy: str | None = None,
    runs_dir: Path = Path("runs"),
) -> Any:
    """The ``oversight replay`` command as a function: the :class:`ReplayReport`."""
    from ..constitution import load_constitution
    from ..replay import replay_run

    run_dir = run_folder(run, runs_dir)
    spec = _hierarchy(run_dir, hierarchy)
    other = load_constitution(constitution, overlays=overlays or []) if constitution else None
    return replay_run(run_dir, spec, other)


def explain_command(
    run: Path,
    *,
    episode: str | None = None,
    prompt: str | None = None,
    case: str | None = None,
    row: str | None = None,
    runs_dir: Path = Path("runs"),
    queue_url: str | None = None,
) -> Any:
    """The ``oversight explain`` command as a function: the :class:`PreferenceChain`, with
    people's decisions from the queue when it has the case."""
    from ..escalation import HumanQueue
    from ..explain import chain_from_journal, episode_envelopes
    from ..messages import Escalation

    run_dir = run_folder(run, runs_dir)
    envs = episode_envelopes(run_dir, episode=episode, prompt_id=prompt, case_id=case, row=row)
    decisions: list[Any] = []
    escalation = next((e.payload for e in envs if isinstance(e.payload, Escalation)), None)
    url = queue_url or default_queue_url(run_dir.parent)
    if escalation is not None and (queue_url or (run_dir.parent / "queue.db").is_file()):
        from ..errors import CaseNotFound

        with HumanQueue(url, require_claim=False) as queue:
            try:
                decisions = list(queue.get(escalation.case_id).decisions)
            except CaseNotFound:
                decisions = []
    return chain_from_journal(envs, decisions)


def register(app: typer.Typer) -> None:
    @app.command("replay")
    def replay(
        run: RunArg,
        constitution: Annotated[
            str | None,
            typer.Option(
                "--constitution",
                "-C",
                help="Constitution to decide under (default: the hierarchy's, per request).",
            ),
        ] = None,
        overlay: Annotated[
            list[str] | None, typer.Option("--overlay", "-o", help="Overlay, applied in order.")
        ] = None,
        hierarchy: Annotated[
            str | None,
            typer.Option(help="The run's hierarchy (default: the one summary.json names)."),
        ] = None,
        runs_dir: RunsDirOpt = Path("runs"),
        show_all: Annotated[
            bool, typer.Option("--all", help="List every episode, not only changed ones.")
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Re-decide a run's episodes under another constitution from their recorded findings
        (no model calls) and list the decisions that change."""
        with user_errors():
            report = replay_command(
                run,
                constitution=constitution,
                overlays=overlay,
                hierarchy=hierarchy,
                runs_dir=runs_dir,
            )
        if as_json:
            typer.echo(json.dumps(report.as_dict(), indent=2))
        else:
            typer.echo(report.format(show_all=show_all))

    @app.command("explain")
    def explain(
        run: RunArg,
        episode: Annotated[
            str | None, typer.Option(help="Episode id (or its first 6+ characters).")
        ] = None,
        prompt: Annotated[str | None, typer.Option(help="The prompt's id.")] = None,
        case: Annotated[str | None, typer.Option(help="The review case's id.")] = None,
        row: Annotated[
            str | None, typer.Option(help="A training row: FILE:LINE, e.g. sft.jsonl:3.")
        ] = None,
        runs_dir: RunsDirOpt = Path("runs"),
        queue: Annotated[
            str | None,
            typer.Option(help="Queue URL for people's decisions (default: runs/queue.db)."),
        ] = None,
        as_json: JsonOpt = False,
    ) -> None:
        """The preference chain behind an answer: prompt, constitution and overlays, candidates,
        critiques with principle versions, judge ranking, priority path, decision, people."""
        with user_errors():
            chain = explain_command(
                run,
                episode=episode,
                prompt=prompt,
                case=case,
                row=row,
                runs_dir=runs_dir,
                queue_url=queue,
            )
        if as_json:
            typer.echo(json.dumps(chain.as_dict(), indent=2, ensure_ascii=False))
        else:
            typer.echo(chain.format())


__all__ = ["explain_command", "register", "replay_command", "run_folder"]
