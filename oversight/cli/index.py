"""``oversight index``: build a local evidence index for the verifier."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import err_console, user_errors


def register(app: typer.Typer) -> None:
    @app.command()
    def index(
        docs: Annotated[
            list[Path],
            typer.Argument(help="Documents or folders: .txt, .md and .jsonl ({'text': ...})."),
        ],
        out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the index.")],
        chunk_words: Annotated[int, typer.Option(help="Largest chunk, in words.", min=10)] = 60,
    ) -> None:
        """Build a retrieval index (MiniLM embeddings) that a `verifier` agent cites from."""
        from ..evidence import EvidenceIndex

        with user_errors():
            built = EvidenceIndex.build(docs, max_words=chunk_words)
            where = built.save(out)
        for item in built.meta["skipped"]:
            err_console.print(f"skipped {item['path']}: {item['why']}", highlight=False)
        if not built.looks_english:
            err_console.print(
                "warning: these documents do not look like English; the encoder "
                "(all-MiniLM-L6-v2) is English-only, so retrieval will be poor",
                highlight=False,
            )
        typer.echo(
            f"{len(built.chunks)} chunks from {len(built.meta['documents'])} documents -> {where}"
        )
