"""Pretraining on token shards: next-token prediction over packed windows."""

from __future__ import annotations

from pathlib import Path

import torch

from trainer import checkpoint as ckpt
from trainer.config import ModelConfig, TrainConfig, model_config, warn_if_head_dominates
from trainer.data import PackedTokens, manifest_tokenizer, split_files
from trainer.evaluate import byte_lengths, evaluate_lm
from trainer.loop import fit, setup
from trainer.model import GPT

__all__ = ["byte_lengths", "evaluate_lm", "pretrain"]  # the helpers live in trainer.evaluate


def pretrain(
    data: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    preset: str = "tiny",
    tokenizer: str | None = None,
    model_overrides: dict | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> dict:
    """Train a GPT from scratch on ``data`` (a token-shard directory); see ``trainer.loop.fit``.
    An existing checkpoint in ``out`` needs ``resume`` or ``overwrite`` (never silently replaced)."""
    from pipelines.tokenizer import load_tokenizer

    ckpt.guard_run_dir(out, resume, overwrite)
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
        warn_if_head_dominates(mcfg, tok_name)
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

    return fit(
        run_dir=out,
        kind="pretrain",
        cfg=cfg,
        env=env,
        model=model,
        model_cfg=mcfg,
        data=loader,
        step_fn=step_fn,
        evaluate=evaluate,
        tokenizer=ckpt.tokenizer_ref(tok_name),
        resume=resume,
        overwrite=overwrite,
        extra={"data": str(data), "preset": preset},
    )
