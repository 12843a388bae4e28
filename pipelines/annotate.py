"""Quality labels for the classifier: LLM annotation on a 0-5 rubric, or the user's own file.

``annotate`` scores a deterministic sample of documents (the ``sample`` ids with the smallest
seeded hash: the same documents on every run, whatever the sharding) through the project's
``LLM`` interface with an educational-value rubric in the spirit of FineWeb-Edu's (additive
points, answer ends with ``Educational score: <0-5>``). Answers are parsed robustly (the last
``score: N`` / ``N/5`` / lone digit wins); an answer with no score is counted as
``unparseable`` and kept with a null score, never fatal. Every request is cached on disk
(``OUT/_cache``) and labels are written per shard (temp + rename), so a re-run costs no request
and an interrupted one resumes. Output: ``OUT/labels/<shard>.parquet`` (id, text, score,
answer) and ``OUT/stats.json``.

``load_labels`` reads labels from such a directory or from the user's JSONL/Parquet files of
``id``/``text``/``score`` rows.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from pipelines import shard_stage as ss
from pipelines.io import atomic_write_parquet, atomic_write_text
from pipelines.llm import LLM
from schemas.config import AnnotateConfig

LABEL_SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("score", pa.int8()), ("answer", pa.string())]
)

FINEWEB_EDU_RUBRIC = """\
You rate web pages for how useful they would be for teaching, from primary school to college.
Read the extract below and award points with this additive scale (0 to 5 points in total):

- Add 1 point if the extract gives some basic information on an educational topic, even if it
  is mixed with ads, navigation or other irrelevant material.
- Add a 2nd point if it covers elements of a topic usable in school but is incomplete, loosely
  organised or mixes educational and non-educational content.
- Add a 3rd point if it is coherent, fits a classroom and introduces key concepts of a subject,
  even if it is not comprehensive.
- Add a 4th point if it is very relevant for teaching, clearly written, like a textbook section
  or a tutorial, with little irrelevant content.
- Add a 5th point if it is outstanding teaching material with thorough, insightful explanations.

Pages that are mostly menus, links, shop listings, cookie notices or adverts get 0 points.

Extract:
<<<
{text}
>>>

Briefly justify your total in at most 100 words, then end with the line
"Educational score: <points>" where <points> is a whole number from 0 to 5."""

PROMPTS = {"fineweb-edu": FINEWEB_EDU_RUBRIC}
_SCORE_RES = [
    re.compile(r"score\s*(?:is|of|=|:)?\s*\**\s*([0-5])(?:\s*/\s*5)?\b", re.I),
    re.compile(r"\b([0-5])\s*/\s*5\b"),
    re.compile(r"\b([0-5])\s*(?:points?|pts)\b", re.I),
]


def parse_score(answer: str | None) -> int | None:
    """The 0-5 score an answer ends with (None when it has none)."""
    if not answer:
        return None
    for rx in _SCORE_RES:
        found = rx.findall(answer)
        if found:
            return int(found[-1])
    stripped = answer.strip().strip("*.").strip()
    return int(stripped) if stripped in {"0", "1", "2", "3", "4", "5"} else None


def sample_ids(shards: list[ss.Shard], config: AnnotateConfig) -> set[str] | None:
    """The ids to annotate (None: all), by seeded id hash: independent of shard layout."""
    if config.sample is None:
        return None
    ranked = []
    for s in shards:
        for i in pq.read_table(s.path, columns=["id"]).column("id").to_pylist():
            ranked.append((xxhash.xxh64_intdigest(i.encode("utf-8"), seed=config.seed), i))
    return {i for _, i in sorted(ranked)[: config.sample]}


def annotate(
    inputs: str | Path,
    output: str | Path,
    llm: LLM,
    config: AnnotateConfig | None = None,
    overwrite: bool = False,
) -> dict:
    """Annotate a documents directory into ``output``; returns stats.json (see module doc)."""
    config = config or AnnotateConfig()
    out = Path(output)
    shards = ss.plan(inputs)
    settings = ss.settings_payload("annotate", config.model_dump(), shards, {"llm": llm.identity()})
    ss.check_settings(out, settings, overwrite)
    chosen = sample_ids(shards, config)
    template = PROMPTS[config.prompt]
    scores: Counter = Counter()
    for s in shards:
        path = out / "labels" / f"{s.name}.parquet"
        if not path.exists():
            t = pq.read_table(s.path, columns=["id", "text"]).to_pylist()
            rows = [r for r in t if chosen is None or r["id"] in chosen]
            heads = [(r["text"] or "")[: config.max_chars] for r in rows]
            answers = llm.chat(
                [[{"role": "user", "content": template.format(text=h)}] for h in heads],
                temperature=0.0,
                max_tokens=config.max_tokens,
                seed=config.seed,
            )
            atomic_write_parquet(
                path,
                pa.Table.from_pydict(
                    {
                        "id": [r["id"] for r in rows],
                        "text": heads,
                        "score": [parse_score(a) for a in answers],
                        "answer": answers,
                    },
                    schema=LABEL_SCHEMA,
                ),
            )
        for v in pq.read_table(path, columns=["score"]).column("score").to_pylist():
            scores["unparseable" if v is None else str(v)] += 1
    annotated = sum(scores.values())
    stats = {
        "stage": "annotate",
        "config": config.model_dump(),
        "inputs": settings["inputs"],
        "llm": llm.identity(),
        "annotated": annotated,
        "unparseable": scores["unparseable"],
        "score_counts": {k: v for k, v in sorted(scores.items()) if k != "unparseable"},
        "llm_requests": llm.requests,
        "llm_cache_hits": llm.cache_hits,
    }
    atomic_write_text(out / "stats.json", json.dumps(stats, indent=2))
    return stats


def _label_files(paths: list[str]) -> list[str]:
    dirs = [str(Path(p) / "labels") if (Path(p) / "labels").is_dir() else p for p in paths]
    files = [
        f
        for f in ss.expand_files(dirs, (".jsonl", ".json", ".parquet"))
        if Path(f).name != "stats.json"
    ]
    if not files:
        raise FileNotFoundError(f"no JSONL/Parquet label files in {paths}")
    return files


def load_labels(paths: list[str] | str) -> list[dict]:
    """Rows with ``id``, ``text``, ``score`` from annotate outputs or user JSONL/Parquet files.

    A row without ``text``/``score`` fields is an error naming the file; null scores (an
    unparseable LLM answer) are kept as None for the trainer to count.
    """
    rows: list[dict] = []
    for f in _label_files([paths] if isinstance(paths, str) else list(paths)):
        if f.endswith(".parquet"):
            part = pq.read_table(f).to_pylist()
        else:
            with open(f, encoding="utf-8") as fh:
                part = [json.loads(line) for line in fh if line.strip()]
        for n, r in enumerate(part):
            if "text" not in r or "score" not in r:
                raise ValueError(f"{f}: row {n} has no `text`/`score` field (keys: {sorted(r)})")
            rows.append(
                {
                    "id": str(r.get("id", f"{Path(f).name}:{n}")),
                    "text": r["text"],
                    "score": r["score"],
                }
            )
    return rows
