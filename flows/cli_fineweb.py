"""`tokenmill fineweb`, `tokenmill stage <name>` (per-document stages) and `tokenmill demo`.

Every command builds a typed ``FinewebConfig`` (from ``--config`` JSON/YAML, then the command-line
overrides) and calls the matching Prefect flow from ``flows/fineweb.py`` (Prefect's own local
mode when no API is configured). The stage commands come from ``pipelines.registry``: each lists
only the overrides that act on its stage (``stage read --help`` has ``--max-bytes``, not
``--languages``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli_app import app, prefect_local_mode, stage_app
from pipelines import registry

InputOpt = Annotated[
    list[str], typer.Option("--input", "-i", help="WARC/Parquet files, globs, dirs or fsspec URLs")
]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="output directory")]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", "-w", help="worker processes (default: config, 1)", min=1)
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="FinewebConfig as JSON or YAML")
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="delete an existing OUT made with other settings or inputs and start over",
    ),
]
LangOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--languages", "-l", help="languages to keep (repeat); 'all' keeps every language"
    ),
]


def _languages(cfg, value: list[str]) -> None:
    langs = [x for lang in value for x in lang.replace(",", " ").split()]
    cfg.langid.languages = [] if langs == ["all"] else langs


@dataclass(frozen=True)
class Override:
    """A command-line option that sets one config value (``apply(cfg, value)``)."""

    annotation: Any
    apply: Callable[[Any, Any], None]


#: every override a FineWeb command can take; the registry says which stage uses which
OVERRIDES: dict[str, Override] = {
    "languages": Override(LangOpt, _languages),
    "limit": Override(
        Annotated[
            int | None, typer.Option("--limit", help="stop after N documents per input file", min=1)
        ],
        lambda cfg, v: setattr(cfg, "limit", v),
    ),
    "max_bytes": Override(
        Annotated[
            int | None,
            typer.Option(
                "--max-bytes", help="remove pages larger than this (read:too_large)", min=1
            ),
        ],
        lambda cfg, v: setattr(cfg.read, "max_bytes", v),
    ),
    "extract_timeout": Override(
        Annotated[
            float | None,
            typer.Option(
                "--extract-timeout", help="seconds per page before extract:timeout", min=0.001
            ),
        ],
        lambda cfg, v: setattr(cfg.extract, "timeout_s", v),
    ),
    "payload_type": Override(
        Annotated[
            str | None,
            typer.Option(
                "--payload-type",
                help="records without WARC-Identified-Payload-Type: 'http' (HTTP "
                "Content-Type, default) or 'libmagic' (sniff the payload like datatrove's WarcReader; "
                "needs python-magic)",
            ),
        ],
        lambda cfg, v: setattr(
            cfg, "read", type(cfg.read).model_validate({**cfg.read.model_dump(), "payload_type": v})
        ),
    ),
    "no_prescreen": Override(
        Annotated[
            bool | None,
            typer.Option(
                "--no-prescreen",
                help="extract every page (datatrove's exact decisions); default: skip "
                "trafilatura for pages a fast language pre-screen finds confidently outside --languages",
            ),
        ],
        lambda cfg, v: setattr(cfg.langid, "prescreen", not v),
    ),
    "by_language": Override(
        Annotated[
            bool | None,
            typer.Option("--by-language", help="write kept documents to OUT/documents/<language>/"),
        ],
        lambda cfg, v: setattr(cfg, "partition_by_language", v),
    ),
}


def load_config(path: Path | None = None, *, workers: int | None = None, **overrides: Any):
    """A FinewebConfig from an optional JSON/YAML file plus command-line overrides (names of
    ``OVERRIDES``; None = not given). Bad keys or values raise a one-line ``ConfigError``."""
    from schemas.config import FinewebConfig
    from schemas.strict import config_from_file, validate_config

    cfg = config_from_file(FinewebConfig, path, workers=workers)
    for name, value in overrides.items():
        if value is not None and value != []:
            OVERRIDES[name].apply(cfg, value)
    # assignments are not validated by pydantic: validate the result once more
    return validate_config(FinewebConfig, cfg.model_dump(), "command-line options")


def _run(
    stages: list[str] | None, inputs: list[str], output: Path, cfg, overwrite: bool = False
) -> dict:
    """Expand the inputs first (a glob that matches nothing, a removed/ dir or a FIFO fails
    before Prefect starts) and check OUT against this run (``run.json``: another run's output
    is refused in one line, or deleted with ``--overwrite``), then run the flow in Prefect's
    own local mode or against the configured API."""
    from pipelines.fineweb import STAGES, check_config_paths
    from pipelines.io import expand_inputs
    from pipelines.runinfo import prepare_output

    check_config_paths(cfg)
    files = expand_inputs(list(inputs))
    if not files:
        raise FileNotFoundError(f"no input files match {list(inputs)}")
    prepare_output(
        output,
        kind="fineweb" if stages is None else f"stage {stages[0]}",
        config=cfg,
        inputs=files,
        stages=list(STAGES if stages is None else stages),
        overwrite=overwrite,
    )
    with prefect_local_mode(wait=False) as api_ready:
        from flows import fineweb as fw  # imported while the local Prefect server starts

        api_ready()
        if stages is None:
            return fw.fineweb_flow(inputs, str(output), cfg)
        return fw.stage_flow(stages[0], inputs, str(output), cfg)


def _command(name: str | None, options: tuple[str, ...], doc: str) -> Callable:
    """A Typer command whose signature has the common options plus ``options`` (from the
    registry), so its ``--help`` lists exactly what it uses."""

    def command(**kw: Any) -> None:
        cfg = load_config(
            kw.pop("config"), workers=kw.pop("workers"), **{k: kw.pop(k) for k in options}
        )
        _run(None if name is None else [name], kw["input"], kw["output"], cfg, kw["overwrite"])

    params = [
        inspect.Parameter("input", inspect.Parameter.KEYWORD_ONLY, annotation=InputOpt),
        inspect.Parameter("output", inspect.Parameter.KEYWORD_ONLY, annotation=OutputOpt),
        inspect.Parameter(
            "workers", inspect.Parameter.KEYWORD_ONLY, annotation=WorkersOpt, default=None
        ),
        inspect.Parameter(
            "config", inspect.Parameter.KEYWORD_ONLY, annotation=ConfigOpt, default=None
        ),
        inspect.Parameter(
            "overwrite", inspect.Parameter.KEYWORD_ONLY, annotation=OverwriteOpt, default=False
        ),
    ]
    params += [
        inspect.Parameter(
            o, inspect.Parameter.KEYWORD_ONLY, annotation=OVERRIDES[o].annotation, default=None
        )
        for o in options
    ]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = doc
    return command


def _all_options() -> tuple[str, ...]:
    return tuple(
        dict.fromkeys(o for s in registry.STAGES if s.kind == "document" for o in s.options)
    )


app.command("fineweb")(
    _command(
        None,
        _all_options(),
        f"""The FineWeb pass: {" -> ".join(registry.DOCUMENT_STAGES)}.

    Writes OUT/documents, OUT/removed (with stage and reason), OUT/stats/<shard>.json,
    OUT/stats.json and OUT/run.json (config, stages, inputs). Re-running with the same OUT and
    settings resumes: finished shards are skipped; other settings or inputs are refused unless
    --overwrite.
    """,
    )
)

for _stage in registry.STAGES:
    if _stage.kind == "document":
        stage_app.command(_stage.name)(
            _command(
                _stage.name,
                _stage.options,
                _stage.description
                + "\n\nInput: WARC files, or a previous stage's OUT/documents Parquet.",
            )
        )


@app.command("demo")
def demo(
    output: OutputOpt = Path("tokenmill-demo"),
    workers: WorkersOpt = None,
    languages: LangOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Write the project's own sample WARC to OUT/sample.warc.gz and run the FineWeb pass on it."""
    from pipelines.sample_pages import build_warc_bytes, write_sample_warc

    output.mkdir(parents=True, exist_ok=True)
    warc = output / "sample.warc.gz"
    if not (
        warc.is_file() and warc.read_bytes() == build_warc_bytes()
    ):  # same input: a re-run resumes
        write_sample_warc(warc)
    typer.echo(f"wrote {warc}")
    cfg = load_config(workers=workers, languages=languages)
    _run(None, [str(warc)], output / "fineweb", cfg, overwrite)
    typer.echo(
        f"kept documents: {output / 'fineweb' / 'documents'}; removed: {output / 'fineweb' / 'removed'}"
    )
