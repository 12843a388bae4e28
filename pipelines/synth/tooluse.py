"""The `tooluse` generator: traces where the model calls a tool and answers from its result.

Two families, both executed for real (the tool results in the data are what the tools returned):

* search: a corpus question (``pipelines.synth.qa``) -> the assistant emits
  ``<|search_start|>query<|search_end|>`` (the question's words, never the answer) -> the BM25
  index over the processed corpus answers -> the assistant answers from the result. A trace is
  kept only when the reference answer IS in the injected result text (asserted), and the id of
  the document whose passage contains it is recorded;
* python: arithmetic/counting problems a model should not do in its head -> the assistant emits
  ``<|python_start|>code<|python_end|>`` -> the sandbox runs it -> the assistant reports the
  output, which must equal the reference answer.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from pydantic import BaseModel, Field

from pipelines.chat import tool_call
from pipelines.sandbox import SandboxConfig, isolation, run_python
from pipelines.search import SearchConfig, SearchIndex, format_results
from pipelines.synth.common import (
    conversation,
    conversation_stats,
    dedup_conversations,
    write_conversations,
    write_stats,
)
from pipelines.synth.qa import QAItem, load_documents, rule_questions, span_match
from pipelines.synth.tasks import (
    Problem,
    count_letter,
    multiplication,
    random_spelling,
    word_problem,
)
from pipelines.tool_output import clean_tool_output
from pipelines.verify import format_answer


class ToolUseConfig(BaseModel):
    output: str
    documents: str | None = Field(None, description="corpus dir; required for search traces")
    index: str | None = Field(None, description="existing search index dir (default: build DIR/index)")
    search_config: SearchConfig = Field(default_factory=SearchConfig)
    seed: int = 0
    documents_limit: int | None = 1000
    questions_per_doc: int = 2
    search: int = Field(200, description="max search traces")
    python: int = Field(200, description="python traces")
    top_k: int = Field(3, description="passages returned per search")
    result_chars: int = Field(700, description="characters of each passage injected as the result")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)


def search_query(item: QAItem) -> str:
    """The search words: the question's sentence without its blank (the answer is never in it)."""
    words = re.findall(r"[\w'-]+", item.sentence.replace(item.answer, " "))
    return " ".join(words[:24])


def search_trace(item: QAItem, index: SearchIndex, cfg: ToolUseConfig) -> tuple[dict | None, str]:
    query = search_query(item)
    if span_match(query, item.answer):
        return None, "answer_in_query"
    hits = index.search(query, k=cfg.top_k)
    result = format_results(hits, cfg.result_chars)
    containing = [h for h in hits if span_match(h.text[:cfg.result_chars], item.answer)]
    if not containing:
        return None, "answer_not_retrieved"
    assert span_match(result, item.answer)  # the grounding guarantee: the answer is in the tool output
    rank = hits.index(containing[0]) + 1
    answer = (f"According to search result [{rank}], the {item.answer_type if item.answer_type != 'llm' else 'answer'} "
              f"is {item.answer}.")
    msgs = [{"role": "user", "content": item.question},
            {"role": "assistant", "content": tool_call("search", query)},
            {"role": "tool", "content": clean_tool_output(result)},
            {"role": "assistant", "content": answer}]
    meta = {"tool": "search", "query": query, "reference": item.answer, "answer_doc_id": containing[0].doc_id,
            "question_doc_id": item.doc_id, "same_doc": containing[0].doc_id == item.doc_id, "rank": rank,
            "hit_doc_ids": [h.doc_id for h in hits], "snippet": item.snippet}
    return conversation(msgs, "tool_use", "tool:search", containing[0].doc_id, meta), "ok"


def python_problem(rng: random.Random) -> Problem:
    """Problems that are error-prone without a calculator: big products, long counts, stories."""
    roll = rng.random()
    if roll < 0.4:
        return multiplication(rng.randint(1000, 999_999), rng.randint(100, 99_999))
    if roll < 0.65:
        words = [w.lower() for w in rng.sample(random_words(), 4)]
        phrase = " ".join(words)
        return count_letter(phrase, rng.choice(sorted(set(phrase.replace(" ", "")))))
    if roll < 0.85:
        return word_problem(rng)
    return random_spelling(rng)


def random_words() -> list[str]:
    from pipelines.synth.tasks import WORDS

    return list(WORDS)


def python_trace(p: Problem, cfg: ToolUseConfig) -> tuple[dict | None, str]:
    res = run_python(p.code, config=cfg.sandbox)
    out = res.output.strip()
    if not res.ok:
        return None, "sandbox_error"
    if out != p.answer:
        return None, "output_mismatch"
    msgs = [{"role": "user", "content": p.prompt},
            {"role": "assistant", "content": "Let me compute this exactly with Python.\n" + tool_call("python", p.code)},
            {"role": "tool", "content": clean_tool_output(res.output)},
            {"role": "assistant", "content": f"The program printed {out}.\n{format_answer(out)}"}]
    return conversation(msgs, "tool_use", "tool:python", None, {"tool": "python", "reference": p.answer,
                                                                 "task": p.kind}), "ok"


def run_tooluse(cfg: ToolUseConfig) -> dict:
    from collections import Counter

    rows: list[dict] = []
    outcomes: Counter = Counter()
    figures: dict = {}
    if cfg.python:  # refuse before any work when no sandbox may run the code (no bwrap, no opt-in)
        figures["sandbox_isolation"] = isolation(cfg.sandbox)
    if cfg.search:
        if not cfg.documents:
            raise ValueError("search traces need `documents` (a corpus dir)")
        docs = load_documents(cfg.documents, cfg.documents_limit)
        index_dir = Path(cfg.index) if cfg.index else Path(cfg.output) / "index"
        index = SearchIndex.load(index_dir) if (index_dir / "index.json").exists() else \
            SearchIndex.build(docs, index_dir, cfg.search_config)
        items = rule_questions(docs, cfg.seed, cfg.questions_per_doc)
        kept = 0
        for it in items:
            if kept >= cfg.search:
                break
            row, why = search_trace(it, index, cfg)
            outcomes[f"search:{why}"] += 1
            if row:
                rows.append(row)
                kept += 1
        figures["search"] = {"documents": len(docs), "passages": len(index), "questions": len(items),
                             "traces": kept, "index": str(index_dir),
                             "answer_in_question_doc": sum(1 for r in rows if '"same_doc": true' in r["meta"])}
    rng = random.Random(f"tooluse:{cfg.seed}")
    seen: set[str] = set()
    tries = 0
    while sum(1 for r in rows if r["source"] == "tool:python") < cfg.python and tries < cfg.python * 5:
        tries += 1
        p = python_problem(rng)
        if p.prompt in seen:
            continue
        seen.add(p.prompt)
        row, why = python_trace(p, cfg)
        outcomes[f"python:{why}"] += 1
        if row:
            rows.append(row)
    rows, dropped = dedup_conversations(rows)
    write_conversations(cfg.output, rows)
    stats = {"generator": "tooluse", "seed": cfg.seed, **conversation_stats(rows),
             "outcomes": dict(sorted(outcomes.items())), "duplicates_dropped": dropped, **figures}
    write_stats(Path(cfg.output), stats)
    return stats
