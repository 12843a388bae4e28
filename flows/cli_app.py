"""The Typer applications the `tokenmill` command is made of.

Command modules (``flows/cli_*.py``) register their commands on these objects; keeping the app
objects here lets each module own its commands without importing the others. Command bodies
import heavy libraries (prefect, torch, beam) lazily so ``tokenmill --help`` stays fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="tokenmill",
    help="Raw web crawls -> FineWeb-style corpus -> post-training data -> a compact model.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
stage_app = typer.Typer(help="Run one stage alone (its own Prefect flow).", no_args_is_help=True)
tokenizer_app = typer.Typer(help="Train or inspect tokenizers.", no_args_is_help=True)
synth_app = typer.Typer(help="Generate post-training datasets.", no_args_is_help=True)
train_app = typer.Typer(help="Train the compact model: pretrain, sft, rl, reward.", no_args_is_help=True)

app.add_typer(stage_app, name="stage")
app.add_typer(tokenizer_app, name="tokenizer")
app.add_typer(synth_app, name="synth")
app.add_typer(train_app, name="train")
