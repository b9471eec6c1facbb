"""``oversight schema``: print the JSON Schema of journal lines."""

from __future__ import annotations

import json

import typer

from ..messages import json_schema


def register(app: typer.Typer) -> None:
    @app.command()
    def schema() -> None:
        """Print the JSON Schema of an envelope (one journal line), for other tools."""
        typer.echo(json.dumps(json_schema(), indent=2))
