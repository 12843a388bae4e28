"""Token shards (pretraining data) and the special tokens shared by tokenizers, chat rendering
and the trainer."""

from __future__ import annotations

import pyarrow as pa

TOKEN_SHARD_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("input_ids", pa.list_(pa.uint32())),
        pa.field("num_tokens", pa.int32()),
    ]
)

#: End of a document in token shards (cl100k_base's own ``<|endoftext|>`` keeps its id 100257).
EOT = "<|endoftext|>"

#: Chat and tool special tokens (../shared/DESIGN.md). They are never produced from plain text:
#: tokenizers encode text "ordinarily" and only rendering code inserts these ids.
CHAT_SPECIAL_TOKENS: list[str] = [
    "<|im_start|>",
    "<|im_sep|>",
    "<|im_end|>",
    "<|search_start|>",
    "<|search_end|>",
    "<|python_start|>",
    "<|python_end|>",
    "<|output_start|>",
    "<|output_end|>",
]

SPECIAL_TOKENS: list[str] = [EOT, *CHAT_SPECIAL_TOKENS]
