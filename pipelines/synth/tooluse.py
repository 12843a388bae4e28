"""The `tooluse` generator: traces where the model calls tools and answers from their results.

Every family is executed for real (the tool results in the data are what the tools returned):

* search: a corpus question (``pipelines.synth.qa``) -> the assistant searches with a few keywords,
  as a person types into a search box (never the question pasted, never the answer) -> the BM25
  index over the processed corpus answers. If the result holds the answer, the assistant answers
  from it (``tool:search``); if not, it says so, refines the query with more specific words and
  searches again (``tool:search-refine``, two calls). A trace is kept only when the reference
  answer IS in the last injected result (checked), and the id of the document holding it is recorded;
* python: problems a model should not do in its head -> ``<|python_start|>code<|python_end|>`` ->
  the sandbox runs it -> the assistant reports the output, which must equal the reference answer
  (``tool:python``);
* python error recovery (``tool:python-fix``): the first program really fails in the sandbox (a
  misspelt name, a str + int, an unclosed parenthesis), the tool result is its real stderr (as
  ``SandboxResult.tool_output`` shows it at inference), the assistant reads the error, fixes the
  code and reruns it;
* search + python (``tool:search+python``): a year or number found by search, then a calculation
  on it in Python: two different tools in one conversation, both results checked.

Besides ``DIR/data`` (our special-token form), ``DIR/openai/part-00000.jsonl`` holds the same
conversations in OpenAI's ``tool_calls`` format (``pipelines.chat.to_openai_messages``) with the
tool schemas, for TRL or OpenAI fine-tuning.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from pydantic import Field

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
from schemas.strict import StrictModel


class ToolUseConfig(StrictModel):
    output: str
    documents: str | None = Field(None, description="corpus dir; required for search traces")
    index: str | None = Field(
        None, description="existing search index dir (default: build DIR/index)"
    )
    search_config: SearchConfig = Field(default_factory=SearchConfig)
    seed: int = 0
    documents_limit: int | None = 1000
    questions_per_doc: int = 2
    search: int = Field(
        200, description="max search traces (one search, or search -> refine -> search)"
    )
    python: int = Field(200, description="python traces")
    python_fix: int = Field(
        50, description="python error-recovery traces (fail, read the error, fix, rerun)"
    )
    search_python: int = Field(50, description="max search-then-python traces (needs documents)")
    broad_first: float = Field(
        0.5,
        ge=0,
        le=1,
        description="share of searches that start with a broad "
        "two-word query (refined when its results lack the answer)",
    )
    reference_year: int = Field(
        2025, description="'how many years before <year>' in search+python traces"
    )
    top_k: int = Field(3, description="passages returned per search")
    result_chars: int = Field(700, description="characters of each passage injected as the result")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)


_STOP = frozenset(
    """a an the of in on at to for from by with and or but is are was were be been being this that these
those it its as which who whom what when where why how do does did has have had not no can could will would should
may might also than then there here their they them he she his her we our you your i my me about into over after
before under between during while such so if page contains sentence fills blank year number name""".split()
)


def keywords(text: str, exclude: str = "") -> list[str]:
    """Content words of ``text`` in order, lower-cased, without stop words or the answer's words."""
    banned = {w.lower() for w in re.findall(r"[\w'-]+", exclude)}
    out, seen = [], set()
    for w in re.findall(r"[A-Za-z][\w'-]*", text):
        lw = w.lower()
        if lw in _STOP or lw in banned or len(lw) < 3 or lw in seen:
            continue
        seen.add(lw)
        out.append(w)
    return out


def user_query(item: QAItem, n_words: int, specific: bool = True) -> str:
    """A search-box query of ``n_words`` content words of the question's sentence, kept in
    sentence order, lower-cased: the most specific ones (capitalised, longer words first), or
    with ``specific=False`` the most general ones (how people often start a search)."""
    words = keywords(item.sentence, exclude=item.answer)
    if specific:
        order = sorted(
            range(len(words)), key=lambda i: (not words[i][:1].isupper(), -len(words[i]), i)
        )
    else:
        order = sorted(range(len(words)), key=lambda i: (words[i][:1].isupper(), len(words[i]), i))
    ranked = order[:n_words]
    return " ".join(words[i].lower() for i in sorted(ranked))


def search_query(item: QAItem) -> str:
    """The first, short query for ``item`` (kept for callers of the one-step traces)."""
    return user_query(item, 4)


def _search(index: SearchIndex, query: str, item: QAItem, cfg: ToolUseConfig):
    hits = index.search(query, k=cfg.top_k)
    containing = [h for h in hits if span_match(h.text[: cfg.result_chars], item.answer)]
    return hits, clean_tool_output(format_results(hits, cfg.result_chars)), containing


def search_steps(
    item: QAItem, index: SearchIndex, cfg: ToolUseConfig
) -> tuple[list[dict] | None, dict, str]:
    """The assistant/tool messages of a search (one query, or a refined second one) that ends
    with the answer in the tool output; (None, {}, why) when the answer is never retrieved."""
    broad = random.Random(f"broad:{item.question}").random() < cfg.broad_first
    q1, q2 = (
        user_query(item, 2, specific=False) if broad else user_query(item, 4),
        user_query(item, 9),
    )
    for q in (q1, q2):
        if not q or span_match(q, item.answer):
            return None, {}, "answer_in_query" if q else "no_keywords"
    hits, result, containing = _search(index, q1, item, cfg)
    steps = [
        {"role": "assistant", "content": tool_call("search", q1)},
        {"role": "tool", "content": result},
    ]
    queries = [q1]
    if not containing:
        if q2 == q1:
            return None, {}, "answer_not_retrieved"
        hits, result, containing = _search(index, q2, item, cfg)
        if not containing:
            return None, {}, "answer_not_retrieved"
        steps += [
            {
                "role": "assistant",
                "content": "These results do not mention it. Let me search with more "
                "specific words.\n" + tool_call("search", q2),
            },
            {"role": "tool", "content": result},
        ]
        queries.append(q2)
    assert span_match(
        result, item.answer
    )  # the grounding guarantee: the answer is in the tool output
    rank = hits.index(containing[0]) + 1
    info = {
        "queries": queries,
        "answer_doc_id": containing[0].doc_id,
        "rank": rank,
        "hit_doc_ids": [h.doc_id for h in hits],
        "same_doc": containing[0].doc_id == item.doc_id,
    }
    return steps, info, "ok"


def search_trace(item: QAItem, index: SearchIndex, cfg: ToolUseConfig) -> tuple[dict | None, str]:
    steps, info, why = search_steps(item, index, cfg)
    if steps is None:
        return None, why
    what = item.answer_type if item.answer_type != "llm" else "answer"
    answer = f"According to search result [{info['rank']}], the {what} is {item.answer}."
    msgs = [
        {"role": "user", "content": item.question},
        *steps,
        {"role": "assistant", "content": answer},
    ]
    source = "tool:search" if len(info["queries"]) == 1 else "tool:search-refine"
    meta = {
        "tool": "search",
        "query": info["queries"][-1],
        "queries": info["queries"],
        "reference": item.answer,
        "answer_doc_id": info["answer_doc_id"],
        "question_doc_id": item.doc_id,
        "same_doc": info["same_doc"],
        "rank": info["rank"],
        "hit_doc_ids": info["hit_doc_ids"],
        "snippet": item.snippet,
        "calls": len(info["queries"]),
    }
    return conversation(msgs, "tool_use", source, info["answer_doc_id"], meta), "ok"


def search_python_trace(
    item: QAItem, index: SearchIndex, cfg: ToolUseConfig
) -> tuple[dict | None, str]:
    """Search finds a year or number, Python computes with it: two tools, both results checked."""
    if item.answer_type not in ("year", "number"):
        return None, "not_numeric"
    raw = item.answer.replace(",", "")
    if not raw.isdigit():
        return None, "not_an_integer"
    value = int(raw)
    if item.answer_type == "year":
        if value > cfg.reference_year:
            return None, "future_year"
        ask = f"How many years before {cfg.reference_year} was that?"
        code, expected = f"print({cfg.reference_year} - {value})", str(cfg.reference_year - value)
    else:
        ask = "What is that number multiplied by 12?"
        code, expected = f"print({value} * 12)", str(value * 12)
    steps, info, why = search_steps(item, index, cfg)
    if steps is None:
        return None, why
    res = run_python(code, config=cfg.sandbox)
    if not res.ok or res.output.strip() != expected:
        return None, "python_mismatch"
    msgs = [
        {"role": "user", "content": f"{item.question} {ask}"},
        *steps,
        {
            "role": "assistant",
            "content": f"Search result [{info['rank']}] gives {item.answer}. Now the "
            "calculation:\n" + tool_call("python", code),
        },
        {"role": "tool", "content": clean_tool_output(res.output)},
        {
            "role": "assistant",
            "content": f"The {item.answer_type} is {item.answer}, and the calculation gives "
            f"{expected}.\n{format_answer(expected)}",
        },
    ]
    meta = {
        "tool": "search+python",
        "queries": info["queries"],
        "reference": item.answer,
        "computed": expected,
        "answer_doc_id": info["answer_doc_id"],
        "question_doc_id": item.doc_id,
        "snippet": item.snippet,
        "calls": len(info["queries"]) + 1,
    }
    return conversation(msgs, "tool_use", "tool:search+python", info["answer_doc_id"], meta), "ok"


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
    msgs = [
        {"role": "user", "content": p.prompt},
        {
            "role": "assistant",
            "content": "Let me compute this exactly with Python.\n" + tool_call("python", p.code),
        },
        {"role": "tool", "content": clean_tool_output(res.output)},
        {"role": "assistant", "content": f"The program printed {out}.\n{format_answer(out)}"},
    ]
    return conversation(
        msgs,
        "tool_use",
        "tool:python",
        None,
        {"tool": "python", "reference": p.answer, "task": p.kind},
    ), "ok"


_PRINT_RE = re.compile(r"^print\((.+)\)$")
#: How a first attempt goes wrong, and what the assistant says after reading the error.
BUGS = {
    "name_error": (
        "value = {expr}\nprint(valeu)",
        "value = {expr}\nprint(value)",
        "I misspelt the variable name. Fixed:",
    ),
    "type_error": (
        'print("The result is " + {expr})',
        "print({expr})",
        "I tried to add a number to a string. Printing the number alone:",
    ),
    "syntax_error": ("print({expr}", "print({expr})", "A parenthesis is missing. Fixed:"),
}


def python_fix_trace(p: Problem, bug: str, cfg: ToolUseConfig) -> tuple[dict | None, str]:
    """python that fails -> read the real error -> fix -> rerun -> answer."""
    m = _PRINT_RE.match(p.code.strip())
    if not m:
        return None, "not_a_print_expression"
    broken_t, fixed_t, remark = BUGS[bug]
    broken, fixed = broken_t.format(expr=m.group(1)), fixed_t.format(expr=m.group(1))
    bad = run_python(broken, config=cfg.sandbox)
    if bad.ok:
        return None, "bug_did_not_fail"
    good = run_python(fixed, config=cfg.sandbox)
    if not good.ok or good.output.strip() != p.answer:
        return None, "fix_mismatch"
    # the exception line the code printed (what a person reads first), e.g. "NameError: ..."
    error_line = (bad.stderr.strip().splitlines() or [bad.error or "an error"])[-1]
    msgs = [
        {"role": "user", "content": p.prompt},
        {
            "role": "assistant",
            "content": "Let me compute this exactly with Python.\n" + tool_call("python", broken),
        },
        {"role": "tool", "content": bad.tool_output()},
        {
            "role": "assistant",
            "content": f"That failed with {error_line.split(':')[0]}. {remark}\n"
            + tool_call("python", fixed),
        },
        {"role": "tool", "content": good.tool_output()},
        {
            "role": "assistant",
            "content": f"The program printed {good.output.strip()}.\n"
            f"{format_answer(good.output.strip())}",
        },
    ]
    meta = {
        "tool": "python",
        "reference": p.answer,
        "task": p.kind,
        "bug": bug,
        "error": error_line,
        "calls": 2,
    }
    return conversation(msgs, "tool_use", "tool:python-fix", None, meta), "ok"


def write_openai(out_dir: str | Path, rows: list[dict]) -> Path:
    """The conversations as OpenAI chat fine-tuning JSONL (``tool_calls`` + ``tool`` messages)."""
    import json

    from pipelines.chat import OPENAI_TOOLS, to_openai_messages
    from pipelines.io import atomic_write_text

    path = Path(out_dir) / "openai" / "part-00000.jsonl"
    lines = [
        json.dumps(
            {"id": r["id"], "messages": to_openai_messages(r["messages"]), "tools": OPENAI_TOOLS},
            ensure_ascii=False,
        )
        for r in rows
    ]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    return path


def _traces(items: list, make, limit: int, kind: str, rows: list[dict], outcomes) -> int:
    """``make(item)`` (-> (row or None, outcome)) over ``items`` until ``limit`` rows are made;
    the rows are appended to ``rows``, every outcome counted as ``kind:outcome``; returns how
    many rows were made."""
    made = 0
    for it in items:
        if made >= limit:
            break
        row, why = make(it)
        outcomes[f"{kind}:{why}"] += 1
        if row:
            rows.append(row)
            made += 1
    return made


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
        index = (
            SearchIndex.load(index_dir)
            if (index_dir / "index.json").exists()
            else SearchIndex.build(docs, index_dir, cfg.search_config)
        )
        items = rule_questions(docs, cfg.seed, cfg.questions_per_doc)
        kept = _traces(
            items, lambda it: search_trace(it, index, cfg), cfg.search, "search", rows, outcomes
        )
        figures["search"] = {
            "documents": len(docs),
            "passages": len(index),
            "questions": len(items),
            "traces": kept,
            "index": str(index_dir),
            "refined": sum(r["source"] == "tool:search-refine" for r in rows),
            "answer_in_question_doc": sum(1 for r in rows if '"same_doc": true' in r["meta"]),
        }
        _traces(
            items,
            lambda it: search_python_trace(it, index, cfg),
            cfg.search_python,
            "search+python",
            rows,
            outcomes,
        )
    rng = random.Random(f"tooluse:{cfg.seed}")
    seen: set[str] = set()
    tries = 0
    while (
        sum(1 for r in rows if r["source"] == "tool:python") < cfg.python and tries < cfg.python * 5
    ):
        tries += 1
        p = python_problem(rng)
        if p.prompt in seen:
            continue
        seen.add(p.prompt)
        row, why = python_trace(p, cfg)
        outcomes[f"python:{why}"] += 1
        if row:
            rows.append(row)
    fix_rng = random.Random(f"tooluse-fix:{cfg.seed}")
    made = tries = 0
    while made < cfg.python_fix and tries < cfg.python_fix * 5:
        tries += 1
        p = python_problem(fix_rng)
        row, why = python_fix_trace(p, fix_rng.choice(sorted(BUGS)), cfg)
        outcomes[f"python-fix:{why}"] += 1
        if row:
            rows.append(row)
            made += 1
    rows, dropped = dedup_conversations(rows)
    write_conversations(cfg.output, rows)
    write_openai(cfg.output, rows)
    stats = {
        "generator": "tooluse",
        "seed": cfg.seed,
        **conversation_stats(rows),
        "by_calls": dict(
            sorted(
                Counter(str(sum(m["role"] == "tool" for m in r["messages"])) for r in rows).items()
            )
        ),
        "outcomes": dict(sorted(outcomes.items())),
        "duplicates_dropped": dropped,
        **figures,
    }
    stats["config"] = cfg.model_dump(mode="json")  # what made this output
    write_stats(Path(cfg.output), stats)
    return stats
