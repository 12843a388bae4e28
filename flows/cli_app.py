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
from collections.abc import Callable, Iterator
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
#: set by ``flows.cli.main`` for a command that runs a flow: the global options' callback
#: launches the local Prefect server at once (``flows.local_server.launch_early``)
EARLY_SERVER = {"wanted": False}


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
    if EARLY_SERVER["wanted"]:  # after -v/-q: their settings are the server's settings too
        EARLY_SERVER["wanted"] = False
        from flows.local_server import launch_early

        launch_early()


#: start-up limit of the local Prefect server when the user left Prefect's default for its
#: temporary server (20 s): a fresh database's migrations alone take ~16 s on a loaded 2-core
#: machine
LOCAL_STARTUP_TIMEOUT_S = 180


def quiet_heartbeats() -> dict:
    """Local mode: no flow-run heartbeats unless the user set their frequency. They exist so a
    server's services can spot crashed runs; this server runs none of those services and stops
    with the run, and the heartbeat thread sleeps in 1 s steps, so every flow's end waited up to
    a second for it (measured: 0.4 s of a 2,000-record run's last second)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY as FREQ
    from prefect.settings import Settings, get_current_settings

    flows = get_current_settings().flows
    default = type(flows).model_fields["heartbeat_frequency"].default
    from_env_or_profile = Settings().to_environment_variables(exclude_unset=True)
    if flows.heartbeat_frequency != default or FREQ.name in from_env_or_profile:
        return {}
    return {FREQ: None}


@contextlib.contextmanager
def prefect_local_mode(wait: bool = True) -> Iterator[Callable[[], None]]:
    """Run flows as Prefect resolves its settings (env, profile: never second-guessed). With a
    configured API URL nothing changes. Without one (Prefect's local mode) a Prefect server is
    started for this command (``flows.local_server``: as Prefect's temporary server, but
    launched now, not at the flow's first API call) and ``PREFECT_API_URL`` points at it for the
    command (``temporary_settings`` and the environment; worker processes inherit it). The
    server stops when the process exits.

    Yields ``ready()``, which blocks until the API answers; ``wait=True`` calls it on entry. A
    caller with work to do before its flow passes ``wait=False`` and calls ``ready()`` just
    before the flow, so the server starts while that work runs."""
    from prefect import context as prefect_context
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    from flows.local_server import discard_early, shared_server

    refresh = getattr(prefect_context, "refresh_global_settings_context", None)
    if PREFECT_API_URL.value() or refresh is None:  # configured; or a Prefect without it:
        discard_early()  # (a profile's API: the server launched early is not needed)
        yield lambda: None  # Prefect's own temporary server, as Prefect does it
        return

    server = shared_server(LOCAL_STARTUP_TIMEOUT_S)
    before = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_UI_URL")}
    with contextlib.ExitStack() as settings:

        def ready() -> None:
            if os.environ.get("PREFECT_API_URL") == server.api_url:
                return
            server.wait()
            # process-wide, not only this thread's settings context: Prefect's own threads
            # (log and event workers, the process pool's message forwarder) read the global
            # settings, which refresh_global_settings_context() rebuilds from the environment.
            # No UI on this server (as on Prefect's temporary one): no "View at" links to it.
            updates = {PREFECT_API_URL: server.api_url}
            if before["PREFECT_UI_URL"] is None:
                updates[PREFECT_UI_URL] = ""
            os.environ.update({k.name: v for k, v in updates.items()})
            refresh()
            settings.enter_context(temporary_settings(updates={**updates, **quiet_heartbeats()}))
            import prefect.main  # noqa: F401 - Prefect's console logging, as for its own line
            from prefect.logging import get_logger

            get_logger("tokenmill").info(
                "no Prefect API configured: this run's Prefect server is %s (stops with the run; "
                "`prefect server start` + PREFECT_API_URL keep one to watch runs in its UI)",
                server.api_url.removesuffix("/api"),
            )

        try:
            if wait:
                ready()
            yield ready
        finally:
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            refresh()
