"""The ``oversight`` command line (typer). Each command group lives in its own module that
exposes ``register(app)``; this module only assembles them."""

from __future__ import annotations

import importlib

import typer

from ..devices import enable_huge_pages

# before any command imports torch: PyTorch reads its huge-page switch once (oversight.devices)
enable_huge_pages()

app = typer.Typer(
    name="oversight",
    help="Constitutional AI oversight: run, check, adjudicate, export, simulate, train, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Constitutional AI oversight: run, check, adjudicate, export, simulate, train."""


_COMMAND_MODULES = (
    "check",
    "constitution",
    "governance",
    "queue",
    "web",
    "votes",
    "run",
    "worker",
    "schema",
    "simulate",
    "models",
    "safety",
    "train",
    "evaluate",
    "cycle",
    "index",
)


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"oversight.cli.{name}")
        module.register(app)


_register_all()


def main() -> None:
    """Console-script entry point."""
    app()
