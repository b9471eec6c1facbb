"""``oversight worker``: serve some agents of a hierarchy over NATS."""

from __future__ import annotations

import signal
from typing import Annotated

import anyio
import typer

from ..errors import OversightError
from ._common import err_console, user_errors


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        hierarchy: Annotated[str, typer.Argument(help="Hierarchy YAML (the coordinator's).")],
        agents: Annotated[
            str, typer.Option(help="Agents to serve, comma-separated (harm-critic,safety).")
        ],
        bus: Annotated[
            str, typer.Option(help="NATS URL of the coordinator's server.")
        ] = "nats://127.0.0.1:4222",
        concurrency: Annotated[
            int, typer.Option(help="Requests served at once (they batch in the backends).")
        ] = 64,
        heartbeat: Annotated[
            float,
            typer.Option(
                help="Seconds between the heartbeats sent while a request is worked on: must "
                "be below the coordinator's --heartbeat-timeout (10 s by default)."
            ),
        ] = 1.0,
    ) -> None:
        """Serve agents of a hierarchy over NATS until stopped (Ctrl-C or SIGTERM).

        Replicas of one agent (the same --agents in several workers, on one machine or many)
        share its requests; `oversight run HIERARCHY --bus URL` sends them. Exits 2 on bad
        input (unknown agent, unreachable server)."""
        with user_errors():
            from ..hierarchy import load_hierarchy
            from ..paths import resolve_config
            from ..transport import Worker

            spec = load_hierarchy(resolve_config(hierarchy))
            names = [a.strip() for a in agents.split(",") if a.strip()]
            served = Worker(spec, names, bus, concurrency=concurrency, heartbeat=heartbeat)
            try:
                anyio.run(_serve, served)
            except BaseExceptionGroup as group:  # e.g. the server unreachable at start
                leaf: BaseException = group
                while isinstance(leaf, BaseExceptionGroup):
                    leaf = leaf.exceptions[0]
                if isinstance(leaf, OversightError):
                    raise leaf from None
                raise


async def _serve(served: object) -> None:
    from ..transport import Worker

    assert isinstance(served, Worker)
    async with anyio.create_task_group() as tg:
        await tg.start(served.serve)
        err_console.print(
            f"worker {served.id}: serving {', '.join(served.agents)} of "
            f"{served.spec.source or served.spec.name} (hash {served.hash}) on {served.url}",
            highlight=False,
        )
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                err_console.print(f"worker {served.id}: stopping ({served.served} answered)")
                tg.cancel_scope.cancel()
                break
