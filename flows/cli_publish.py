"""`tokenmill card`, `tokenmill push` and `tokenmill serve-flows`.

Publishing errors are user errors (no token, rejected token, invalid card): they print one
line and exit 1, never a traceback that could carry request headers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from flows.cli_app import app


@app.command()
def card(
    directory: Annotated[
        Path, typer.Argument(help="an output directory of tokenmill (stage, pipeline or synth)")
    ],
    license: Annotated[str, typer.Option(help="license id for the card's metadata")] = "odc-by",
    pretty_name: Annotated[str | None, typer.Option(help="human-readable dataset name")] = None,
    language: Annotated[
        list[str] | None, typer.Option(help="languages (default: those found in the data)")
    ] = None,
    repo: Annotated[
        str | None, typer.Option(help="OWNER/NAME used in the card's loading examples")
    ] = None,
    plots: Annotated[bool, typer.Option(help="draw PNG plots next to the card")] = True,
    include_removed: Annotated[
        bool,
        typer.Option(
            help="declare the removed documents as a `removed` config (push then uploads them as "
            "extracted, PII-scrubbed text only)"
        ),
    ] = False,
) -> None:
    """Write DIR/README.md, a Hugging Face dataset card, and DIR/plots/*.png."""
    from pipelines.card import write_card

    if not directory.is_dir():
        typer.echo(f"error: no such directory: {directory}", err=True)
        raise typer.Exit(1)
    try:
        result = write_card(
            directory,
            license=license,
            pretty_name=pretty_name,
            languages=language or None,
            repo_id=repo,
            plots=plots,
            include_removed=include_removed,
        )
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    configs = ", ".join(f"{c.name} ({c.num_rows:,} rows)" for c in result.summary.configs)
    typer.echo(
        f"wrote {result.path} ({result.summary.family}: {configs}; {len(result.plots)} plots)"
    )


@app.command()
def push(
    directory: Annotated[Path, typer.Argument(help="the output directory to publish")],
    repo: Annotated[str, typer.Option(help="dataset repository OWNER/NAME")],
    private: Annotated[bool, typer.Option(help="create the repository as private")] = False,
    revision: Annotated[
        str | None, typer.Option(help="branch to push to (created if missing)")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Hub endpoint (default: HF_ENDPOINT or huggingface.co)")
    ] = None,
    max_commit_files: Annotated[int, typer.Option(help="files per commit")] = 200,
    max_commit_mb: Annotated[float, typer.Option(help="MB of data per commit")] = 2048.0,
    token_secret: Annotated[
        str | None,
        typer.Option(
            help="name of a Prefect Secret block holding the Hub token (default: "
            "TOKENMILL_HF_TOKEN_SECRET; unset: HF_TOKEN or `hf auth login`)"
        ),
    ] = None,
    include_removed: Annotated[
        bool,
        typer.Option(
            help="also publish the removed documents (extracted, PII-scrubbed text only; the card "
            "must declare them: `tokenmill card DIR --include-removed`)"
        ),
    ] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each Hub request")] = 60.0,
    retries: Annotated[
        int,
        typer.Option(
            help="retries of a Hub request after a timeout, connection error or transient HTTP status"
        ),
    ] = 3,
) -> None:
    """Upload DIR (data, card, plots) to a Hugging Face dataset repository, in several commits.

    The token comes from a Prefect Secret block (--token-secret), else HF_TOKEN or
    `hf auth login`; it is never printed.
    """
    from pipelines.publish import PublishError, push_dataset

    try:
        token = hub_token_from_secret(token_secret or os.environ.get("TOKENMILL_HF_TOKEN_SECRET"))
        result = push_dataset(
            directory,
            repo,
            private=private,
            revision=revision,
            endpoint=endpoint,
            token=token,
            max_commit_files=max_commit_files,
            max_commit_bytes=int(max_commit_mb * 1024 * 1024),
            progress=lambda msg: typer.echo(msg, err=True),
            include_removed=include_removed,
            timeout_s=timeout,
            retries=retries,
        )
    except PublishError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"pushed {len(result.files)} files in {len(result.commits)} commits to "
        f"{result.repo_url} (revision {result.revision})"
    )


def hub_token_from_secret(block: str | None) -> str | None:
    """The Hub token stored in the Prefect Secret block ``block`` (None: no block named). Read
    through the configured Prefect API; a missing block is a one-line ``PublishError``."""
    if not block:
        return None
    from prefect.blocks.system import Secret

    from pipelines.publish import PublishError

    try:
        value = Secret.load(block).get()
    except ValueError as exc:  # Prefect: "Unable to find block document named ..."
        raise PublishError(
            f"no Prefect Secret block named {block!r}: {str(exc).splitlines()[0]}"
        ) from None
    if not isinstance(value, str) or not value:
        raise PublishError(f"the Prefect Secret block {block!r} holds no token string")
    return value


@app.command("serve-flows")
def serve_flows_cmd(
    activate_schedules: Annotated[
        bool,
        typer.Option(
            help="turn the example cron schedules of prefect.yaml on (default: served, but inactive)"
        ),
    ] = False,
    limit: Annotated[int | None, typer.Option(help="at most this many flow runs at once")] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(help="serve only these flows ('stage-read' or 'fineweb/default')"),
    ] = None,
) -> None:
    """Serve every deployment of prefect.yaml (all flows, their parameters, schedules and event
    triggers) from one process, named `serve` ('fineweb/serve'), so they never replace the
    `default` deployments of `prefect deploy --all`. Trigger runs with `prefect deployment run`."""
    from flows.deployments import serve_flows

    serve_flows(activate_schedules=activate_schedules, limit=limit, only=only or None)
