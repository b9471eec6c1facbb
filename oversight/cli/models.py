"""``oversight models ...``: prepare the embedded default models, serve a model over HTTP."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import OversightError


def register(app: typer.Typer) -> None:
    models = typer.Typer(help="The default models and an OpenAI-compatible server.")
    app.add_typer(models, name="models")

    @models.command()
    def prepare(
        rebuild: bool = typer.Option(False, help="Rebuild the cached model from the GGUF."),
    ) -> None:
        """Verify the packaged default models and build the cached SmolLM2 directory (once)."""
        from ..backends.embedded import default_embedding_dir, default_model_dir

        try:
            typer.echo(f"instruct model: {default_model_dir(rebuild=rebuild)}")
            typer.echo(f"embedding model: {default_embedding_dir()}")
        except OversightError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    @models.command()
    def serve(
        model: Path | None = typer.Option(None, help="Model directory (default: embedded)."),
        host: str = typer.Option("127.0.0.1"),
        port: int = typer.Option(8000),
        dtype: str | None = typer.Option(
            None,
            help="bfloat16, float32, float16 or auto (the checkpoint's); default: the machine's "
            "choice (bf16 only where the CPU or GPU computes it natively).",
        ),
        max_batch_size: int = typer.Option(16),
    ) -> None:
        """Serve a local model as an OpenAI-compatible chat-completions API (with logprobs)."""
        from ..backends._serve import main

        argv = ["--host", host, "--port", str(port)] + (["--dtype", dtype] if dtype else [])
        argv += ["--max-batch-size", str(max_batch_size)]
        if model is not None:
            argv += ["--model", str(model)]
        try:
            main(argv)
        except OversightError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
