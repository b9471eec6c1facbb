"""``oversight safety``: train the safety classifiers and check a text with them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    safety = typer.Typer(
        help="Safety classifiers: train them, check a request or a response.", no_args_is_help=True
    )
    app.add_typer(safety, name="safety")

    @safety.command("train")
    def train_cmd(
        out: Annotated[Path | None, typer.Option(help="Where to save the weights.")] = None,
        data: Annotated[Path | None, typer.Option(help="Folder with the data sets.")] = None,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
        epochs: Annotated[int, typer.Option(help="Training epochs.")] = 3,
        layers: Annotated[
            int, typer.Option(help="Top MiniLM layers the request head fine-tunes (1-6).")
        ] = 1,
        choose: Annotated[
            bool, typer.Option(help="Choose the request threshold on the validation rows.")
        ] = True,
    ) -> None:
        """Build the seed set, drop near-duplicates of evaluation prompts, hold out validation
        rows, fine-tune, choose the request threshold on validation, save."""
        from ..safety.train import WEIGHTS_DIR, train

        report = train(
            out_dir=out or WEIGHTS_DIR,
            data_root=data,
            seed=seed,
            epochs=epochs,
            layers=layers,
            choose=choose,
        )
        typer.echo(json.dumps(report))

    @safety.command("train-principles")
    def train_principles_cmd(
        out: Annotated[Path | None, typer.Option(help="Where to save the heads.")] = None,
        data: Annotated[Path | None, typer.Option(help="Folder with the data sets.")] = None,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
        threads: Annotated[int, typer.Option(help="CPU threads for the encoder.")] = 2,
    ) -> None:
        """Fit the per-principle heads (privacy, lawful, fairness, manipulation, honesty,
        balance) on frozen MiniLM embeddings of the seed set and the project's principle set."""
        from ..safety.train_principles import WEIGHTS_DIR, train_principles

        report = train_principles(
            out_dir=out or WEIGHTS_DIR, data_root=data, seed=seed, threads=threads
        )
        typer.echo(json.dumps(report))

    @safety.command("check")
    def check_cmd(
        text: Annotated[
            str, typer.Argument(help="A user request (or, with --prompt, a response).")
        ],
        prompt: Annotated[
            str | None,
            typer.Option(
                help="Treat TEXT as a response to this prompt and judge refusal/compliance."
            ),
        ] = None,
        weights: Annotated[Path | None, typer.Option(help="Weights folder.")] = None,
    ) -> None:
        """Print the safety verdict on a request, or the refusal judgment on a response."""
        from ..safety.classifier import SafetyClassifier
        from ..safety.refusal import RefusalDetector

        clf = SafetyClassifier(weights)
        if prompt is not None:
            j = RefusalDetector(clf).judge(prompt, text)
            typer.echo(
                json.dumps(
                    {
                        "outcome": j.outcome,
                        "complied": j.complied,
                        "refusal_probability": round(j.refusal_probability, 4),
                    }
                )
            )
            return
        v = clf.assess(text)
        typer.echo(
            json.dumps(
                {
                    "action": v.action,
                    "flagged": v.flagged,
                    "harm": round(v.harm, 4),
                    "signals": list(v.signals),
                    "rationale": v.rationale,
                }
            )
        )
