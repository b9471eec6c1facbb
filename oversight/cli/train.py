"""``oversight train sft|dpo|rm`` and ``oversight eval``."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import err_console, user_errors

_RUNS = Annotated[list[Path], typer.Argument(help="Run folders (runs/<name>) with exports.")]
_CONFIG = Annotated[
    Path | None, typer.Option("--config", help="YAML file of settings (field names as keys).")
]
_OUTPUT = Annotated[
    Path | None, typer.Option("--output", help="Output directory (checkpoints, final/, card).")
]
_MODEL = Annotated[
    str | None, typer.Option("--model", help="Model dir to start from (default: embedded).")
]
_STEPS = Annotated[int | None, typer.Option("--max-steps", help="Stop after N steps.")]
_LORA = Annotated[bool | None, typer.Option("--lora/--full", help="Train LoRA adapters.")]
_JSON = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
_DATA = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Evaluation sets to keep out of training (default $OVERSIGHT_DATA, ../shared/data).",
    ),
]
_BF16 = Annotated[
    bool | None,
    typer.Option(
        "--bf16/--fp32",
        help="bf16 autocast or plain fp32 (default: the machine's choice: bf16 only with "
        "AVX512-BF16/AMX or a bf16 GPU).",
    ),
]


def _precision_line(dtype: dict[str, Any], verb: str) -> str:
    """``"trained in bfloat16: the CPU has amx_bf16 ..."`` for the console."""
    return f"[dim]{verb} in {dtype.get('dtype', '?')}: {dtype.get('reason', '')}[/dim]"


def _train(kind: str, runs: list[Path], config: Path | None, **overrides: object) -> None:
    from ..training.config import DPOSettings, SFTSettings, load_settings

    as_json = bool(overrides.pop("as_json"))
    output = overrides.pop("output")
    if output is not None:
        overrides["output_dir"] = str(output)
    if overrides.get("data_dir") is not None:
        overrides["data_dir"] = str(overrides["data_dir"])
    # The trainer prints its log lines to stdout; keep stdout for the result (--json).
    with user_errors(), contextlib.redirect_stdout(sys.stderr):
        from ..training._common import training_dtype

        if kind == "sft":
            from ..training.sft import train_sft

            sft_settings = load_settings(SFTSettings, config, **overrides)
            err_console.print(_precision_line(training_dtype(sft_settings).as_dict(), "training"))
            result = train_sft(runs, sft_settings)
        else:
            from ..training.dpo import train_dpo

            dpo_settings = load_settings(DPOSettings, config, **overrides)
            err_console.print(_precision_line(training_dtype(dpo_settings).as_dict(), "training"))
            result = train_dpo(runs, dpo_settings)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        err_console.print(
            f"{kind.upper()}: {result.train_rows} train / {result.eval_rows} eval rows; "
            f"final model in {result.model_dir} (card: {result.model_dir.parent}/dataset_card.md)"
        )
        err_console.print(_precision_line(result.dtype, "trained"))


def register(app: typer.Typer) -> None:
    train_app = typer.Typer(help="Train the base model on consensus outputs (TRL).")

    @train_app.command("sft")
    def sft(
        runs: _RUNS,
        config: _CONFIG = None,
        output: _OUTPUT = None,
        model: _MODEL = None,
        max_steps: _STEPS = None,
        lora: _LORA = None,
        data_dir: _DATA = None,
        bf16: _BF16 = None,
        as_json: _JSON = False,
    ) -> None:
        """Supervised fine-tuning on the runs' consensus answers (loss on the answer only)."""
        _train(
            "sft", runs, config, output=output, model=model, max_steps=max_steps, lora=lora,
            data_dir=data_dir, bf16=bf16, as_json=as_json,
        )  # fmt: skip

    @train_app.command("dpo")
    def dpo(
        runs: _RUNS,
        config: _CONFIG = None,
        output: _OUTPUT = None,
        model: _MODEL = None,
        max_steps: _STEPS = None,
        lora: _LORA = None,
        data_dir: _DATA = None,
        bf16: _BF16 = None,
        as_json: _JSON = False,
    ) -> None:
        """Preference optimisation: consensus answer (chosen) over the losing candidates."""
        _train(
            "dpo", runs, config, output=output, model=model, max_steps=max_steps, lora=lora,
            data_dir=data_dir, bf16=bf16, as_json=as_json,
        )  # fmt: skip

    @train_app.command("rm")
    def rm(
        runs: _RUNS,
        heldout: Annotated[
            list[Path] | None,
            typer.Option(help="Run folders whose pairs measure accuracy (repeat); never trained."),
        ] = None,
        hh_rlhf: Annotated[
            bool | None,
            typer.Option(
                "--hh-rlhf/--no-hh-rlhf",
                help="Measure on the HH-RLHF harmless sample in the data folder (default: when "
                "it is there).",
            ),
        ] = None,
        data_dir: Annotated[
            Path | None, typer.Option(help="Folder with hh-rlhf/ (default: ../shared/data).")
        ] = None,
        config: _CONFIG = None,
        output: _OUTPUT = None,
        model: _MODEL = None,
        max_steps: _STEPS = None,
        lora: _LORA = None,
        as_json: _JSON = False,
    ) -> None:
        """Reward model (TRL RewardTrainer) on the runs' preference pairs, with its accuracy."""
        from ..training.eval import default_data_dir
        from ..training.rm import HH_RLHF_FILE, load_reward_settings, train_reward

        hh_path = (data_dir or default_data_dir()) / HH_RLHF_FILE
        use_hh = hh_path.is_file() if hh_rlhf is None else hh_rlhf
        overrides = {"model": model, "max_steps": max_steps, "lora": lora}
        if output is not None:
            overrides["output_dir"] = str(output)
        with user_errors(), contextlib.redirect_stdout(sys.stderr):
            result = train_reward(
                runs,
                load_reward_settings(config, **overrides),
                heldout_runs=heldout or [],
                hh_rlhf=hh_path if use_hh else None,
            )
        if as_json:
            typer.echo(json.dumps(result.as_dict(), indent=2))
            return
        err_console.print(
            f"RM: {result.train_rows} train / {result.eval_rows} eval pairs; final model in "
            f"{result.model_dir}"
        )
        for name, figures in result.accuracy.items():
            base = figures.get("baseline", {}).get("accuracy")
            err_console.print(
                f"  accuracy on {name}: {figures.get('accuracy')} over {figures.get('pairs')} "
                f"pairs (untrained: {base})"
            )

    app.add_typer(train_app, name="train")

    @app.command("eval")
    def eval_(
        model: Annotated[
            str, typer.Argument(help="Model directory (a final/ dir), or 'default'.")
        ] = "default",
        sets: Annotated[
            list[str] | None,
            typer.Option("--sets", help="Sets to run (repeat); default: all five."),
        ] = None,
        limit: Annotated[
            int | None, typer.Option(help="A seeded sample of N prompts from each set.")
        ] = None,
        seed: Annotated[int, typer.Option(help="Seed of the --limit sample.")] = 0,
        data_dir: Annotated[
            Path | None, typer.Option(help="Folder with harmbench/, jbb-behaviors/, xstest/.")
        ] = None,
        max_new_tokens: Annotated[int, typer.Option(help="Greedy tokens per answer.")] = 48,
        batch_size: Annotated[int, typer.Option(help="Prompts per generate call.")] = 16,
        output: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
        dtype: Annotated[
            str | None,
            typer.Option(help="bfloat16, float32 or float16 (default: the machine's choice)."),
        ] = None,
        as_json: _JSON = False,
    ) -> None:
        """Refusal rate on harmful prompts and compliance on safe ones (HarmBench, JBB, XSTest)."""
        from rich.console import Console

        from ..training.eval import SET_NAMES, evaluate_model, results_table

        with user_errors():
            results = evaluate_model(
                model, sets=sets or SET_NAMES, limit=limit, data_dir=data_dir,
                max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, dtype=dtype,
            )  # fmt: skip
        text = json.dumps(results, indent=2, ensure_ascii=False)
        if output is not None:
            output.write_text(text + "\n", encoding="utf-8")
        if as_json:
            typer.echo(text)
        else:
            Console().print(results_table(results))
            err_console.print(_precision_line(results["dtype"], "generated"))
