"""``oversight run`` and ``oversight export``."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
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
        max_failures: Annotated[
            str,
            typer.Option(
                help="Failed episodes allowed before the exit status is 1: a count (3) or a "
                "share of the episodes (0.05 or 5%)."
            ),
        ] = "0",
        bus: Annotated[
            str | None,
            typer.Option(
                help="NATS URL (nats://127.0.0.1:4222): send agent requests to `oversight "
                "worker` processes; agents no worker serves run here. Default: in-process."
            ),
        ] = None,
        wait_workers: Annotated[
            int, typer.Option(help="With --bus: wait (up to 60 s) until this many workers answer.")
        ] = 0,
        heartbeat_timeout: Annotated[
            float,
            typer.Option(
                help="With --bus: seconds without word from the worker holding a request (no "
                "heartbeat, no answer) before the request is sent again, to another replica. "
                "Must exceed the workers' --heartbeat; raise it where workers stall (e.g. "
                "loading a model)."
            ),
        ] = 10.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    ) -> None:
        """Run constitutional oversight over a prompt set and write journal, rows and summary.

        Exits 1 when more episodes failed than ``--max-failures`` allows (default: none), 2 on
        bad input."""
        with user_errors():
            budget = FailureBudget.parse(max_failures)
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
                bus=bus,
                wait_workers=wait_workers,
                heartbeat_timeout=heartbeat_timeout,
            )
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
        else:
            print_summary(summary)
        allowed = budget.allowed(summary["episodes"])
        if summary["failed"] > allowed:
            err_console.print(
                f"[red]error:[/red] {summary['failed']} of {summary['episodes']} episodes failed "
                f"(allowed: {allowed}, --max-failures {max_failures}); the reasons are the "
                f"'failure' lines of {runs_dir / summary['run'] / 'journal.jsonl'}"
            )
            raise typer.Exit(1)

    @app.command()
    def export(
        run_dir: Annotated[Path, typer.Argument(help="A run folder (runs/<name>).")],
        queue: Annotated[
            str | None, typer.Option(help="Queue URL (default: the one the run used).")
        ] = None,
        self_critique: Annotated[
            bool,
            typer.Option(
                "--self-critique",
                help="Also write self_critique.jsonl: critique and critique-then-revision rows "
                "(internal reasoning as targets; a separate opt-in file).",
            ),
        ] = False,
        satisfied_rate: Annotated[
            float,
            typer.Option(help="Share of 'satisfied' critiques kept as self-critique rows."),
        ] = 0.1,
        as_json: Annotated[bool, typer.Option("--json", help="Print counts as JSON.")] = False,
    ) -> None:
        """Rebuild sft.jsonl and dpo.jsonl of a run, including human decisions made since."""
        with user_errors():
            result = export_command(
                run_dir, queue, self_critique=self_critique, satisfied_rate=satisfied_rate
            )
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        else:
            err_console.print(
                f"{run_dir}: {result['sft_rows']} SFT rows ({result['human_rows']} from human "
                f"decisions), {result['dpo_rows']} DPO pairs, {result['pending_cases']} cases "
                "still waiting for reviewers"
            )
            if "self_critique" in result:
                sc = result["self_critique"]
                skipped = ", ".join(f"{k} {v}" for k, v in sc["skipped"].items()) or "none"
                err_console.print(
                    f"{run_dir / 'self_critique.jsonl'}: {sc['critique_rows']} critique rows, "
                    f"{sc['revision_rows']} critique-then-revision rows; skipped: {skipped}"
                )


@dataclass(frozen=True)
class FailureBudget:
    """How many failed episodes ``oversight run`` tolerates before it exits 1."""

    count: int | None = 0
    """A number of episodes (``--max-failures 3``)."""
    share: float | None = None
    """A share of the run's episodes (``--max-failures 0.05`` or ``5%``), rounded down."""

    @classmethod
    def parse(cls, text: str) -> FailureBudget:
        """``0``, ``3`` -> a count; ``0.05``, ``5%`` -> a share; anything else is an error."""
        from ..errors import InputError

        raw = text.strip()
        try:
            value = float(raw.removesuffix("%"))
        except ValueError:
            value = math.nan
        if raw.endswith("%") and 0.0 <= value <= 100.0:
            return cls(count=None, share=value / 100.0)
        if not raw.endswith("%") and 0.0 < value < 1.0:
            return cls(count=None, share=value)
        if not raw.endswith("%") and value >= 0.0 and value == int(value):
            return cls(count=int(value))
        raise InputError(
            f"--max-failures {text!r}: expected a number of episodes (0, 3) or a share of "
            "them (0.05 or 5%)"
        )

    def allowed(self, episodes: int) -> int:
        """Failed episodes allowed in a run of ``episodes``."""
        if self.share is not None:
            return math.floor(self.share * episodes + 1e-9)
        return int(self.count or 0)


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
    bus: str | None = None,
    wait_workers: int = 0,
    heartbeat_timeout: float = 10.0,
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
    remote = None
    if bus is not None:
        from ..transport import RemoteAgents

        remote = RemoteAgents(
            bus, spec, wait_workers=wait_workers, heartbeat_timeout=heartbeat_timeout
        )
    queue = _open_queue(url)
    runtime = Runtime(
        spec,
        run_name=run_name,
        run_dir=run_dir,
        queue=queue,
        concurrency=concurrency,
        episode_timeout=timeout if timeout is not None else spec.settings.episode_timeout,
        remote=remote,
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
    summary["feedback"] = _feedback(run_dir, runtime)
    if remote is not None:
        summary["transport"] = remote.summary()
    summary["precision"] = {  # the dtype each local model ran in, and why
        name: choice.as_dict()
        for name, backend in runtime.backends.items()
        if (choice := getattr(backend, "dtype_choice", None)) is not None
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _feedback(run_dir: Path, runtime: Any) -> dict[str, Any]:
    """The run's feedback figures (:func:`oversight.critiques.feedback_summary`), with the
    agents' own counts (parse problems, rejected revisions) from this invocation."""
    from collections import Counter

    from ..critiques import feedback_summary
    from ..journal import read_journal

    stats: Counter[str] = Counter()
    for agent in getattr(runtime, "agents", {}).values():
        stats.update(getattr(agent, "stats", {}))
    scan = read_journal(run_dir / "journal.jsonl", strict=False)
    return feedback_summary(scan.envelopes, dict(stats))


class TokenRateColumn(ProgressColumn):
    """Tokens generated so far and tokens/s, read live from the backends' batching counters."""

    def __init__(self, backends: Any) -> None:
        super().__init__()
        self.backends = backends
        """A live view (``runtime.backends.values()``): with --bus the backends of the agents
        run here are built once the workers are found."""

    @property
    def stats(self) -> list[Any]:
        backends = tuple(self.backends)  # one C-level copy: the run may add one meanwhile
        found = {id(s): s for b in backends if (s := getattr(b, "stats", None)) is not None}
        return list(found.values())  # a backend shared by several roles counts once

    def render(self, task: Task) -> Text:
        stats = self.stats
        tokens = sum(getattr(s, "tokens", 0) for s in stats)
        if not stats:
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
    failed: set[str] = set()  # an episode may hold two failure lines (a late reply's)
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
        elif p.kind == "failure" and env.episode not in failed:
            failed.add(env.episode)
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


def _principle_names(summary: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(principle id, version) -> name from the run's hierarchy, when it still loads."""
    from ..errors import OversightError
    from ..hierarchy import load_hierarchy

    source = summary.get("hierarchy")
    if not source:
        return {}
    try:
        constitution = load_hierarchy(source).constitution
    except (OversightError, OSError):
        return {}  # moved or edited since the run: the critique requests name principle ids
    return {(p.id, p.version): p.name for p in constitution.principles}


def export_command(
    run_dir: Path,
    queue_url: str | None,
    *,
    self_critique: bool = False,
    satisfied_rate: float = 0.1,
) -> dict[str, Any]:
    from ..errors import InputError, JournalError
    from ..export import export_run

    if not (run_dir / "journal.jsonl").exists():
        raise JournalError(f"{run_dir}: no journal.jsonl here; pass a run folder (runs/<name>)")
    if not 0.0 <= satisfied_rate <= 1.0:
        raise InputError(f"--satisfied-rate must be between 0 and 1, got {satisfied_rate}")
    url = queue_url
    summary_path = run_dir / "summary.json"
    previous = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if url is None:
        url = previous.get("queue")
    url = url or default_queue_url(run_dir.parent)
    queue = _open_queue(url)
    try:
        result = export_run(
            run_dir,
            queue=queue,
            self_critique=self_critique,
            satisfied_rate=satisfied_rate,
            principle_names=_principle_names(previous) if self_critique else None,
        ).as_dict()
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
        if "self_critique" in result:
            summary["self_critique"] = result["self_critique"]
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
