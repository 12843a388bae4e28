"""LLM-generated conversations from seed topics or corpus documents (any LLM backend).

N requested conversations should be N different conversations, so every question request differs
from the others twice over: its own seed (``pipelines.llm.request_seeds``; an endpoint that
honours seeds would otherwise answer one prompt identically every time) and its own prompt, drawn
from persona x sub-topic facet x difficulty x format. The LLM writes a question as that user,
questions that nearly duplicate a kept one are dropped (``NearDuplicateFilter``, the project's
MinHash), the rest are answered (with the snippet as context for corpus documents, so the answer
is grounded), and a share of conversations get a follow-up turn written by the LLM as the user
and answered with the whole history. Rounds of fresh requests refill what duplicates and empty
answers cost, up to ``max_rounds``; any remaining shortfall is reported, never silent.
"""

from __future__ import annotations

import math
import random

from pydantic import Field

from pipelines.llm import request_seeds
from pipelines.synth.common import conversation
from pipelines.synth.neardup import NearDuplicateFilter
from pipelines.synth.qa import snippet_around, split_sentences
from schemas.strict import StrictModel

PERSONAS = (
    "a high-school student",
    "a retired engineer",
    "a busy parent",
    "a nurse on a night shift",
    "a small-business owner",
    "a university researcher",
    "a curious ten-year-old's parent",
    "a software developer",
    "a journalist checking facts",
    "a hobbyist",
    "a teacher preparing a lesson",
    "a traveller",
    "an artist",
    "a farmer",
    "a first-year undergraduate",
    "someone learning English",
)
FACETS = (
    "the basics",
    "its history",
    "how it works underneath",
    "common mistakes",
    "safety or risks",
    "a practical everyday problem",
    "costs and trade-offs",
    "a surprising fact",
    "tools and equipment",
    "comparing two approaches",
    "a concrete example",
    "recent developments",
    "a common myth",
    "getting started",
    "an advanced detail",
)
DIFFICULTIES = ("a complete beginner", "someone with some experience", "an expert")
FORMATS = (
    "a short direct question",
    "a request for step-by-step instructions",
    "a question that compares two options",
    "a request for a worked example",
    "a 'why' question",
    "a request for advice about a concrete situation you describe in one sentence",
    "a question with a constraint (time, budget or tools)",
)

QUESTION_PROMPT = (
    "Imagine you are {persona}, {difficulty} when it comes to {subject}. Write {format} that "
    "you would send to an AI assistant, focused on {facet}. Write it in your own words, as a "
    "real user would type it. Reply with the message only."
)
FOLLOWUP_PROMPT = (
    "Here is a conversation between a user and an assistant.\n\nUser: {q}\n\nAssistant: {a}\n\n"
    "Write the user's natural follow-up message (a clarification, a related question or a "
    "request to go further). Reply with the message only."
)
ANSWER_SYSTEM = "You are a helpful, accurate assistant. Answer clearly and concisely."


class GeneratedConfig(StrictModel):
    """How LLM-generated conversations vary and how hard the generator tries to reach the count."""

    temperature: float = Field(0.9, ge=0, description="question-writing temperature")
    answer_temperature: float = Field(0.3, ge=0)
    max_tokens: int = Field(256, ge=1, description="answer length cap")
    followup_rate: float = Field(
        0.3, ge=0, le=1, description="share of conversations with a follow-up turn"
    )
    near_duplicate_threshold: float = Field(
        0.7,
        gt=0,
        le=1,
        description="MinHash Jaccard above which two questions are the same question",
    )
    max_rounds: int = Field(
        4, ge=1, description="request rounds to refill duplicates and empty answers"
    )
    oversample: float = Field(
        0.25,
        ge=0,
        description="extra question requests per round, as a share of "
        "the missing count (duplicates are expected); surplus questions are not answered",
    )


def _clean(text: str) -> str:
    q = text.strip().strip('"').strip()
    lines = [ln.strip() for ln in q.split("\n") if ln.strip()]
    return (
        (lines[0] if lines else "")
        .removeprefix("Question:")
        .removeprefix("User:")
        .strip()
        .strip('"')
    )


def _subjects(topics: list[str] | None, docs: list[dict] | None, rng: random.Random):
    out: list[
        tuple[str, str | None, str | None, str | None]
    ] = []  # (subject, topic, doc_id, snippet)
    for t in topics or []:
        out.append((t, t, None, None))
    for doc in docs or []:
        sents = split_sentences(doc["text"])
        if sents:
            snippet = snippet_around(sents, rng.randrange(len(sents)), 500)
            out.append((f"the subject of this text:\n\n{snippet}\n\n", None, doc["id"], snippet))
    return out


def generate_conversations(
    llm,
    n: int,
    seed: int,
    topics: list[str] | None = None,
    docs: list[dict] | None = None,
    cfg: GeneratedConfig | None = None,
) -> tuple[list[dict], dict]:
    """Up to ``n`` distinct conversations; returns (rows, figures with any shortfall)."""
    cfg = cfg or GeneratedConfig()
    rng = random.Random(f"generated:{seed}")
    subjects = _subjects(topics, docs, rng)
    figures = {
        "requested": n,
        "question_requests": 0,
        "empty_questions": 0,
        "duplicate_questions": 0,
        "empty_answers": 0,
        "multi_turn": 0,
        "rounds": 0,
        "generated": 0,
        "shortfall": n,
    }
    if not subjects or n <= 0:
        return [], figures
    dedup = NearDuplicateFilter(cfg.near_duplicate_threshold)
    rows: list[dict] = []
    issued = 0
    for _round in range(cfg.max_rounds):
        need = n - len(rows)
        if need <= 0:
            break
        figures["rounds"] += 1
        ask = need + math.ceil(need * cfg.oversample)
        specs = []
        for i in range(issued, issued + ask):
            subject, topic, doc_id, snippet = subjects[i % len(subjects)]
            spec = {
                "persona": rng.choice(PERSONAS),
                "facet": rng.choice(FACETS),
                "difficulty": rng.choice(DIFFICULTIES),
                "format": rng.choice(FORMATS),
            }
            specs.append((spec, subject, topic, doc_id, snippet))
        seeds = request_seeds(seed, issued + ask, "question")[issued:]
        issued += ask
        figures["question_requests"] += ask
        texts = llm.chat(
            [
                [{"role": "user", "content": QUESTION_PROMPT.format(subject=s, **sp)}]
                for sp, s, *_ in specs
            ],
            temperature=cfg.temperature,
            max_tokens=96,
            seed=seeds,
        )
        keep = []
        for (spec, _s, topic, doc_id, snippet), text, qseed in zip(
            specs, texts, seeds, strict=True
        ):
            q = _clean(text)
            if not q:
                figures["empty_questions"] += 1
            elif len(keep) >= need:
                break  # enough questions this round: the surplus requests' answers are not needed
            elif not dedup.add(q):
                figures["duplicate_questions"] += 1
            else:
                keep.append((q, spec, topic, doc_id, snippet, qseed))
        system = [
            ANSWER_SYSTEM + (f"\nUse this text as your source:\n{snip}" if snip else "")
            for _q, _sp, _t, _d, snip, _s in keep
        ]
        convs = [
            [{"role": "system", "content": sy}, {"role": "user", "content": k[0]}]
            for sy, k in zip(system, keep, strict=True)
        ]
        answers = llm.chat(
            convs,
            temperature=cfg.answer_temperature,
            max_tokens=cfg.max_tokens,
            seed=[k[5] + 1 for k in keep],
        )
        done = []
        for k, conv, a in zip(keep, convs, answers, strict=True):
            if not a.strip():
                figures["empty_answers"] += 1
                continue
            done.append((k, conv + [{"role": "assistant", "content": a.strip()}]))
        # follow-up turns for a deterministic share of the conversations
        fu = [
            (k, c)
            for k, c in done
            if random.Random(f"followup:{seed}:{k[5]}").random() < cfg.followup_rate
        ]
        if fu:
            fqs = llm.chat(
                [
                    [
                        {
                            "role": "user",
                            "content": FOLLOWUP_PROMPT.format(q=c[1]["content"], a=c[2]["content"]),
                        }
                    ]
                    for _k, c in fu
                ],
                temperature=cfg.temperature,
                max_tokens=96,
                seed=[k[5] + 2 for k, _c in fu],
            )
            extended = [(k, c, _clean(f)) for (k, c), f in zip(fu, fqs, strict=True)]
            extended = [(k, c, f) for k, c, f in extended if f and f != c[1]["content"]]
            fas = llm.chat(
                [c + [{"role": "user", "content": f}] for _k, c, f in extended],
                temperature=cfg.answer_temperature,
                max_tokens=cfg.max_tokens,
                seed=[k[5] + 3 for k, _c, _f in extended],
            )
            longer = {
                id(c): c
                + [{"role": "user", "content": f}, {"role": "assistant", "content": a.strip()}]
                for (_k, c, f), a in zip(extended, fas, strict=True)
                if a.strip()
            }
            done = [(k, longer.get(id(c), c)) for k, c in done]
        for (_q, spec, topic, doc_id, snippet, _qs), conv in done:
            msgs = [m for m in conv if m["role"] != "system"]
            figures["multi_turn"] += len(msgs) > 2
            meta = {"topic": topic, "snippet": snippet, **spec}
            rows.append(
                conversation(
                    msgs, "generated", "llm:" + ("corpus" if doc_id else "topics"), doc_id, meta
                )
            )
    figures["generated"] = len(rows)
    figures["shortfall"] = n - len(rows)
    return rows, figures
