"""LLM-generated conversations from seed topics or corpus documents (any LLM backend).

Two calls per conversation: the LLM first writes a question a user might ask (about a topic, or
about a corpus snippet), then answers it (with the snippet as context when there is one, so
the answer is grounded in the corpus). Questions are deduplicated before answering.
"""

from __future__ import annotations

import random

from pipelines.synth.common import conversation, normalize_prompt
from pipelines.synth.qa import snippet_around, split_sentences

QUESTION_PROMPT = ("Write one question that a curious user might ask an assistant about {subject}. "
                   "Reply with the question only.")
ANSWER_SYSTEM = "You are a helpful, accurate assistant. Answer clearly and concisely."


def _clean_question(text: str) -> str:
    q = text.strip().strip('"').strip()
    return q.split("\n")[0].removeprefix("Question:").strip()


def generate_conversations(llm, n: int, seed: int, topics: list[str] | None = None,
                           docs: list[dict] | None = None, temperature: float = 0.8,
                           max_tokens: int = 256) -> tuple[list[dict], dict]:
    """Up to ``n`` user/assistant conversations; returns (rows, figures)."""
    rng = random.Random(f"generated:{seed}")
    subjects: list[tuple[str, str | None, str | None]] = []  # (subject text, doc_id, snippet)
    for t in topics or []:
        subjects.append((t, None, None))
    for doc in docs or []:
        sents = split_sentences(doc["text"])
        if sents:
            snippet = snippet_around(sents, rng.randrange(len(sents)), 500)
            subjects.append((f"the following text:\n\n{snippet}", doc["id"], snippet))
    if not subjects:
        return [], {"requested": n, "questions": 0}
    picks = [subjects[i % len(subjects)] for i in range(n)]
    questions = llm.chat([[{"role": "user", "content": QUESTION_PROMPT.format(subject=s)}] for s, _, _ in picks],
                         temperature=temperature, max_tokens=96, seed=seed)
    seen, keep = set(), []
    for (subject, doc_id, snippet), q in zip(picks, questions, strict=True):
        q = _clean_question(q)
        key = normalize_prompt(q)
        if not key or key in seen:
            continue
        seen.add(key)
        keep.append((q, subject, doc_id, snippet))
    prompts = []
    for q, _, _, snippet in keep:
        system = ANSWER_SYSTEM + (f"\nUse this text as your source:\n{snippet}" if snippet else "")
        prompts.append([{"role": "system", "content": system}, {"role": "user", "content": q}])
    answers = llm.chat(prompts, temperature=0.3, max_tokens=max_tokens, seed=seed + 1)
    rows = []
    for (q, subject, doc_id, snippet), a in zip(keep, answers, strict=True):
        if not a.strip():
            continue
        msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a.strip()}]
        meta = {"topic": None if snippet else subject, "snippet": snippet}
        rows.append(conversation(msgs, "generated", "llm:" + ("corpus" if doc_id else "topics"), doc_id, meta))
    return rows, {"requested": n, "questions": len(questions), "duplicate_questions": len(questions) - len(keep),
                  "generated": len(rows)}
