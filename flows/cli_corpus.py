"""`tokenmill stage dedup`, `tokenmill stage tokenize`, `tokenmill tokenizer train` and
`tokenmill pipeline` (fineweb -> dedup -> tokenize, local processes or Apache Beam)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli_app import app, prefect_local_mode, stage_app, tokenizer_app

InDir = Annotated[
    Path,
    typer.Option("--input", "-i", help="a documents directory (a stage's OUT or OUT/documents)"),
]
OutDir = Annotated[Path, typer.Option("--output", "-o", help="output directory")]
Workers = Annotated[int, typer.Option("--workers", "-w", help="worker processes")]
Tok = Annotated[
    str, typer.Option("--tokenizer", help="cl100k_base (tiktoken) or a tokenizers JSON path")
]


Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="delete an existing OUT made with other settings or inputs and start over",
    ),
]


@stage_app.command("dedup")
def dedup(
    input: Annotated[
        list[Path],
        typer.Option(
            "--input",
            "-i",
            help="documents directories (a stage's OUT or OUT/documents); repeat: all are used",
        ),
    ],
    output: OutDir,
    bands: int = 14,
    rows: int = 8,
    ngram: int = 5,
    seed: int = 1,
    min_similarity: Annotated[
        float | None,
        typer.Option(
            help="link a colliding pair only if its signature-estimated Jaccard is >= this + 0.02 "
            "(pipelines.dedup.SIMILARITY_MARGIN), e.g. 0.7"
        ),
    ] = None,
    workers: Workers = 1,
    overwrite: Overwrite = False,
) -> None:
    """MinHash near-duplicate removal (FineWeb: 5-gram shingles, 14 bands x 8 rows).

    Writes OUT/documents (kept, with minhash_cluster), OUT/removed (reason dedup:minhash,
    duplicate_of) and OUT/stats.json; work files in OUT/_work make re-runs resume. Document
    ids must be unique across the inputs: a copy with the same id and text is removed
    (dedup:duplicate_id); the same id with a different text stops the run with an error.
    """
    from flows.dedup import dedup_flow, prepare
    from schemas.config import DedupConfig

    cfg = DedupConfig(ngram=ngram, bands=bands, rows=rows, seed=seed, min_similarity=min_similarity)
    inputs = [str(i) for i in input]
    prepare(inputs, str(output), cfg, overwrite)  # run.json: refuse another run's OUT first
    with prefect_local_mode():
        dedup_flow(inputs, str(output), cfg, workers)


@stage_app.command("tokenize")
def tokenize(
    input: InDir,
    output: OutDir,
    tokenizer: Tok = "cl100k_base",
    shard_tokens: int = 10_000_000,
    val_fraction: float = 0.01,
    seed: int = 0,
    workers: Workers = 1,
    overwrite: Overwrite = False,
) -> None:
    """Documents -> shuffled train/val Parquet token shards (each document ends with EOT).

    Writes OUT/train/shard-NNNNN.parquet, OUT/val/shard-NNNNN.parquet and OUT/manifest.json.
    """
    from flows.tokenize_flow import prepare, tokenize_flow
    from schemas.config import TokenizeConfig

    cfg = TokenizeConfig(
        tokenizer=tokenizer, shard_tokens=shard_tokens, val_fraction=val_fraction, seed=seed
    )
    prepare(str(input), str(output), cfg, overwrite)  # run.json: refuse another run's OUT first
    with prefect_local_mode():
        tokenize_flow(str(input), str(output), cfg, workers)


@tokenizer_app.command("train")
def train(
    input: InDir,
    output: Annotated[Path, typer.Option("--output", "-o", help="tokenizer.json")],
    vocab_size: Annotated[int, typer.Option(help="vocabulary size incl. special tokens")] = 8192,
    max_docs: Annotated[
        int | None, typer.Option(help="train on at most this many documents")
    ] = None,
) -> None:
    """Train a byte-level BPE (GPT-4 split pattern, chat/tool special tokens) on a documents dir."""
    import itertools

    from pipelines.io import documents_dir, iter_parquet_rows, parquet_files
    from pipelines.tokenizer import train_bpe

    rows = iter_parquet_rows(parquet_files(documents_dir(input)), columns=["text"])
    texts = (r["text"] for r in itertools.islice(rows, max_docs) if r["text"])
    tok = train_bpe(texts, vocab_size, output)
    typer.echo(f"wrote {output}: vocab {tok.vocab_size}, EOT id {tok.eot_id}")


@app.command("pipeline")
def pipeline(
    input: Annotated[
        list[str],
        typer.Option("--input", "-i", help="WARC files, globs or dirs; s3://, gs://, https:// too"),
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="output directory or s3:// / gs:// URL")
    ],
    workers: Workers = 1,
    languages: Annotated[
        list[str] | None, typer.Option("--languages", "-l", help="languages to keep; 'all'")
    ] = None,
    tokenizer: Tok = "cl100k_base",
    shard_tokens: int = 10_000_000,
    val_fraction: float = 0.01,
    seed: int = 0,
    min_similarity: Annotated[
        float | None,
        typer.Option(
            help="dedup: link a colliding pair only if its estimated Jaccard is >= this + 0.02"
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="stop after N records per WARC")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="FinewebConfig JSON/YAML")
    ] = None,
    engine: Annotated[str, typer.Option(help="local (Prefect + processes) or beam")] = "local",
    runner: Annotated[
        str, typer.Option(help="Beam runner: FnApiRunner, DataflowRunner, FlinkRunner, SparkRunner")
    ] = "FnApiRunner",
    beam_option: Annotated[
        list[str] | None,
        typer.Option(
            "--beam-option", help="extra Beam flag, e.g. --beam-option=--project=P (repeat)"
        ),
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """WARC -> fineweb -> dedup -> tokenize as one Prefect flow; resumable.

    Writes OUT/fineweb, OUT/dedup, OUT/tokenize and all stage stats in OUT/stats.json.
    """
    from flows.cli_fineweb import load_config
    from flows.pipeline import corpus_pipeline_flow
    from schemas.config import DedupConfig, TokenizeConfig

    fw = load_config(config, workers=workers, languages=languages, limit=limit)
    dc = DedupConfig(min_similarity=min_similarity)
    tc = TokenizeConfig(
        tokenizer=tokenizer, shard_tokens=shard_tokens, val_fraction=val_fraction, seed=seed
    )
    from pipelines.fineweb import check_config_paths
    from pipelines.storage import is_remote

    check_config_paths(fw)  # every engine: a missing path is one line before any work
    if engine == "local" and not is_remote(output):  # refuse another run's OUT/* in one line
        from pipelines.fineweb import STAGES
        from pipelines.io import expand_inputs
        from pipelines.runinfo import prepare_output, refuse_other_settings

        if not overwrite:  # the later stages too, before the FineWeb pass spends its time
            refuse_other_settings(Path(output) / "dedup", kind="dedup", config=dc)
            refuse_other_settings(Path(output) / "tokenize", kind="tokenize", config=tc)
        prepare_output(
            Path(output) / "fineweb",
            kind="fineweb",
            config=fw,
            inputs=expand_inputs(input),
            stages=list(STAGES),
            overwrite=overwrite,
        )
    with prefect_local_mode():
        corpus_pipeline_flow(
            input,
            output,
            fw,
            dc,
            tc,
            workers,
            engine,
            [f"--runner={runner}", *(beam_option or [])],
            overwrite,
        )
