"""`tokenmill stage exact-dedup|line-dedup|decontaminate|classify` and
`tokenmill quality annotate|train` (issue 14's corpus-quality stages)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli_app import app, stage_app

quality_app = typer.Typer(
    help="Model-based quality: annotate documents with an LLM, train a classifier.",
    no_args_is_help=True,
)
app.add_typer(quality_app, name="quality")

InDir = Annotated[
    Path,
    typer.Option("--input", "-i", help="a documents directory (a stage's OUT or OUT/documents)"),
]
OutDir = Annotated[Path, typer.Option("--output", "-o", help="output directory")]
Workers = Annotated[int, typer.Option("--workers", "-w", help="worker processes")]
Engine = Annotated[str, typer.Option(help="local (Prefect + processes) or beam")]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="delete an existing OUT made with other settings or inputs and start over",
    ),
]
BeamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--beam-option", help="Beam flag, e.g. --beam-option=--runner=DataflowRunner (repeat)"
    ),
]


def _run(
    stage: str,
    flow,
    input: Path,
    output: Path,
    cfg,
    workers: int,
    engine: str,
    beam_option: list[str] | None,
    overwrite: bool,
) -> None:
    """The stage's Prefect flow, or the same stage as a Beam pipeline (FnApiRunner by default)."""
    if engine == "beam":
        from pipelines.beam.stages import run
        from pipelines.stats import render_summary, stats_from_json

        args = list(beam_option or [])
        if workers > 1 and not any(a.startswith("--runner=") and "FnApi" not in a for a in args):
            args += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
        stats = run(stage, str(input), str(output), cfg, args, overwrite)
        render_summary(
            stats_from_json(stats["stages"]), title=f"tokenmill {stage} (beam): {output}"
        )
    elif engine == "local":
        from flows.cli_app import prefect_local_mode

        with prefect_local_mode():
            flow(str(input), str(output), cfg, workers, overwrite)
    else:
        raise ValueError(f"--engine: local or beam, not {engine!r}")


@stage_app.command("exact-dedup")
def exact_dedup(
    input: InDir,
    output: OutDir,
    url: Annotated[bool, typer.Option(help="URL dedup: keep the latest fetch of a URL")] = True,
    text: Annotated[bool, typer.Option(help="exact text dedup: keep the smallest id")] = True,
    workers: Workers = 1,
    engine: Engine = "local",
    beam_option: BeamOpt = None,
    overwrite: Overwrite = False,
) -> None:
    """Exact dedup: same normalized URL (latest fetch kept), same normalized text (smallest id
    kept). Removed rows: exact_dedup:url / exact_dedup:text with duplicate_of."""
    from flows.corpus_stages import exact_dedup_flow
    from schemas.config import ExactDedupConfig

    cfg = ExactDedupConfig(url=url, text=text)
    _run(
        "exact_dedup", exact_dedup_flow, input, output, cfg, workers, engine, beam_option, overwrite
    )


@stage_app.command("line-dedup")
def line_dedup(
    input: InDir,
    output: OutDir,
    unit: Annotated[str, typer.Option(help="line or paragraph")] = "line",
    max_docs: Annotated[
        int, typer.Option(help="units in more than this many documents are removed")
    ] = 1,
    min_words: Annotated[int, typer.Option(help="remove a document left with fewer words")] = 20,
    min_unit_chars: Annotated[int, typer.Option(help="shorter units are never removed")] = 0,
    workers: Workers = 1,
    engine: Engine = "local",
    beam_option: BeamOpt = None,
    overwrite: Overwrite = False,
) -> None:
    """Remove lines (or paragraphs) repeated across documents, as CCNet / dolma."""
    from flows.corpus_stages import line_dedup_flow
    from schemas.config import LineDedupConfig

    cfg = LineDedupConfig(
        unit=unit, max_docs=max_docs, min_words=min_words, min_unit_chars=min_unit_chars
    )
    _run("line_dedup", line_dedup_flow, input, output, cfg, workers, engine, beam_option, overwrite)


@stage_app.command("decontaminate")
def decontaminate(
    input: InDir,
    output: OutDir,
    against: Annotated[
        list[str], typer.Option("--against", help="eval JSONL/Parquet files or dirs (repeat)")
    ],
    n: Annotated[int, typer.Option(help="n-gram length in words")] = 13,
    min_hits: Annotated[int, typer.Option(help="shared n-grams that remove a document")] = 1,
    text_field: Annotated[
        list[str] | None,
        typer.Option("--text-field", help="eval row fields to index (repeat; default: text)"),
    ] = None,
    id_field: Annotated[str, typer.Option(help="eval row field naming an item")] = "id",
    workers: Workers = 1,
    engine: Engine = "local",
    beam_option: BeamOpt = None,
    overwrite: Overwrite = False,
) -> None:
    """Remove documents sharing n-gram spans with evaluation sets; OUT/hits names the items."""
    from flows.corpus_stages import decontaminate_flow
    from schemas.config import DecontaminateConfig

    cfg = DecontaminateConfig(
        against=against,
        n=n,
        min_hits=min_hits,
        text_fields=text_field or ["text"],
        id_field=id_field,
    )
    _run(
        "decontaminate",
        decontaminate_flow,
        input,
        output,
        cfg,
        workers,
        engine,
        beam_option,
        overwrite,
    )


@stage_app.command("classify")
def classify(
    input: InDir,
    output: OutDir,
    model: Annotated[Path, typer.Option(help="model file from `tokenmill quality train`")],
    threshold: Annotated[float, typer.Option(help="remove documents scoring below this")] = 3.0,
    workers: Workers = 1,
    engine: Engine = "local",
    beam_option: BeamOpt = None,
    overwrite: Overwrite = False,
) -> None:
    """Add quality_score to every document; remove those below the threshold."""
    from flows.corpus_stages import classify_flow
    from schemas.config import ClassifyConfig

    cfg = ClassifyConfig(model=str(model), threshold=threshold)
    _run("classify", classify_flow, input, output, cfg, workers, engine, beam_option, overwrite)


@quality_app.command("annotate")
def annotate(
    documents: Annotated[Path, typer.Option("--documents", "-d", help="a documents directory")],
    output: OutDir,
    llm_url: Annotated[str, typer.Option(help="OpenAI-compatible base URL (with /v1)")],
    llm_model: Annotated[str, typer.Option(help="model name sent to the endpoint")] = "tokenmill",
    prompt: Annotated[str, typer.Option(help="rubric: fineweb-edu")] = "fineweb-edu",
    sample: Annotated[int | None, typer.Option(help="annotate at most this many documents")] = None,
    concurrency: Annotated[int, typer.Option(help="requests in flight")] = 4,
    overwrite: Overwrite = False,
) -> None:
    """Score documents 0-5 with an LLM on an educational-value rubric (cached, resumable)."""
    from flows.corpus_stages import annotate_flow
    from schemas.config import AnnotateConfig

    cfg = AnnotateConfig(prompt=prompt, sample=sample)
    llm = {"base_url": llm_url, "model": llm_model, "max_concurrency": concurrency}
    from flows.cli_app import prefect_local_mode

    with prefect_local_mode():
        stats = annotate_flow(str(documents), str(output), llm, cfg, overwrite)
    typer.echo(
        f"annotated {stats['annotated']} documents ({stats['unparseable']} unparseable): "
        f"{stats['score_counts']}"
    )


@quality_app.command("train")
def train(
    labels: Annotated[
        list[str],
        typer.Option(
            "--labels", "-l", help="annotate outputs or JSONL/Parquet of id/text/score (repeat)"
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="model file, e.g. model.bin")],
    backend: Annotated[str, typer.Option(help="linear or fasttext")] = "linear",
    threshold: Annotated[float, typer.Option(help="binary report: score >= threshold keeps")] = 3.0,
    heldout_fraction: float = 0.2,
    seed: int = 0,
) -> None:
    """Train the quality classifier; writes the model, <model>.report.json, <model>.confusion.png."""
    from flows.corpus_stages import train_flow
    from schemas.config import QualityTrainConfig

    cfg = QualityTrainConfig(
        backend=backend, threshold=threshold, heldout_fraction=heldout_fraction, seed=seed
    )
    from flows.cli_app import prefect_local_mode

    with prefect_local_mode():
        report = train_flow(labels, str(output), cfg)
    h = report["heldout"]
    typer.echo(
        f"wrote {output}: held-out accuracy {h['accuracy']:.3f}, macro F1 {h['macro_f1']:.3f}, "
        f"binary F1 {h['binary']['f1']:.3f} on {h['n']} rows"
    )
