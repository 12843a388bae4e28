"""The `refusal` generator: the Llama 3 knowledge probe.

1. snippets from corpus documents -> factual questions whose answers are spans of the snippet:
   natural questions written by an LLM and checked answerable by the judge LLM when a question
   writer is configured; otherwise rule-based cloze questions, the labelled offline fallback
   (``question_style`` in stats and meta);
2. ask the TARGET model (the model being post-trained: a local checkpoint or an endpoint) each
   question ``samples`` times;
3. judge every answer against the snippet (normalized span match; an LLM judge when configured);
4. consistently wrong -> a conversation where the assistant says it does not know (kind
   ``refusal``); consistently right -> an answered conversation (kind ``answered``); mixed ->
   nothing (the model is unsure: neither lesson is clearly right).

Outputs: ``DIR/data/*.parquet`` (conversations, provenance in ``doc_id`` and ``meta``),
``DIR/probes/*.parquet`` (every question with its answers and per-sample correctness) and
``DIR/stats.json`` (refusal rate, accuracy, counts).
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
from pydantic import Field

from pipelines.io import atomic_write_parquet
from pipelines.llm import LLMConfig, make_llm
from pipelines.synth.common import (
    conversation,
    conversation_stats,
    dedup_conversations,
    write_conversations,
    write_stats,
)
from pipelines.synth.qa import QAItem, llm_questions, load_documents, rule_questions, span_match
from schemas.strict import StrictModel

REFUSALS = [
    "I'm not sure. I don't have reliable information about that, so I'd rather not guess.",
    "I don't know the answer to that.",
    "I'm sorry, but I don't know. I could easily give you a wrong answer here, so please check a reliable source.",
    "I don't have that information. If you can share the page, I can help you read it.",
    "Honestly, I don't know, and I don't want to make something up.",
    "I'm not confident about this one, so I won't guess. "
    "A search or the original page would give you the right answer.",
    "That's a detail I don't know.",
    "I can't answer that reliably: I don't remember this fact.",
]


class RefusalConfig(StrictModel):
    """Knowledge-probe settings; the target model is required, writer and judge are optional."""

    output: str
    documents: str = Field(description="corpus dir (DIR/documents/*.parquet)")
    target: LLMConfig = Field(description="the model being probed")
    question_writer: LLMConfig | None = Field(
        None, description="LLM question writer (default: rules only)"
    )
    judge: LLMConfig | None = Field(None, description="LLM judge (default: normalized span match)")
    seed: int = 0
    documents_limit: int | None = 500
    questions_per_doc: int = Field(3, description="cloze questions per document (offline fallback)")
    llm_questions_per_doc: int = Field(1, description="LLM-written questions per document")
    cloze_with_writer: bool = Field(
        False, description="also use cloze questions when a writer is configured"
    )
    max_questions: int = 1000
    samples: int = Field(3, ge=1, description="answers sampled per question")
    temperature: float = 0.7
    max_tokens: int = 48


JUDGE_PROMPT = (
    "Question: {q}\nReference answer (from the source text): {ref}\nCandidate answer: {a}\n"
    "Is the candidate answer correct? Reply with yes or no."
)


def judge_answers(
    items: list[QAItem], answers: list[list[str]], judge=None, seed: int = 0
) -> list[list[bool]]:
    if judge is None:
        return [
            [span_match(a, it.answer) for a in ans] for it, ans in zip(items, answers, strict=True)
        ]
    prompts = [
        [{"role": "user", "content": JUDGE_PROMPT.format(q=it.question, ref=it.answer, a=a)}]
        for it, ans in zip(items, answers, strict=True)
        for a in ans
    ]
    verdicts = judge.chat(prompts, temperature=0.0, max_tokens=4, seed=seed)
    flat = [v.strip().lower().startswith("yes") for v in verdicts]
    out, k = [], 0
    for ans in answers:
        out.append(flat[k : k + len(ans)])
        k += len(ans)
    return out


def answered_text(item: QAItem) -> str:
    if item.answer_type == "llm":
        return f"{item.answer}."
    return f'The sentence reads: "{item.sentence}" So the {item.answer_type} that fills the blank is {item.answer}.'


def run_refusal(cfg: RefusalConfig) -> dict:
    docs = load_documents(cfg.documents, cfg.documents_limit)
    writer_requests, rejected_questions = 0, {}
    items = []
    judge = make_llm(cfg.judge) if cfg.judge is not None else None
    if cfg.question_writer is not None:
        writer = make_llm(cfg.question_writer)
        items, rejected = llm_questions(
            writer, docs, cfg.seed, cfg.llm_questions_per_doc, judge=judge
        )
        rejected_questions = dict(sorted(rejected.items()))
        writer_requests = writer.requests
    if cfg.question_writer is None or cfg.cloze_with_writer:
        items += rule_questions(docs, cfg.seed, cfg.questions_per_doc)
    items = items[: cfg.max_questions]
    target = make_llm(cfg.target)
    answers = target.sample(
        [[{"role": "user", "content": it.question}] for it in items],
        n=cfg.samples,
        temperature=cfg.temperature,
        max_tokens=cfg.max_tokens,
        seed=cfg.seed,
    )
    correct = judge_answers(items, answers, judge, cfg.seed)
    rows, probes = [], []
    for it, ans, ok in zip(items, answers, correct, strict=True):
        verdict = "right" if all(ok) else "wrong" if not any(ok) else "mixed"
        meta = {
            "snippet": it.snippet,
            "sentence": it.sentence,
            "reference": it.answer,
            "url": it.url,
            "answer_type": it.answer_type,
            "writer": it.writer,
            "answers": ans,
            "correct": ok,
            "question_style": "natural (llm)"
            if it.answer_type == "llm"
            else "cloze (offline fallback)",
            "judge": "llm" if judge else "span_match",
            "verdict": verdict,
        }
        probes.append(
            {
                "question": it.question,
                "reference": it.answer,
                "doc_id": it.doc_id,
                "answers": ans,
                "correct": ok,
                "accuracy": sum(ok) / len(ok),
                "verdict": verdict,
            }
        )
        if verdict == "wrong":
            reply = random.Random(f"refusal:{cfg.seed}:{it.question}").choice(REFUSALS)
            kind = "refusal"
        elif verdict == "right":
            reply, kind = answered_text(it), "answered"
        else:
            continue
        msgs = [{"role": "user", "content": it.question}, {"role": "assistant", "content": reply}]
        rows.append(conversation(msgs, kind, "probe:" + it.writer.split(":")[0], it.doc_id, meta))
    rows, dropped = dedup_conversations(rows)
    write_conversations(cfg.output, rows)
    atomic_write_parquet(
        Path(cfg.output) / "probes" / "part-00000.parquet",
        pa.Table.from_pylist(probes)
        if probes
        else pa.table({"question": pa.array([], pa.string())}),
    )
    n = len(items)
    verdicts = [p["verdict"] for p in probes]
    stats = {
        "generator": "refusal",
        "seed": cfg.seed,
        **conversation_stats(rows),
        "documents": len(docs),
        "questions": n,
        "samples_per_question": cfg.samples,
        "consistently_wrong": verdicts.count("wrong"),
        "consistently_right": verdicts.count("right"),
        "mixed": verdicts.count("mixed"),
        "refusal_rate": round(verdicts.count("wrong") / n, 4) if n else 0.0,
        "answer_accuracy": round(sum(p["accuracy"] for p in probes) / n, 4) if n else 0.0,
        "questions_by_type": dict(
            sorted(
                {
                    t: sum(it.answer_type == t for it in items)
                    for t in {it.answer_type for it in items}
                }.items()
            )
        ),
        "question_style": (
            "natural (llm)" if cfg.question_writer is not None else "cloze (offline fallback)"
        )
        + (" + cloze" if cfg.question_writer is not None and cfg.cloze_with_writer else ""),
        "questions_rejected": rejected_questions,
        "judge": "llm" if judge else "span_match",
        "target_requests": target.requests,
        "target_cache_hits": target.cache_hits,
        "writer_requests": writer_requests,
        "duplicates_dropped": dropped,
    }
    stats["config"] = cfg.model_dump(mode="json")  # what made this output
    write_stats(Path(cfg.output), stats)
    return stats
