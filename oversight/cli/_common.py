"""Shared CLI helpers: error reporting with exit status 2, queue URL defaults."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import OversightError

err_console = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def default_queue_url(runs_dir: str | Path = "runs") -> str:
    """``$OVERSIGHT_QUEUE``, else a SQLite file beside the runs."""
    return os.environ.get("OVERSIGHT_QUEUE") or f"sqlite:///{Path(runs_dir) / 'queue.db'}"


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn framework errors into one readable line and exit status 2."""
    try:
        yield
    except OversightError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True)
        raise typer.Exit(2) from None


def guarded(fn: Callable[[], T]) -> T:
    with user_errors():
        return fn()
