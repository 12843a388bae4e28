"""`tokenmill fineweb`, `tokenmill stage <name>` and `tokenmill demo`.

Every command builds a typed ``FinewebConfig`` (from ``--config`` JSON/YAML, then the command-
line overrides) and runs the matching Prefect flow from ``flows/fineweb.py`` locally (the
temporary API server is started in the background while inputs are expanded).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli_app import app, stage_app

InputOpt = Annotated[list[str], typer.Option("--input", "-i", help="WARC/Parquet files, globs, dirs or fsspec URLs")]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="output directory")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", "-w", help="worker processes (default: config, 1)")]
LangOpt = Annotated[list[str] | None, typer.Option("--languages", "-l", help="languages to keep (repeat); 'all' keeps every language")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="stop after N documents per input file")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="FinewebConfig as JSON or YAML")]
MaxBytesOpt = Annotated[int | None, typer.Option("--max-bytes", help="remove pages larger than this (read:too_large)")]
TimeoutOpt = Annotated[float | None, typer.Option("--extract-timeout", help="seconds per page before extract:timeout")]
OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", help="delete an existing OUT made with other settings or inputs and start over")]
PayloadOpt = Annotated[str | None, typer.Option(
    "--payload-type", help="records without WARC-Identified-Payload-Type: 'http' (HTTP Content-Type, "
    "default) or 'libmagic' (sniff the payload like datatrove's WarcReader; needs python-magic)")]


def load_config(path: Path | None = None, *, workers: int | None = None,
                languages: list[str] | None = None, limit: int | None = None,
                max_bytes: int | None = None, extract_timeout: float | None = None,
                payload_type: str | None = None):
    """A FinewebConfig from an optional JSON/YAML file plus command-line overrides."""
    from schemas.config import FinewebConfig

    data: dict = {}
    if path is not None:
        text = Path(path).read_text()
        if str(path).endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    cfg = FinewebConfig.model_validate(data)
    if workers is not None:
        cfg.workers = workers
    if languages:
        langs = [x for lang in languages for x in lang.replace(",", " ").split()]
        cfg.langid.languages = [] if langs == ["all"] else langs
    if limit is not None:
        cfg.limit = limit
    if max_bytes is not None:
        cfg.read.max_bytes = max_bytes
    if extract_timeout is not None:
        cfg.extract.timeout_s = extract_timeout
    if payload_type is not None:  # validated (assignment is not)
        cfg.read = type(cfg.read).model_validate({**cfg.read.model_dump(), "payload_type": payload_type})
    return cfg


def _run(stages: list[str] | None, inputs: list[str], output: Path, cfg,
         overwrite: bool = False) -> dict:
    """``_start`` with user errors (bad inputs, an output made by another run) as one line."""
    from pipelines.io import InputError
    from pipelines.runinfo import OutputMismatchError

    try:
        return _start(stages, inputs, output, cfg, overwrite)
    except (InputError, OutputMismatchError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _start(stages: list[str] | None, inputs: list[str], output: Path, cfg,
           overwrite: bool = False) -> dict:
    """Start-up in overlap, with as little duplicated work as possible: the workers' forkserver
    preloads the stage modules while this process imports Prefect; then Prefect's temporary
    server is forked from this process (it inherits the Prefect import) and boots while the
    workers fork warm and set up their steps.

    With the temporary local server (no ``PREFECT_API_URL``), the workers also start on the
    shards at once (eager dispatch, ``flows/workers.py``); the flow's task adopts that work.
    ``TOKENMILL_EAGER=0`` turns this off (the pool then only warms up). With a configured API
    nothing runs before the flow run exists.
    """
    import os

    from flows import runtime

    runtime.prewarm_api(defer=True)  # port + PREFECT_API_URL now; the server starts below
    from flows import workers as wk
    from pipelines.fineweb import stats_path
    from pipelines.io import expand_inputs

    files = expand_inputs(inputs)  # fail fast on a bad glob, before waiting for Prefect
    # check OUT against this run (or start it over) BEFORE any worker may write into it
    from pipelines.fineweb import STAGES
    from pipelines.runinfo import fingerprint, prepare_output, shard_is_current

    run_stages = list(STAGES if stages is None else stages)
    prepare_output(output, kind="fineweb" if stages is None else f"stage {stages[0]}", config=cfg,
                   inputs=files, stages=run_stages, overwrite=overwrite)
    fp = fingerprint(cfg, run_stages)
    pending = [p for p in files if not shard_is_current(stats_path(output, p), fp)]
    procs = max(1, min(cfg.workers, len(pending)))
    eager = runtime.is_temporary_api() and os.environ.get("TOKENMILL_EAGER", "1") != "0"
    try:
        if procs > 1:  # the forkserver starts preloading the worker modules now, in parallel
            wk.start_forkserver()
        from flows import fineweb as fw

        # fork the server from this process now that it imported Prefect (the server skips that
        # import) and before any thread exists here (the pool below starts one)
        runtime.start_server()
        if procs > 1:  # workers fork warm, set up their steps (+ run the shards, eager)
            wk.start_pool(cfg.workers, cfg, stages, str(output), pending, procs, eager=eager)

        if procs == 1 and pending:
            wk.cached_steps(cfg.model_dump_json(), stages)  # set up in-process while the server boots
        runtime.ensure_api()
        with runtime.local_run_settings():
            if stages is None:
                return fw.fineweb_flow(inputs, str(output), cfg)
            return fw.stage_flow(stages[0], inputs, str(output), cfg)
    finally:
        wk.discard_prestarted()  # no-op once the flow took the pool
        # the pools are done: the forkserver exits now (its teardown overlaps with ours), reaped
        # at exit (atexit) or by the next pool rather than orphaned
        wk.stop_forkserver(wait=False)


@app.command("fineweb")
def fineweb(input: InputOpt, output: OutputOpt, workers: WorkersOpt = None, languages: LangOpt = None,
            limit: LimitOpt = None, config: ConfigOpt = None, max_bytes: MaxBytesOpt = None,
            extract_timeout: TimeoutOpt = None, payload_type: PayloadOpt = None,
            overwrite: OverwriteOpt = False) -> None:
    """The FineWeb pass: read -> urlfilter -> extract -> langid -> quality -> pii.

    Writes OUT/documents, OUT/removed (with stage and reason), OUT/stats/<shard>.json,
    OUT/stats.json and OUT/run.json (config, stages, inputs). Re-running with the same OUT and
    settings resumes: finished shards are skipped; other settings or inputs are refused unless
    --overwrite.
    """
    cfg = load_config(config, workers=workers, languages=languages, limit=limit,
                      max_bytes=max_bytes, extract_timeout=extract_timeout, payload_type=payload_type)
    _run(None, input, output, cfg, overwrite)


def _stage_command(name: str, doc: str) -> None:
    def command(input: InputOpt, output: OutputOpt, workers: WorkersOpt = None,
                languages: LangOpt = None, limit: LimitOpt = None, config: ConfigOpt = None,
                max_bytes: MaxBytesOpt = None, extract_timeout: TimeoutOpt = None,
                payload_type: PayloadOpt = None, overwrite: OverwriteOpt = False) -> None:
        cfg = load_config(config, workers=workers, languages=languages, limit=limit,
                          max_bytes=max_bytes, extract_timeout=extract_timeout,
                          payload_type=payload_type)
        _run([name], input, output, cfg, overwrite)

    command.__doc__ = doc + "\n\nInput: WARC files, or a previous stage's OUT/documents Parquet."
    stage_app.command(name)(command)


for _name, _doc in {
    "read": "Read WARC files into documents holding the decoded HTML.",
    "urlfilter": "Drop documents whose URL is blocklisted or has banned words.",
    "extract": "Extract the main text from HTML with trafilatura (with a time limit).",
    "langid": "Identify the language with fastText lid.176; keep --languages.",
    "quality": "Gopher, C4 and FineWeb quality filters.",
    "pii": "Replace email addresses and public IP addresses.",
}.items():
    _stage_command(_name, _doc)


@app.command("demo")
def demo(output: OutputOpt = Path("tokenmill-demo"), workers: WorkersOpt = None,
         languages: LangOpt = None, overwrite: OverwriteOpt = False) -> None:
    """Write the project's own sample WARC to OUT/sample.warc.gz and run the FineWeb pass on it."""
    from pipelines.sample_pages import build_warc_bytes, write_sample_warc

    output.mkdir(parents=True, exist_ok=True)
    warc = output / "sample.warc.gz"
    if not (warc.is_file() and warc.read_bytes() == build_warc_bytes()):  # same input: a re-run resumes
        write_sample_warc(warc)
    typer.echo(f"wrote {warc}")
    cfg = load_config(workers=workers, languages=languages)
    _run(None, [str(warc)], output / "fineweb", cfg, overwrite)
    typer.echo(f"kept documents: {output / 'fineweb' / 'documents'}; removed: {output / 'fineweb' / 'removed'}")
