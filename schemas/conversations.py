"""Post-training datasets: conversations, preference pairs and RL prompts."""

from __future__ import annotations

import pyarrow as pa

ROLES = ("system", "user", "assistant", "tool")
KINDS = (
    "sft",
    "identity",
    "arithmetic",
    "counting",
    "spelling",
    "import",
    "generated",
    "refusal",
    "answered",
    "tool_use",
    "reasoning",
)

MESSAGE_TYPE = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])

CONVERSATION_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("messages", pa.list_(MESSAGE_TYPE)),
        pa.field("kind", pa.string()),
        pa.field("source", pa.string()),
        pa.field("doc_id", pa.string()),  # provenance: the corpus document a sample came from
        pa.field("meta", pa.string()),  # JSON: generator-specific provenance (snippet, scores...)
    ]
)

PREFERENCE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("prompt", pa.string()),
        pa.field("chosen", pa.string()),
        pa.field("rejected", pa.string()),
        pa.field("source", pa.string()),
    ]
)

RL_PROMPT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("prompt", pa.string()),
        pa.field("answer", pa.string()),  # verifiable final answer
        pa.field("kind", pa.string()),
        pa.field("source", pa.string()),
    ]
)

#: k sampled responses per prompt (``synth samples``): what people, the verifier or a judge rank.
RESPONSE_TYPE = pa.struct([pa.field("id", pa.string()), pa.field("text", pa.string())])
SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # the prompt's sample set
        pa.field("prompt", pa.string()),
        pa.field("answer", pa.string()),  # verifiable reference answer, when the prompt has one
        pa.field("responses", pa.list_(RESPONSE_TYPE)),
        pa.field("source", pa.string()),  # which policy sampled them
        pa.field("meta", pa.string()),  # JSON: sampling settings
    ]
)

#: Pairs implied by rankings (``rank export``): PREFERENCE_SCHEMA plus who ranked and where.
RANKED_PAIR_SCHEMA = pa.schema(
    [
        *PREFERENCE_SCHEMA,
        pa.field("annotator", pa.string()),
        pa.field("set_id", pa.string()),
        pa.field("chosen_rank", pa.int32()),  # 1 = best
        pa.field("rejected_rank", pa.int32()),
    ]
)
