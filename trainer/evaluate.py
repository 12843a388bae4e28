"""Evaluation helpers shared by the training modes: validation loss and bits per byte.

Kept apart from the training loops so that anything that only scores a model (benchmarks, the
card, a future eval harness) does not import training code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pipelines.tokenizer import Tokenizer
from trainer.data import IGNORE
from trainer.loop import Env
from trainer.model import GPT


@torch.no_grad()
def evaluate_lm(
    model: GPT, batches, max_batches: int, byte_lengths: torch.Tensor, env: Env
) -> dict:
    """Mean loss over supervised targets, and bits per byte: total nats / (ln 2 * total bytes),
    counting only targets that are text (special tokens have 0 bytes and are left out), so runs
    with different tokenizers compare."""
    model.eval()
    nats = count = bpb_nats = nbytes = 0.0
    byte_lengths = byte_lengths.to(env.device)
    for i, (x, y) in enumerate(batches):
        if i >= max_batches:
            break
        x, y = x.to(env.device), y.to(env.device)
        with env.autocast():
            logits = model(x)
        loss = F.cross_entropy(
            logits.float().view(-1, logits.size(-1)),
            y.view(-1),
            ignore_index=IGNORE,
            reduction="none",
        )
        yf = y.view(-1)
        valid = yf != IGNORE
        b = torch.where(valid, byte_lengths[yf.clamp(min=0, max=len(byte_lengths) - 1)], 0)
        nats += loss[valid].sum().item()
        count += valid.sum().item()
        bpb_nats += loss[b > 0].sum().item()
        nbytes += b.sum().item()
    if count == 0:
        return {}
    out = {"val_loss": nats / count}
    if nbytes:
        out["val_bpb"] = bpb_nats / (torch.log(torch.tensor(2.0)).item() * nbytes)
    return out


def byte_lengths(tok: Tokenizer, vocab_size: int) -> torch.Tensor:
    """Per-id UTF-8 byte lengths padded to the model's vocab."""
    lens = torch.zeros(vocab_size, dtype=torch.long)
    b = torch.from_numpy(tok.token_byte_lengths()).long()
    lens[: len(b)] = b
    return lens
