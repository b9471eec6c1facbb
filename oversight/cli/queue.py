"""``oversight queue ...``: list, show, claim, release, decide and withdraw escalated cases;
agreement between reviewers and agents' accuracy from their decisions (``audit-report``).

Every command takes ``--queue URL`` (on the group or on the command); the default is
``$OVERSIGHT_QUEUE``, else ``sqlite:///runs/queue.db``. Errors print one line on stderr and exit
with status 2. Other modules add commands to the same group through :data:`queue_app` and open
the queue the user chose with :func:`open_queue`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..errors import OversightError
from ..escalation import DEFAULT_URL, Case, Decision, HumanQueue, final_decision
from ..escalation.agreement import queue_agreement
from ..escalation.audits import audit_report

queue_app = typer.Typer(
    name="queue",
    help="Adjudicate escalated cases: list, show, claim, decide.",
    no_args_is_help=True,
)
"""The ``queue`` command group; the web page's ``serve`` and ``add-reviewer`` join it."""

_URL_KEY = "oversight.queue_url"

QueueOption = Annotated[
    str | None,
    typer.Option(
        "--queue",
        help="Queue database URL (default: $OVERSIGHT_QUEUE, else sqlite:///runs/queue.db).",
        show_default=False,
    ),
]
ReviewerOption = Annotated[str, typer.Option("--reviewer", "-r", help="Your reviewer name.")]


@queue_app.callback()
def _queue_group(ctx: typer.Context, queue: QueueOption = None) -> None:
    """Adjudicate escalated cases: list, show, claim, decide."""
    if queue:
        ctx.meta[_URL_KEY] = queue


def queue_url(ctx: typer.Context | None = None, url: str | None = None) -> str:
    """The queue URL: the command's ``--queue``, the group's, ``$OVERSIGHT_QUEUE``, default."""
    if url:
        return url
    if ctx is not None and ctx.meta.get(_URL_KEY):
        return str(ctx.meta[_URL_KEY])
    return os.environ.get("OVERSIGHT_QUEUE") or DEFAULT_URL


def open_queue(
    ctx: typer.Context | None = None, url: str | None = None, **options: Any
) -> HumanQueue:
    """Open the queue the user chose (see :func:`queue_url`); ``options`` go to HumanQueue."""
    return HumanQueue(queue_url(ctx, url), **options)


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Print framework and validation errors as one line on stderr and exit with status 2."""
    try:
        yield
    except OversightError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors())
        typer.echo(f"error: {problems}", err=True)
        raise typer.Exit(2) from None


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _age(when: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _reasoning(details: dict[str, Any]) -> Text:
    """The agents' reasoning as a reviewer reads it: each written critique (verdict, the quoted
    span, what a better answer would do), the safety agent's four answers, audits, the judgment
    and the resolution. Everything is plain text (rich markup in model output is not parsed)."""
    out = Text()
    for env in details.get("critiques", []):
        c = env.get("payload", env)
        out.append(
            f"[{c.get('candidate_id')}] {c.get('principle_id')}: {c.get('verdict')}", style="bold"
        )
        out.append(
            f"  ({env.get('sender')}, {c.get('method', 'rule')}, conf {c.get('confidence')})\n"
        )
        out.append(f"  {c.get('rationale', '')}\n")
        if c.get("suggestion"):
            out.append(f"  better: {c['suggestion']}\n")
    for env in details.get("safety", []):
        s = env.get("payload", env)
        out.append(f"[{s.get('candidate_id')}] safety: {s.get('action')}", style="bold")
        out.append(
            f"  facilitates harm {s.get('facilitates_harm', s.get('risk'))}, deceptive request "
            f"{s.get('deceptive_request')}, policy override {s.get('policy_override')}, "
            f"recommend {s.get('recommended')}; "
            f"signals {', '.join(s.get('signals') or []) or '-'}\n"
        )
    for key in ("audits", "judgment", "conflict", "resolution"):
        for env in details.get(key, []) if isinstance(details.get(key), list) else []:
            payload = env.get("payload", env)
            out.append(f"{key[:-1] if key == 'audits' else key}: ", style="bold")
            out.append(f"{payload.get('rationale', '')}\n")
    rest = {
        k: v
        for k, v in details.items()
        if k not in ("critiques", "safety", "audits", "judgment", "conflict", "resolution")
    }
    if rest:
        out.append(_dump(rest))
    return out


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _case_json(case: Case) -> dict[str, Any]:
    data = case.model_dump(mode="json")
    final = final_decision(case)
    data["final_decision"] = final.model_dump(mode="json") if final else None
    return data


@queue_app.command("list")
def list_command(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None,
        typer.Option(help="open, decided, tie or withdrawn (repeat for several)."),
    ] = None,
    run: Annotated[str | None, typer.Option(help="Only cases of this run.")] = None,
    principle: Annotated[str | None, typer.Option(help="Only cases involving it.")] = None,
    trigger: Annotated[str | None, typer.Option(help="Only cases escalated by it.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many cases.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many cases.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    queue: QueueOption = None,
) -> None:
    """List cases by priority (highest first), then age (oldest first)."""
    with cli_errors(), open_queue(ctx, queue) as q:
        cases = q.list_cases(
            status=status or None,
            run=run,
            principle=principle,
            trigger=trigger,
            limit=limit,
            offset=offset,
        )
        counts = q.counts(run=run)
    if as_json:
        typer.echo(_dump({"counts": counts.model_dump(), "cases": [_case_json(c) for c in cases]}))
        return
    table = Table(
        title="Escalated cases",
        caption=(
            f"open {counts.open} (claimed {counts.claimed}) · decided {counts.decided} · "
            f"tie {counts.tie} · withdrawn {counts.withdrawn}"
        ),
    )
    table.box = box.SIMPLE_HEAD
    table.pad_edge = False
    for column in ("case", "pri", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("run/episode", overflow="fold")
    table.add_column("triggers: principles", overflow="fold")
    table.add_column("rev", justify="right", no_wrap=True)
    table.add_column("held by", overflow="fold")
    table.add_column("age", justify="right", no_wrap=True)
    for case in cases:
        reviews = sum(1 for d in case.decisions if not d.tie_break)
        table.add_row(
            Text(case.id[:8]),
            str(case.priority),
            case.status,
            Text(f"{case.run}/{case.episode}"),
            Text(f"{', '.join(case.triggers)}: {', '.join(case.principles)}"),
            f"{reviews}/{case.reviewers_required}",
            Text(", ".join(lease.reviewer for lease in case.leases)),
            _age(case.created_at),
        )
    _console().print(table)


@queue_app.command("show")
def show_command(
    ctx: typer.Context,
    case_id: Annotated[
        str, typer.Argument(metavar="CASE", help="The case id (or its first characters).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    queue: QueueOption = None,
) -> None:
    """Show a case: the conversation, candidates, triggers and the agents' internal reasoning."""
    with cli_errors(), open_queue(ctx, queue) as q:
        case = q.get(q.complete_id(case_id))
    if as_json:
        typer.echo(_dump(_case_json(case)))
        return
    console = _console()
    header = Text(f"case {case.id}  ·  {case.status}  ·  priority {case.priority}\n")
    header.append(f"run {case.run}  ·  episode {case.episode}")
    if case.prompt_id:
        header.append(f"  ·  prompt {case.prompt_id}")
    header.append(f"\ntriggers: {', '.join(case.triggers) or '-'}")
    header.append(f"\nprinciples: {', '.join(case.principles) or '-'}")
    reviews = sum(1 for d in case.decisions if not d.tie_break)
    header.append(f"\nreviews: {reviews}/{case.reviewers_required}")
    if case.reason:
        header.append(f"\nreason: {case.reason}")
    console.print(Panel(header, title="Case"))
    for turn in case.prompt:
        console.print(
            Panel(Text(turn.content), title=Text(f"prompt · {turn.role}"), title_align="left")
        )
    for cand in case.candidates:
        mark = "  (proposed by the agents)" if cand.id == case.proposed else ""
        console.print(
            Panel(
                Text(cand.text),
                title=Text(f"candidate {cand.id} · {cand.source}{mark}"),
                title_align="left",
            )
        )
    if case.details:
        console.print(
            Panel(
                _reasoning(case.details),
                title="INTERNAL: agents' reasoning (for reviewers only; never shown to users)",
                title_align="left",
                border_style="yellow",
            )
        )
    for lease in case.leases:
        console.print(
            Text(f"claimed by {lease.reviewer} until {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC")
        )
    for d in case.decisions:
        what = f"chose {d.choice}" if d.choice is not None else "wrote an answer"
        line = Text(f"{'tie-break: ' if d.tie_break else ''}{d.reviewer} {what}")
        if d.rationale:
            line.append(f": {d.rationale}")
        if d.edited_text is not None:
            line.append(f"\n  {d.edited_text}")
        console.print(line)
    if case.status == "withdrawn":
        console.print(Text(f"withdrawn: {case.withdrawn_reason or ''}"))


@queue_app.command("claim")
def claim_command(
    ctx: typer.Context,
    case_id: Annotated[
        str, typer.Argument(metavar="CASE", help="The case id (or its first characters).")
    ],
    reviewer: ReviewerOption,
    lease_seconds: Annotated[
        float | None, typer.Option(help="How long the claim lasts (default: 900 s).")
    ] = None,
    queue: QueueOption = None,
) -> None:
    """Claim a case (or renew your claim) so that you can decide it."""
    with cli_errors(), open_queue(ctx, queue) as q:
        case_id = q.complete_id(case_id)
        lease = q.claim(case_id, reviewer, lease_seconds)
    typer.echo(f"{reviewer} claimed case {case_id} until {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC")


@queue_app.command("release")
def release_command(
    ctx: typer.Context,
    case_id: Annotated[
        str, typer.Argument(metavar="CASE", help="The case id (or its first characters).")
    ],
    reviewer: ReviewerOption,
    queue: QueueOption = None,
) -> None:
    """Give your claim on a case back."""
    with cli_errors(), open_queue(ctx, queue) as q:
        case_id = q.complete_id(case_id)
        released = q.release(case_id, reviewer)
    typer.echo(f"released case {case_id}" if released else f"{reviewer} held no claim on it")


@queue_app.command("decide")
def decide_command(
    ctx: typer.Context,
    case_id: Annotated[
        str, typer.Argument(metavar="CASE", help="The case id (or its first characters).")
    ],
    reviewer: ReviewerOption,
    rationale: Annotated[str, typer.Option(help="Why you decided so (kept for the audit).")],
    choose: Annotated[
        str | None, typer.Option("--choose", help="The candidate id you choose.")
    ] = None,
    edit: Annotated[str | None, typer.Option("--edit", help="Your own answer.")] = None,
    edit_file: Annotated[
        Path | None, typer.Option("--edit-file", help="A UTF-8 file holding your own answer.")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="A principle id you cite (repeatable).")
    ] = None,
    request_id: Annotated[
        str | None, typer.Option(help="Idempotency key: a retried decide applies once.")
    ] = None,
    tie_break: Annotated[
        bool, typer.Option("--tie-break", help="Settle a tied case (admins).")
    ] = False,
    queue: QueueOption = None,
) -> None:
    """Decide a case: choose a candidate, or give your own answer. Claims it if needed."""
    given = [
        name
        for name, v in (("--choose", choose), ("--edit", edit), ("--edit-file", edit_file))
        if v is not None
    ]
    if len(given) != 1:
        typer.echo(
            "error: give exactly one of --choose CANDIDATE, --edit TEXT or --edit-file FILE"
            + (f" (got {', '.join(given)})" if given else ""),
            err=True,
        )
        raise typer.Exit(2)
    if edit_file is not None:
        try:
            edit = edit_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            typer.echo(f"error: cannot read --edit-file {edit_file}: {exc}", err=True)
            raise typer.Exit(2) from None
    with cli_errors(), open_queue(ctx, queue, require_claim=False) as q:
        decision = Decision(
            choice=choose, edited_text=edit, rationale=rationale, principle_tags=tuple(tag or ())
        )
        case_id = q.complete_id(case_id)
        record = q.resolve(case_id, reviewer, decision, request_id, tie_break=tie_break)
    typer.echo(f"{reviewer} decided case {case_id}; the case is now {record.case_status}")


@queue_app.command("withdraw")
def withdraw_command(
    ctx: typer.Context,
    case_id: Annotated[
        str, typer.Argument(metavar="CASE", help="The case id (or its first characters).")
    ],
    reason: Annotated[str, typer.Option(help="Why the case is withdrawn.")],
    queue: QueueOption = None,
) -> None:
    """Withdraw an open or tied case."""
    with cli_errors(), open_queue(ctx, queue) as q:
        case_id = q.complete_id(case_id)
        q.withdraw(case_id, reason)
    typer.echo(f"withdrew case {case_id}")


@queue_app.command("agreement")
def agreement_command(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Option(help="Only cases of this run.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    queue: QueueOption = None,
) -> None:
    """Agreement between reviewers on decided cases (Cohen's and Fleiss' kappa)."""
    with cli_errors(), open_queue(ctx, queue) as q:
        cases: list[Case] = []
        while batch := q.list_cases(status="decided", run=run, limit=1000, offset=len(cases)):
            cases.extend(batch)
        report = queue_agreement(cases)
    if as_json:
        typer.echo(_dump(report.model_dump(mode="json")))
        return

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    console = _console()
    console.print(
        Text(
            f"{report.cases} decided cases, {report.multi_reviewer_cases} with several reviews; "
            f"Fleiss' kappa {fmt(report.fleiss_kappa)}, "
            f"Cohen's kappa (two reviews) {fmt(report.cohen_kappa)}"
        )
    )
    table = Table(title="Agreement with the final decision")
    for column in ("reviewer", "decided", "agreed", "rate", "kappa"):
        table.add_column(column)
    for r in report.per_reviewer:
        table.add_row(
            Text(r.reviewer), str(r.decided), str(r.agreed), f"{r.rate:.2f}", fmt(r.kappa)
        )
    console.print(table)


@queue_app.command("audit-report")
def audit_report_command(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Option(help="Only cases of this run.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    queue: QueueOption = None,
) -> None:
    """Each agent's accuracy on decided cases (random audit sample and escalated), 95% Wilson
    intervals: the chosen answer should be judged satisfied, a rejected one violated for the
    principles the reviewer cited, and the judge should rank the chosen answer first."""
    with cli_errors(), open_queue(ctx, queue) as q:
        cases: list[Case] = []
        while batch := q.list_cases(status="decided", run=run, limit=1000, offset=len(cases)):
            cases.extend(batch)
        report = audit_report(cases)
    if as_json:
        typer.echo(_dump(report.model_dump(mode="json")))
        return
    console = _console()
    console.print(
        Text(
            f"{report.cases} decided cases: {report.audit_cases} in the random audit sample, "
            f"{report.escalated_cases} escalated"
        )
    )
    if not report.rows:
        console.print(Text("no decided case has a finding that a decision labels yet"))
        return
    table = Table(title="Agent accuracy from human decisions (Wilson 95% interval)")
    for column in ("agent", "question", "sample", "scored", "false alarms", "misses"):
        table.add_column(column, justify="right" if column[0] in "sfm" else "left")
    table.add_column("accuracy", justify="right")
    table.add_column("95% interval", justify="right")
    for r in report.rows:
        table.add_row(
            Text(r.agent),
            Text(r.question),
            r.sample,
            str(r.n),
            str(r.false_alarms),
            str(r.misses),
            "n/a" if r.accuracy is None else f"{r.accuracy:.1%}",
            f"{r.low:.1%} - {r.high:.1%}",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Mount the ``queue`` command group on the root app."""
    app.add_typer(queue_app, name="queue")


__all__ = ["cli_errors", "open_queue", "queue_app", "queue_url", "register"]
