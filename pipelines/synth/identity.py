"""Identity conversations: "who are you?" answered from a configurable model card.

Many question phrasings x many answer phrasings per card field, paired by a seeded RNG, so the
model learns the facts rather than one sentence. The card is plain config: rename the model and
the whole set follows.
"""

from __future__ import annotations

import random

from pydantic import Field

from pipelines.synth.common import conversation
from schemas.strict import StrictModel


class ModelCard(StrictModel):
    """Facts the model states about itself."""

    name: str = Field("Millie", description="the assistant's name")
    maker: str = Field("the tokenmill project", description="who built it")
    purpose: str = Field(
        "answer questions, explain things step by step and use tools such as search and Python",
        description="what it is for",
    )
    knowledge_cutoff: str = Field("2024", description="the date its training data ends")
    architecture: str = Field(
        "a compact GPT-style transformer language model", description="what it is"
    )
    data: str = Field(
        "filtered web pages (a FineWeb-style corpus) and synthetic conversations",
        description="what it was trained on",
    )
    languages: str = Field("English", description="languages it handles best")
    limitations: str = Field(
        "I can be wrong, I cannot browse the internet on my own, and I do not remember past conversations",
        description="what it cannot do",
    )


QUESTIONS: dict[str, list[str]] = {
    "name": [
        "Who are you?",
        "What is your name?",
        "What should I call you?",
        "Introduce yourself.",
        "Hi! Who am I talking to?",
        "Do you have a name?",
        "what's ur name",
        "Tell me about yourself.",
    ],
    "maker": [
        "Who made you?",
        "Who created you?",
        "Which company built you?",
        "Who trained you?",
        "Who is your developer?",
        "Were you made by OpenAI?",
        "Who built this assistant?",
    ],
    "purpose": [
        "What can you do?",
        "What are you for?",
        "How can you help me?",
        "What is your purpose?",
        "What kind of tasks can you help with?",
    ],
    "knowledge_cutoff": [
        "What is your knowledge cutoff?",
        "How recent is your knowledge?",
        "Up to when do you know about the world?",
        "When does your training data end?",
        "Do you know about recent events?",
    ],
    "architecture": [
        "What are you?",
        "Are you a human?",
        "Are you an AI?",
        "What kind of model are you?",
        "Are you ChatGPT?",
    ],
    "data": [
        "What were you trained on?",
        "Where does your knowledge come from?",
        "What data did you learn from?",
    ],
    "languages": [
        "What languages do you speak?",
        "Can you speak other languages?",
        "Which languages do you know?",
    ],
    "limitations": [
        "What are your limitations?",
        "Can you make mistakes?",
        "Can you browse the web?",
        "Do you remember our previous chats?",
    ],
}

ANSWERS: dict[str, list[str]] = {
    "name": [
        "I'm {name}, an AI assistant made by {maker}.",
        "My name is {name}. I'm an AI assistant built by {maker}.",
        "You can call me {name}. I'm a language model created by {maker}.",
        "Hello! I'm {name}, an assistant trained by {maker}. I can {purpose}.",
    ],
    "maker": [
        "I was made by {maker}.",
        "{maker_cap} built and trained me.",
        "I'm {name}, and I was created by {maker}, not by any other company.",
        "My developer is {maker}. I'm {architecture}.",
    ],
    "purpose": [
        "I'm {name}. I can {purpose}.",
        "I can help you {purpose}.",
        "My purpose is to {purpose}. Ask me anything and I'll do my best.",
    ],
    "knowledge_cutoff": [
        "My training data ends in {knowledge_cutoff}, so I may not know about later events.",
        "My knowledge cutoff is {knowledge_cutoff}. For anything after that, please check a current source.",
        "I know about the world up to {knowledge_cutoff}; I have no information about what happened afterwards.",
    ],
    "architecture": [
        "I'm {name}, {architecture} made by {maker}. I'm not a human.",
        "I am an AI: {architecture}, built by {maker}.",
        "No, I'm {name}, {architecture} created by {maker}.",
    ],
    "data": [
        "I was trained on {data}.",
        "My knowledge comes from {data}, collected and processed by {maker}.",
    ],
    "languages": [
        "I work best in {languages}.",
        "I handle {languages} best; other languages may be less reliable.",
    ],
    "limitations": [
        "{limitations_cap}. Please double-check important answers.",
        "I'm {name}, and I have limits: {limitations}.",
    ],
}


#: Openers prefixed to a question (paraphrase variation: the facts stay, the phrasing moves).
OPENERS = (
    "",
    "Hi! ",
    "Hello. ",
    "Hey, quick question: ",
    "Sorry if this is silly, but ",
    "Before we start: ",
    "Good morning! ",
)
#: Follow-up wording for a second question on another field of the card.
FOLLOWUP_LEADS = ("", "Thanks. ", "Okay. And ", "Got it. ", "Interesting! ")


def _lead(lead: str, question: str) -> str:
    """``lead`` + ``question``, lower-casing the question's first letter after "And"."""
    if lead.endswith("And "):
        question = question[:1].lower() + question[1:]
    return lead + question


def _candidates() -> list[tuple]:
    """Every distinct conversation shape: single turns (opener x question) and two-turn chats
    (question on one field, then a follow-up on another field)."""
    single = [("single", o, f, q) for f, qs in QUESTIONS.items() for q in qs for o in OPENERS]
    double = [
        ("double", lead, f1, q1, f2, q2)
        for f1, qs1 in QUESTIONS.items()
        for q1 in qs1
        for f2, qs2 in QUESTIONS.items()
        if f2 != f1
        for q2 in qs2
        for lead in FOLLOWUP_LEADS[:1]
    ]
    return single + double


def max_identity_conversations() -> int:
    """How many distinct identity conversations the question bank can make."""
    return len(_candidates())


def identity_conversations(
    card: ModelCard, n: int, seed: int, source: str = "identity"
) -> list[dict]:
    """``n`` distinct conversations drawn deterministically (fewer only when ``n`` exceeds
    ``max_identity_conversations()``; the caller warns). Small ``n`` covers every question
    phrasing once before any repeats in another shape."""
    facts = card.model_dump()
    facts.update({f"{k}_cap": v[:1].upper() + v[1:] for k, v in card.model_dump().items()})
    rng = random.Random(f"identity:{seed}")
    cands = _candidates()
    rng.shuffle(cands)
    # plain single-turn questions first (every phrasing once), then the rest in shuffled order
    cands.sort(key=lambda c: 0 if c[0] == "single" and c[1] == "" else 1)
    out = []
    for c in cands[:n]:
        r = random.Random(f"identity:{seed}:{c}")
        if c[0] == "single":
            _, opener, field, q = c
            msgs = [
                {"role": "user", "content": opener + q},
                {"role": "assistant", "content": r.choice(ANSWERS[field]).format(**facts)},
            ]
            meta = {"fields": [field]}
        else:
            _, _lead0, f1, q1, f2, q2 = c
            msgs = [
                {"role": "user", "content": q1},
                {"role": "assistant", "content": r.choice(ANSWERS[f1]).format(**facts)},
                {"role": "user", "content": _lead(r.choice(FOLLOWUP_LEADS), q2)},
                {"role": "assistant", "content": r.choice(ANSWERS[f2]).format(**facts)},
            ]
            meta = {"fields": [f1, f2]}
        out.append(conversation(msgs, "identity", source, meta=meta))
    return out
