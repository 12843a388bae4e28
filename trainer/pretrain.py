"""Pretraining on token shards: next-token prediction over packed windows."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from pipelines.tokenizer import Tokenizer
from trainer import checkpoint as ckpt
from trainer.config import ModelConfig, TrainConfig, model_config
from trainer.data import IGNORE, PackedTokens, manifest_tokenizer, split_files
from trainer.loop import Env, fit, setup
from trainer.model import GPT


@torch.no_grad()
def evaluate_lm(model: GPT, batches, max_batches: int, byte_lengths: torch.Tensor, env: Env) -> dict:
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
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1),
                               ignore_index=IGNORE, reduction="none")
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
    lens[:len(b)] = b
    return lens


def pretrain(data: str | Path, out: str | Path, cfg: TrainConfig, preset: str = "tiny",
             tokenizer: str | None = None, model_overrides: dict | None = None,
             resume: bool = False) -> dict:
    """Train a GPT from scratch on ``data`` (a token-shard directory); see ``trainer.loop.fit``."""
    from pipelines.tokenizer import load_tokenizer

    tok_name = tokenizer or manifest_tokenizer(data)
    if not tok_name:
        raise ValueError(f"{data}/manifest.json names no tokenizer: pass --tokenizer")
    tok = load_tokenizer(tok_name)
    env = setup(cfg.device)
    torch.manual_seed(cfg.seed)
    if resume and ckpt.exists(out):
        mcfg = ModelConfig(**ckpt.load(out)["model_config"])
    else:
        mcfg = model_config(preset, tok.vocab_size, **(model_overrides or {}))
    model = GPT(mcfg).to(env.device)
    T = mcfg.block_size
    train_files = split_files(data, "train")
    val_files = split_files(data, "val") or train_files  # no val split: report train-set loss
    loader = PackedTokens(train_files, cfg.batch_size, T, tok.eot_id, seed=cfg.seed)
    lens = byte_lengths(tok, mcfg.vocab_size)

    def step_fn(fwd, batch):
        x, y = (t.to(env.device, non_blocking=True) for t in batch)
        _, loss = fwd(x, y)
        return loss, {"tokens": x.numel()}

    def evaluate(m):
        val = PackedTokens(val_files, cfg.batch_size, T, tok.eot_id, loop=False, shuffle=False)
        return evaluate_lm(m, val, cfg.eval_batches, lens, env)

    return fit(run_dir=out, kind="pretrain", cfg=cfg, env=env, model=model, model_cfg=mcfg, data=loader,
               step_fn=step_fn, evaluate=evaluate, tokenizer=ckpt.tokenizer_ref(tok_name), resume=resume,
               extra={"data": str(data), "preset": preset})
