"""Typed configuration of the model and of every training run, with documented defaults.

Model presets follow nanoGPT: ``tiny`` runs in seconds on a CPU (tests), ``small`` is the
Shakespeare-sized model, ``gpt2-124m`` is GPT-2 small (one GPU).
"""

from __future__ import annotations

import warnings
from typing import Literal

from pydantic import Field

from schemas.strict import StrictModel  # unknown keys are errors (`{"setps": 5}`)


class TrainerWarning(UserWarning):
    """A run that works but is probably not what the user wants (slow, or unable to learn)."""


class ModelConfig(StrictModel):
    """GPT shape. ``vocab_size`` is set from the tokenizer (padded to a multiple of 64)."""

    n_layer: int = Field(2, description="transformer blocks")
    n_head: int = Field(2, description="attention heads (n_embd must divide evenly)")
    n_embd: int = Field(64, description="residual stream width")
    block_size: int = Field(128, description="context length in tokens (learned positions)")
    vocab_size: int = Field(512, description="embedding rows; >= the tokenizer's vocab")
    dropout: float = Field(0.0, description="dropout on attention/MLP outputs (0 = deterministic)")

    def num_params(self, embeddings: bool = True) -> int:
        """Parameter count (tied embeddings counted once)."""
        d, L = self.n_embd, self.n_layer
        block = 12 * d * d + 2 * d  # qkv + proj + mlp (4x) + two LayerNorm gains
        n = L * block + d  # + final LayerNorm
        if embeddings:
            n += self.vocab_size * d + self.block_size * d
        return n

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6N (non-embedding matmuls + lm head) + attention (PaLM appendix B)."""
        n = self.num_params(embeddings=False) + self.vocab_size * self.n_embd
        attn = 12 * self.n_layer * self.n_embd * self.block_size
        return 6 * n + attn


PRESETS: dict[str, dict] = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=128),
    "small": dict(n_layer=6, n_head=6, n_embd=384, block_size=256),
    "gpt2-124m": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024),
}


def model_config(preset: str, vocab_size: int, **overrides) -> ModelConfig:
    """A preset shape for a tokenizer of ``vocab_size`` ids (rounded up to a multiple of 64)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    padded = (vocab_size + 63) // 64 * 64
    return ModelConfig(**{**PRESETS[preset], "vocab_size": padded, **overrides})


#: Output layer (vocab x width) larger than this many times the transformer body: warn.
HEAD_DOMINATES_RATIO = 2.0


def warn_if_head_dominates(cfg: ModelConfig, tokenizer: str = "the tokenizer") -> float:
    """Warn when the tokenizer's vocabulary makes the output layer dwarf the transformer (cl100k's
    100k ids on ``tiny``: ~65x the body, and training ~17x slower than with a 7k BPE); returns
    the ratio head / body parameters."""
    head = cfg.vocab_size * cfg.n_embd
    body = cfg.num_params(embeddings=False)
    ratio = head / body
    if ratio > HEAD_DOMINATES_RATIO:
        warnings.warn(
            f"{tokenizer}: its {cfg.vocab_size:,}-id vocabulary makes the output layer {ratio:.0f}x "
            f"the transformer ({head:,} vs {body:,} parameters), so most compute goes to the "
            "softmax; for a model this small train a BPE with a small vocabulary "
            "(`tokenmill tokenizer train --vocab-size 8192`) or use a larger preset",
            TrainerWarning,
            stacklevel=2,
        )
    return ratio


class TrainConfig(StrictModel):
    """One training run (pretrain, SFT, RL or reward model); defaults suit the tiny preset."""

    steps: int = Field(200, description="optimizer steps in the whole run (sets the LR schedule)")
    stop_at: int | None = Field(
        None, description="stop (and checkpoint) after this step; resume later"
    )
    batch_size: int = Field(8, description="sequences per micro-batch")
    grad_accum: int = Field(1, description="micro-batches per optimizer step")
    lr: float = Field(3e-3, description="peak learning rate")
    min_lr_frac: float = Field(0.1, description="final LR as a fraction of the peak")
    warmup_steps: int = Field(10, description="linear warmup from 0 to the peak")
    decay: Literal["cosine", "linear"] = "cosine"
    weight_decay: float = Field(0.1, description="AdamW decay on matrices only (not norms/biases)")
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = Field(1.0, description="max global grad norm (0 = off)")
    eval_every: int = Field(
        50, description="validation loss / bits-per-byte every N steps (0 = end only)"
    )
    eval_batches: int = Field(8, description="validation micro-batches per evaluation")
    ckpt_every: int = Field(100, description="checkpoint every N steps (and always at the end)")
    seed: int = Field(1337, description="data order, init and sampling")
    device: str = Field("auto", description="auto = cuda if available else cpu")
    compile: bool = Field(True, description="torch.compile on CUDA (ignored on CPU)")
    progress: bool = Field(True, description="rich progress bar with tokens/s")


class RLConfig(StrictModel):
    """GRPO-style policy gradient on verifiable prompts."""

    k: int = Field(8, description="sampled answers per prompt")
    max_new_tokens: int = Field(64, description="answer length cap")
    temperature: float = Field(1.0, description="sampling temperature of the rollouts")
    top_k: int | None = Field(None, description="top-k of the rollouts (None = full distribution)")
    normalize_std: bool = Field(
        False, description="divide advantages by the group std (GRPO) as well"
    )


#: Per-mode defaults that differ from ``TrainConfig``'s (the CLI and the flows read these).
MODE_DEFAULTS: dict[str, dict] = {
    "pretrain": {},
    "sft": {"steps": 100, "lr": 1e-3, "warmup_steps": 5},
    "rl": {
        "steps": 50,
        "batch_size": 4,
        "lr": 1e-4,
        "warmup_steps": 0,
        "eval_every": 25,
        "ckpt_every": 50,
        "compile": False,
    },
    "reward": {"steps": 100, "lr": 1e-3, "warmup_steps": 5},
    "dpo": {"steps": 100, "lr": 1e-4, "warmup_steps": 5},
}


def train_config(mode: str, **overrides) -> TrainConfig:
    """``TrainConfig`` with ``mode``'s defaults, then ``overrides``."""
    if mode not in MODE_DEFAULTS:
        raise ValueError(f"unknown training mode {mode!r}; choose from {sorted(MODE_DEFAULTS)}")
    return TrainConfig(**{**MODE_DEFAULTS[mode], **overrides})


#: Settings that may change when a run resumes (they do not change what is computed).
RESUMABLE_CHANGES = frozenset(
    {"stop_at", "eval_every", "eval_batches", "ckpt_every", "device", "compile", "progress"}
)
