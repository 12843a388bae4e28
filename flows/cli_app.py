"""The Typer applications the `tokenmill` command is made of, and its global options.

Command modules (``flows/cli_*.py``) register their commands on these objects; keeping the app
objects here lets each module own its commands without importing the others. Command bodies
import heavy libraries (prefect, torch, beam) lazily so ``tokenmill --help`` stays fast.

Global options (before the command): ``--version``; ``-v`` (Prefect and tokenmill logs at
DEBUG) / ``-q`` (console shows warnings and errors only; the Prefect server still receives the
INFO logs); ``--debug`` (a failing command shows its traceback instead of one line).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Annotated

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
train_app = typer.Typer(
    help="Train the compact model: pretrain, sft, rl, reward.", no_args_is_help=True
)

app.add_typer(stage_app, name="stage")
app.add_typer(tokenizer_app, name="tokenizer")
app.add_typer(synth_app, name="synth")
app.add_typer(train_app, name="train")

#: set by ``--debug``: user errors show their traceback too
DEBUG = {"on": False}


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("tokenmill")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tokenmill {version()}")
        raise typer.Exit()


@app.callback()
def main_options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logs")] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="console: warnings and errors only (the Prefect server still gets INFO logs)",
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="show the traceback of a failing command")
    ] = False,
) -> None:
    """Raw web crawls -> FineWeb-style corpus -> post-training data -> a compact model."""
    if verbose and quiet:
        raise typer.BadParameter("-v and -q exclude each other")
    DEBUG["on"] = debug
    # Prefect reads these when it is imported (command bodies import it lazily, after this).
    # Explicit requests only: without -v/-q Prefect's own settings (env, profile) apply.
    if verbose:
        os.environ["PREFECT_LOGGING_LEVEL"] = "DEBUG"
        logging.basicConfig(level=logging.DEBUG)
    elif quiet:
        os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "WARNING"
        logging.getLogger("tokenmill").setLevel(logging.WARNING)
    else:
        logging.getLogger("tokenmill").setLevel(logging.INFO)


#: start-up limit of Prefect's temporary server when the user left Prefect's default (20 s):
#: a fresh database's migrations alone take ~16 s on a loaded 2-core machine
LOCAL_STARTUP_TIMEOUT_S = 180


@contextlib.contextmanager
def prefect_local_mode() -> Iterator[None]:
    """Run flows as Prefect resolves its settings (env, profile: never second-guessed). Only
    when no API URL is configured (Prefect's own local mode: a temporary server for this run)
    and the user left these at Prefect's defaults, two settings of that temporary server change
    for this run (``temporary_settings``, public API; Prefect passes them to the server process):
    its start-up limit is raised (a fresh database's migrations alone take ~16 s on a loaded
    2-core machine, Prefect's default limit is 20 s) and its telemetry service is off (its
    heartbeat writes race the run's own writes on SQLite: "database is locked" errors)."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        get_current_settings,
        temporary_settings,
    )

    if PREFECT_API_URL.value():
        yield
        return
    settings = get_current_settings().server
    updates: dict = {}
    eph_default = type(settings.ephemeral).model_fields["startup_timeout_seconds"].default
    if settings.ephemeral.startup_timeout_seconds == eph_default:
        updates[PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS] = LOCAL_STARTUP_TIMEOUT_S
    if "PREFECT_SERVER_ANALYTICS_ENABLED" not in os.environ and settings.analytics_enabled:
        updates[PREFECT_SERVER_ANALYTICS_ENABLED] = False
    logging.getLogger("tokenmill").debug(
        "Prefect local mode, temporary server settings: %s", {k.name: v for k, v in updates.items()}
    )
    with temporary_settings(updates=updates):
        yield
