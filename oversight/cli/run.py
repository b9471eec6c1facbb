"""``oversight run`` and ``oversight export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from ._common import default_queue_url, err_console, user_errors


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        hierarchy: Annotated[
            str, typer.Argument(help="Hierarchy YAML (roles/...).")
        ] = "roles/default.yaml",
        prompts: Annotated[
            Path | None,
            typer.Option(help="Prompt file (.jsonl or .txt); default: the built-in prompt set."),
        ] = None,
        name: Annotated[
            str | None, typer.Option(help="Run name (default: the hierarchy's).")
        ] = None,
        runs_dir: Annotated[Path, typer.Option(help="Where runs are written.")] = Path("runs"),
        concurrency: Annotated[
            int | None, typer.Option(help="Episodes at once (default: the hierarchy's).")
        ] = None,
        limit: Annotated[int | None, typer.Option(help="Only the first N prompts.")] = None,
        resume: Annotated[
            bool, typer.Option(help="Finish an interrupted run (no lost or duplicated rows).")
        ] = False,
        queue: Annotated[
            str | None, typer.Option(help="Queue URL (default $OVERSIGHT_QUEUE or runs/queue.db).")
        ] = None,
        timeout: Annotated[
            float | None,
            typer.Option(help="Seconds before an episode fails (default: the hierarchy's)."),
        ] = None,
        max_prompt_chars: Annotated[
            int, typer.Option(help="Longer prompts fail their episode.")
        ] = 32_000,
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    ) -> None:
        """Run constitutional oversight over a prompt set and write journal, rows and summary."""
        with user_errors():
            summary = run_command(
                hierarchy,
                prompts=prompts,
                name=name,
                runs_dir=runs_dir,
                concurrency=concurrency,
                limit=limit,
                resume=resume,
                queue_url=queue,
                timeout=timeout,
                max_prompt_chars=max_prompt_chars,
                show_progress=not as_json,
            )
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
        else:
            print_summary(summary)

    @app.command()
    def export(
        run_dir: Annotated[Path, typer.Argument(help="A run folder (runs/<name>).")],
        queue: Annotated[
            str | None, typer.Option(help="Queue URL (default: the one the run used).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print counts as JSON.")] = False,
    ) -> None:
        """Rebuild sft.jsonl and dpo.jsonl of a run, including human decisions made since."""
        with user_errors():
            result = export_command(run_dir, queue)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        else:
            err_console.print(
                f"{run_dir}: {result['sft_rows']} SFT rows ({result['human_rows']} from human "
                f"decisions), {result['dpo_rows']} DPO pairs, {result['pending_cases']} cases "
                "still waiting for reviewers"
            )


def _open_queue(url: str) -> Any:
    from ..escalation import HumanQueue

    return HumanQueue(url, require_claim=False)


def run_command(
    hierarchy: str,
    *,
    prompts: Path | None = None,
    name: str | None = None,
    runs_dir: Path = Path("runs"),
    concurrency: int | None = None,
    limit: int | None = None,
    resume: bool = False,
    queue_url: str | None = None,
    timeout: float | None = None,
    max_prompt_chars: int = 32_000,
    show_progress: bool = True,
) -> dict[str, Any]:
    """The ``oversight run`` command as a function (used by tests and examples)."""
    from ..errors import InputError
    from ..export import export_run
    from ..hierarchy import load_hierarchy
    from ..paths import resolve_config
    from ..prompts import load_prompts
    from ..runtime import Runtime

    spec = load_hierarchy(resolve_config(hierarchy))
    items = load_prompts(prompts, limit=max_prompt_chars)
    if limit is not None:
        if limit < 1:
            raise InputError("--limit must be at least 1")
        items = items[:limit]
    run_name = name or spec.name
    run_dir = runs_dir / run_name
    url = queue_url or default_queue_url(runs_dir)
    queue = _open_queue(url)
    runtime = Runtime(
        spec,
        run_name=run_name,
        run_dir=run_dir,
        queue=queue,
        concurrency=concurrency,
        episode_timeout=timeout if timeout is not None else spec.settings.episode_timeout,
    )
    try:
        if show_progress:
            with Progress(
                TextColumn(f"[bold]{run_name}[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TokenRateColumn(runtime.backends.values()),
                TextColumn("{task.fields[status]}"),
                console=err_console,
            ) as bar:
                task = bar.add_task("episodes", total=len(items), status="")
                counts = {"consensus": 0, "escalated": 0, "failed": 0}

                def on_outcome(outcome: Any) -> None:
                    counts[outcome.status] += 1
                    bar.update(
                        task,
                        advance=1,
                        status=" ".join(f"{k}={v}" for k, v in counts.items()),
                    )

                runtime.on_outcome.append(on_outcome)
                if resume:
                    bar.update(task, status="resuming")
                result = anyio.run(lambda: runtime.run(items, resume=resume))
                bar.update(task, completed=len(items))
        else:
            result = anyio.run(lambda: runtime.run(items, resume=resume))
        exported = export_run(run_dir, queue=queue)
    finally:
        queue.close()
    summary = _merge_summary(run_dir, result, exported.as_dict(), spec, url, len(items))
    summary["precision"] = {  # the dtype each local model ran in, and why
        name: choice.as_dict()
        for name, backend in runtime.backends.items()
        if (choice := getattr(backend, "dtype_choice", None)) is not None
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


class TokenRateColumn(ProgressColumn):
    """Tokens generated so far and tokens/s, read live from the backends' batching counters."""

    def __init__(self, backends: Any) -> None:
        super().__init__()
        found = {id(s): s for b in backends if (s := getattr(b, "stats", None)) is not None}
        self.stats = list(found.values())  # a backend shared by several roles counts once

    def render(self, task: Task) -> Text:
        tokens = sum(getattr(s, "tokens", 0) for s in self.stats)
        if not self.stats:
            return Text("")
        elapsed = task.elapsed or 0.0
        speed = f"{tokens / elapsed:,.0f} tok/s" if elapsed > 0 else "- tok/s"
        return Text(f"{tokens:,} tokens {speed}", style="cyan")


def _merge_summary(
    run_dir: Path, result: Any, exported: dict[str, Any], spec: Any, url: str, total: int
) -> dict[str, Any]:
    """Counts of this invocation merged with what earlier (interrupted) invocations did."""
    from ..journal import read_journal

    scan = read_journal(run_dir / "journal.jsonl", strict=False)
    status = {"consensus": 0, "escalated": 0, "failed": 0}
    strategies: dict[str, int] = {}
    violations: dict[str, set[str]] = {}
    triggers: dict[str, int] = {}
    sources: dict[str, int] = {}
    for env in scan.envelopes:
        p = env.payload
        if p.kind == "consensus":
            status["consensus"] += 1
            strategies[p.strategy] = strategies.get(p.strategy, 0) + 1
            sources[p.source] = sources.get(p.source, 0) + 1
        elif p.kind == "escalation":
            status["escalated"] += 1
            for t in p.triggers:
                triggers[t] = triggers.get(t, 0) + 1
        elif p.kind == "failure":
            status["failed"] += 1
        elif p.kind == "resolution" and p.strategy == "human":
            strategies["human"] = strategies.get("human", 0) + 1
        elif p.kind in ("critique", "safety_assessment") and p.candidate_id == "c0":
            verdict = getattr(p, "verdict", None) or (
                "violated" if getattr(p, "action", "allow") == "revise" else "satisfied"
            )
            if verdict == "violated":
                violations.setdefault(p.principle_id, set()).add(env.episode)
    this = result.counts()
    return {
        "run": result.run,
        "hierarchy": spec.source,
        "constitution": f"{spec.constitution.name}@{spec.constitution.version}",
        "queue": url,
        "prompts": total,
        "episodes": sum(status.values()),
        **status,
        "rows": {
            "sft": exported["sft_rows"],
            "dpo": exported["dpo_rows"],
            "human": exported["human_rows"],
        },
        "pending_cases": exported["pending_cases"],
        "violations_per_principle": {k: len(v) for k, v in sorted(violations.items())},
        "resolutions_per_strategy": dict(sorted(strategies.items())),
        "escalation_triggers": dict(sorted(triggers.items())),
        "targets_per_source": dict(sorted(sources.items())),
        "this_invocation": {
            k: this[k]
            for k in (
                "episodes",
                "skipped_finished",
                "wall_seconds",
                "episodes_per_second",
                "messages",
            )
        },
    }


def export_command(run_dir: Path, queue_url: str | None) -> dict[str, Any]:
    from ..errors import JournalError
    from ..export import export_run

    if not (run_dir / "journal.jsonl").exists():
        raise JournalError(f"{run_dir}: no journal.jsonl here; pass a run folder (runs/<name>)")
    url = queue_url
    summary_path = run_dir / "summary.json"
    if url is None and summary_path.exists():
        url = json.loads(summary_path.read_text()).get("queue")
    url = url or default_queue_url(run_dir.parent)
    queue = _open_queue(url)
    try:
        result = export_run(run_dir, queue=queue).as_dict()
    finally:
        queue.close()
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        summary["rows"] = {
            "sft": result["sft_rows"],
            "dpo": result["dpo_rows"],
            "human": result["human_rows"],
        }
        summary["pending_cases"] = result["pending_cases"]
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return result


def print_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"run {summary['run']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = summary["rows"]
    for key, value in [
        ("episodes", summary["episodes"]),
        ("consensus", summary["consensus"]),
        ("escalated to people", summary["escalated"]),
        ("failed", summary["failed"]),
        ("SFT rows / DPO pairs", f"{rows['sft']} / {rows['dpo']}"),
        ("draft violations", _fmt(summary["violations_per_principle"])),
        ("resolutions", _fmt(summary["resolutions_per_strategy"])),
        ("escalation triggers", _fmt(summary["escalation_triggers"])),
        ("targets from", _fmt(summary["targets_per_source"])),
        ("queue", summary["queue"]),
    ]:
        table.add_row(key, str(value))
    err_console.print(table)


def _fmt(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"
