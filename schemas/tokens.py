"""Token shards (pretraining data) and the special tokens shared by tokenizers, chat rendering
and the trainer."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

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


#: The shard assignment rule, recorded in every manifest (``pipelines.tokenize``).
SHARD_RULE = (
    "documents ordered by xxh64(id, seed); val iff xxh64(id, 0x7E575A17) < val_fraction * 2**64; "
    "shard of a document = key range (xxh64(id, seed) >> 32) * n_shards >> 32 of its split, "
    "n_shards = ceil(split tokens / shard_tokens); empty key ranges write no file"
)


class ShardEntry(BaseModel):
    """One token shard file, relative to the manifest's directory."""

    model_config = ConfigDict(extra="forbid")
    file: str
    documents: int
    tokens: int


class SplitManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: int = 0
    tokens: int = 0
    shards: list[ShardEntry] = Field(default_factory=list)


class TokenManifest(BaseModel):
    """``OUT/tokenize/manifest.json``: the one definition the tokenize stage writes and the trainer
    and the dataset card read (no guessing among key spellings)."""

    model_config = ConfigDict(extra="forbid")
    tokenizer: str = Field(
        description="tiktoken encoding name, or a tokenizers JSON file relative "
        "to the manifest's directory"
    )
    vocab_size: int
    special_ids: dict[str, int]
    eot_id: int
    seed: int
    val_fraction: float
    shard_tokens: int
    shuffle: str = SHARD_RULE
    splits: dict[str, SplitManifest] = Field(default_factory=dict)

    @classmethod
    def read(cls, directory: str | Path) -> TokenManifest:
        """Load ``directory/manifest.json``; a missing file or a key this model does not know is
        a clear error naming the file."""
        path = Path(directory) / "manifest.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no token manifest (not a tokenize output directory?)")
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ValueError(f"{path}: not a valid token manifest: {e}") from None

    def tokenizer_ref(self, directory: str | Path) -> str:
        """The tokenizer to load: a bundled JSON file resolved against ``directory``, else the name."""
        if self.tokenizer.endswith(".json") and not Path(self.tokenizer).is_absolute():
            cand = Path(directory) / self.tokenizer
            if cand.is_file():
                return str(cand)
        return self.tokenizer
