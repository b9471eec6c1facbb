"""``oversight queue serve`` and ``oversight queue add-reviewer``: the review web page.

Both commands join the ``queue`` group of :mod:`oversight.cli.queue` (``queue_app``); when the
root app has no ``queue`` group yet, :func:`register` mounts it first. They take the group's
``--queue URL`` like every queue command.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import PrerequisiteError
from .queue import QueueOption, cli_errors, open_queue, queue_app

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..escalation import Case

_WEB_EXTRA = "pip install 'oversight[web]'"
_WORKER_SETTINGS = "OVERSIGHT_SERVE_SETTINGS"
"""Environment variable through which ``serve --workers N`` hands its settings to the worker
processes (uvicorn starts each one fresh and builds its app with :func:`worker_app`)."""


def priority_edges_from(constitution_path: str) -> Callable[[Case], Iterable[tuple[str, str]]]:
    """A ``case -> (winner, loser) edges`` function from a constitution file, for the graph."""
    import networkx as nx

    from ..constitution import load_constitution
    from ..paths import resolve_config
    from ..priority import PriorityGraph

    graph = PriorityGraph(load_constitution(resolve_config(constitution_path)))
    known = set(graph.principle_ids)

    def edges(case: Case) -> Iterable[tuple[str, str]]:
        context = case.details.get("context")
        context = context if isinstance(context, dict) else None
        involved = [p for p in case.principles if p in known]
        closure: nx.DiGraph = nx.DiGraph()
        closure.add_nodes_from(involved)
        closure.add_edges_from(
            (a, b) for a in involved for b in involved if a != b and graph.prevails(a, b, context)
        )
        return list(nx.transitive_reduction(closure).edges)

    return edges


def _build_app(settings: dict[str, Any]) -> tuple[FastAPI, Any]:
    """The review app and its queue for one server process."""
    from ..escalation import HumanQueue
    from ..escalation.accounts import ReviewerAccounts
    from ..web import create_app

    human_queue = HumanQueue(settings["url"], lease_seconds=settings["lease_seconds"])
    accounts = ReviewerAccounts(human_queue.store)
    constitution = settings.get("constitution")
    app = create_app(
        human_queue,
        accounts,
        runs_dir=settings["runs_dir"],
        priority_edges=priority_edges_from(constitution) if constitution else None,
        secure_cookies=settings["secure_cookies"],
    )
    return app, human_queue


def worker_app() -> FastAPI:
    """The app of one worker process of ``serve --workers N`` (a uvicorn factory): its
    settings come from the parent through the environment."""
    app, _queue = _build_app(json.loads(os.environ[_WORKER_SETTINGS]))
    return app


def serve(
    ctx: typer.Context,
    queue: QueueOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", help="Where runs live (links to training rows).")
    ] = Path("runs"),
    constitution: Annotated[
        str | None,
        typer.Option(help="Constitution file whose priority edges the case graph draws."),
    ] = None,
    lease_seconds: Annotated[float, typer.Option(help="Length of a claim.")] = 900.0,
    secure_cookies: Annotated[
        bool, typer.Option(help="Mark cookies Secure (when served behind HTTPS).")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes sharing the port (each with its own database connections); "
            "use about one per CPU core.",
        ),
    ] = 1,
) -> None:
    """Serve the review web page and JSON API (log in with `queue add-reviewer`'s token)."""
    with cli_errors():
        try:
            import uvicorn
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise PrerequisiteError(f"the web page needs uvicorn: {_WEB_EXTRA}") from exc
        try:
            from ..web import create_app  # noqa: F401
        except ImportError as exc:  # pragma: no cover
            raise PrerequisiteError(f"the web page needs FastAPI and Jinja2: {_WEB_EXTRA}") from exc

        # Open the queue once here: a bad URL or database fails now, before any worker starts,
        # and the tables are created by one process.
        with open_queue(ctx, queue, lease_seconds=lease_seconds) as checked:
            url = checked.url
        if constitution:
            priority_edges_from(constitution)  # a bad constitution fails here, once
        settings = {
            "url": url,
            "lease_seconds": lease_seconds,
            "runs_dir": str(runs_dir),
            "constitution": constitution,
            "secure_cookies": secure_cookies,
        }
        typer.echo(f"serving {url} on http://{host}:{port}/ with {workers} worker(s)", err=True)
        options: dict[str, Any] = {"log_level": "warning", "access_log": False}
        if workers == 1:
            app, human_queue = _build_app(settings)
            try:
                uvicorn.run(app, host=host, port=port, **options)
            finally:
                human_queue.close()
            return
        os.environ[_WORKER_SETTINGS] = json.dumps(settings)
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            # uvicorn restarts a worker that does not answer its health check in time; a fresh
            # worker imports the app first, which takes more than uvicorn's 5 s on a busy CPU.
            timeout_worker_healthcheck=60,
            **options,
        )


def add_reviewer(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Reviewer name (letters, digits, . _ @ -).")],
    admin: Annotated[bool, typer.Option("--admin", help="May break ties and withdraw.")] = False,
    stakeholder: Annotated[
        bool, typer.Option("--stakeholder", help="May vote on proposed constitution changes.")
    ] = False,
    queue: QueueOption = None,
) -> None:
    """Create a reviewer (or a new token for one) and print a one-time login token."""
    from ..escalation.accounts import ReviewerAccounts

    with cli_errors(), open_queue(ctx, queue) as human_queue:
        accounts = ReviewerAccounts(human_queue.store)
        token = accounts.add_reviewer(name, admin=admin, stakeholder=stakeholder)
    typer.echo(token)
    roles = "".join(
        f" ({role})" for role, held in (("admin", admin), ("stakeholder", stakeholder)) if held
    )
    typer.echo(
        f"one-time login token for {name}{roles}: it works once; paste it on the login page",
        err=True,
    )


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``add-reviewer`` to the ``queue`` group (mounting it when absent)."""
    if not any(info.typer_instance is queue_app for info in app.registered_groups):
        from .queue import register as register_queue

        register_queue(app)
    names = {c.name for c in queue_app.registered_commands}
    if "serve" not in names:
        queue_app.command("serve")(serve)
    if "add-reviewer" not in names:
        queue_app.command("add-reviewer")(add_reviewer)


__all__ = ["add_reviewer", "priority_edges_from", "register", "serve", "worker_app"]
