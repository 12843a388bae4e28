"""`tokenmill rank serve|auto|export|status`: ranking sampled responses and exporting the pairs.

    tokenmill synth samples --prompts RL_DIR --llm-url URL --k 5 --output S
    tokenmill rank serve --samples S            # people rank in the browser
    tokenmill rank auto --samples S --by verifier   # or --by judge --judge-url URL
    tokenmill rank export --samples S --output PAIRS
    tokenmill train reward|dpo --data PAIRS ...

Rankings live in ``S/rankings.sqlite`` unless ``--db`` gives any SQLAlchemy URL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli_app import app

rank_app = typer.Typer(
    help="Rank sampled responses (people, verifier, LLM judge) and export pairs.",
    no_args_is_help=True,
)
app.add_typer(rank_app, name="rank")

Samples = Annotated[Path, typer.Option(help="a `synth samples` output dir")]
DB = Annotated[
    str | None, typer.Option(help="SQLAlchemy URL (default: sqlite file SAMPLES/rankings.sqlite)")
]


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _store(samples: Path, db: str | None, load: bool = True):
    """The rankings database; with ``load`` the samples are read (and added) first. Missing
    samples, a missing default database (export/status before any ranking) or a database that
    cannot be opened are one-line errors."""
    from sqlalchemy.exc import SQLAlchemyError

    from pipelines.rank.db import RankError, RankStore, default_url
    from pipelines.synth.samples import read_samples

    try:
        rows = read_samples(samples) if load else None
    except FileNotFoundError as e:
        _fail(str(e))
    if db is None and not load and not (samples / "rankings.sqlite").is_file():
        _fail(
            f"no rankings database at {samples / 'rankings.sqlite'} (rank with `tokenmill rank serve|auto` "
            "first, or give --db)"
        )
    try:
        store = RankStore(db or default_url(samples))
        if rows is not None:
            store.load_samples(rows)
    except RankError as e:
        _fail(str(e))
    except SQLAlchemyError as e:
        _fail(f"database {db or default_url(samples)}: {str(e).splitlines()[0]}")
    return store


@rank_app.command("serve")
def serve_cmd(
    samples: Samples,
    db: DB = None,
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: a free one, printed)")] = 0,
) -> None:
    """The annotation page: a prompt and its k responses, ordered by drag or keys."""
    from pipelines.rank.server import serve

    serve(_store(samples, db), host=host, port=port)


@rank_app.command("auto")
def auto_cmd(
    samples: Samples,
    db: DB = None,
    by: Annotated[str, typer.Option(help="verifier | judge")] = "verifier",
    judge_url: Annotated[str | None, typer.Option(help="judge: OpenAI-compatible base URL")] = None,
    judge_checkpoint: Annotated[Path | None, typer.Option(help="judge: local checkpoint")] = None,
    judge_model: Annotated[str, typer.Option(help="judge: model name")] = "tokenmill",
    llm_key_env: Annotated[
        str, typer.Option(help="env var with the judge's API key")
    ] = "OPENAI_API_KEY",
    seed: Annotated[int, typer.Option(help="judge request seed")] = 0,
) -> None:
    """Rank every set automatically; stored like a person's ranking (annotator verifier/judge:...)."""
    from pipelines.rank.auto import judge_rankings, verifier_ranking
    from pipelines.rank.db import AlreadyRanked

    store = _store(samples, db)
    sets = store.sets()
    figures: dict = {}
    if by == "verifier":
        annotator, ranks = "verifier", [verifier_ranking(s) for s in sets]
    elif by == "judge":
        from pipelines.llm import LLMConfig, make_llm

        if judge_url is None and judge_checkpoint is None:
            raise typer.BadParameter("--by judge needs --judge-url or --judge-checkpoint")
        cfg = LLMConfig(
            model=judge_model,
            api_key_env=llm_key_env,
            cache_dir=str(samples / ".judge-cache"),
            **(
                {"backend": "local", "checkpoint": str(judge_checkpoint)}
                if judge_checkpoint
                else {"base_url": judge_url}
            ),
        )
        annotator = f"judge:{judge_model}"
        ranks, figures = judge_rankings(make_llm(cfg), sets, seed)
    else:
        raise typer.BadParameter(f"--by: verifier or judge, not {by!r}")
    added = already = 0
    for s, r in zip(sets, ranks, strict=True):
        try:
            store.submit(s["id"], annotator, r)
            added += 1
        except AlreadyRanked:
            already += 1
    typer.echo(
        json.dumps({"annotator": annotator, "ranked": added, "already_ranked": already, **figures})
    )


@rank_app.command("export")
def export_cmd(
    samples: Samples,
    output: Annotated[
        Path, typer.Option(help="pairs dir: OUT/train (+ OUT/val), for train reward|dpo")
    ],
    db: DB = None,
    annotator: Annotated[
        list[str] | None, typer.Option(help="only these annotators (repeatable)")
    ] = None,
    val_fraction: Annotated[float, typer.Option(help="share of prompts held out in OUT/val")] = 0.0,
) -> None:
    """All chosen/rejected pairs implied by the rankings (ties dropped), with annotator ids."""
    from pipelines.rank.export import export_pairs

    stats = export_pairs(_store(samples, db, load=False), output, annotator, val_fraction)
    typer.echo(
        json.dumps(
            {k: v for k, v in stats.items() if not isinstance(v, dict | list)}
            | {"agreement": stats["agreement"]["pairwise_agreement"]}
        )
    )


@rank_app.command("status")
def status_cmd(samples: Samples, db: DB = None) -> None:
    """Progress and agreement between annotators."""
    from pipelines.rank.export import agreement

    store = _store(samples, db, load=False)
    typer.echo(json.dumps({**store.progress(), "agreement": agreement(store.rankings())}, indent=2))
