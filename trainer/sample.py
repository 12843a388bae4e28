"""Autoregressive sampling with a KV cache: greedy (temperature 0), temperature, top-k, top-p.

``generate`` samples ``n`` continuations of ONE prompt in lockstep (RL rollouts); serving,
``sample`` and ``chat`` go through the continuous-batching engine (``trainer.batching``), which
uses the same ``filter_logits``."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from trainer.model import GPT, KVCache


def filter_logits(
    logits: torch.Tensor, temperature: float, top_k: int | None = None, top_p: float = 1.0
) -> torch.Tensor:
    """Logits (B, V) scaled by ``1/temperature`` (> 0) with everything outside the ``top_k`` most
    likely ids and outside the smallest set of probability >= ``top_p`` (nucleus) set to -inf;
    the most likely id always survives."""
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        drop = probs.cumsum(-1) - probs >= top_p  # mass before this id already reaches top_p
        drop[:, 0] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def pick(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None,
    generator: torch.Generator | None,
    top_p: float = 1.0,
) -> torch.Tensor:
    """Next ids (B,) from last-position logits (B, V)."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(filter_logits(logits, temperature, top_k, top_p), dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def allowed_ids(tok, vocab_size: int) -> torch.Tensor:
    """True for the ids a model may emit: real tokens (non-empty bytes) and the special tokens."""
    lengths = tok.token_byte_lengths()
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    mask[: len(lengths)] = torch.from_numpy(lengths > 0)
    mask[list(tok.special_ids.values())] = True
    return mask


@torch.no_grad()
def generate(
    model: GPT,
    prompt_ids: list[int],
    n: int = 1,
    max_tokens: int = 64,
    temperature: float = 0.0,
    top_k: int | None = None,
    stop_ids: Iterable[int] = (),
    generator: torch.Generator | None = None,
    allowed: torch.Tensor | None = None,
) -> list[list[int]]:
    """``n`` continuations of one prompt. Each stops after its first stop id (which it includes)
    or after ``max_tokens``. ``allowed`` (bool per id, see ``allowed_ids``) masks ids that cannot
    be decoded: embedding padding and holes in the tokenizer's id space.

    The prompt keeps its last ``block_size - 1`` tokens; when the context fills up, the cache is
    rebuilt from the last half window (learned positions cannot go past ``block_size``).
    """
    was_training = model.training
    model.eval()
    cfg = model.cfg
    device = model.wte.weight.device
    stops = set(stop_ids)
    prompt = list(prompt_ids)[-(cfg.block_size - 1) :] or [0]
    seqs = torch.tensor([prompt] * n, dtype=torch.long, device=device)
    cache = KVCache(cfg, n, device, model.wte.weight.dtype)
    logits = model(seqs, cache=cache)[:, -1]
    out: list[list[int]] = [[] for _ in range(n)]
    done = [False] * n
    for i in range(max_tokens):
        if allowed is not None:
            logits = logits.masked_fill(~allowed, float("-inf"))
        nxt = pick(logits, temperature, top_k, generator)
        for j, t in enumerate(nxt.tolist()):
            if not done[j]:
                out[j].append(t)
                done[j] = t in stops
        if all(done) or i == max_tokens - 1:
            break
        seqs = torch.cat([seqs, nxt[:, None]], dim=1)
        if cache.pos >= cfg.block_size:
            cache = KVCache(cfg, n, device, model.wte.weight.dtype)
            logits = model(seqs[:, -(cfg.block_size // 2) :], cache=cache)[:, -1]
        else:
            logits = model(nxt[:, None], cache=cache)[:, -1]
    model.train(was_training)
    return out
