"""Supervised fine-tuning on conversations: loss on assistant tokens (and tool calls) only."""

from __future__ import annotations

from pathlib import Path

import torch

from trainer import checkpoint as ckpt
from trainer.checkpoint import load_gpt
from trainer.config import TrainConfig
from trainer.data import ConversationBatches, drop_overlong, read_rows
from trainer.evaluate import byte_lengths, evaluate_lm
from trainer.loop import fit, setup

__all__ = [
    "load_gpt",
    "sft",
]  # load_gpt: re-exported for old imports (it lives in trainer.checkpoint)


def sft(
    init: str | Path,
    data: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
) -> dict:
    """Fine-tune the model of checkpoint ``init`` on the conversations in ``data``
    (``DIR/train/*.parquet`` + optional ``DIR/val``; without a val split the train set is scored)."""
    ckpt.guard_run_dir(out, resume, overwrite)
    env = setup(cfg.device)
    torch.manual_seed(cfg.seed)
    model, state = load_gpt(init, env.device)
    tok = ckpt.tokenizer_from_ref(state["tokenizer"])
    mcfg = model.cfg
    rows, too_long = drop_overlong(read_rows(data, "train", ["messages"]), tok, mcfg.block_size + 1)
    val_rows, val_too_long = drop_overlong(
        read_rows(data, "val", ["messages"]), tok, mcfg.block_size + 1
    )
    val_rows = val_rows or rows
    if too_long or val_too_long:
        from rich.console import Console

        Console(stderr=True).print(
            f"[yellow]sft: {too_long} train / {val_too_long} val conversations are longer than the "
            f"model's context ({mcfg.block_size} tokens) and were left out (not truncated)[/yellow]"
        )
    if not rows:
        raise ValueError(
            f"{data}: no conversation fits the model's context of {mcfg.block_size} tokens"
        )
    pad = env.cuda and cfg.compile  # fixed shapes for torch.compile
    loader = ConversationBatches(
        rows, tok, cfg.batch_size, mcfg.block_size, seed=cfg.seed, pad_to_block=pad
    )
    lens = byte_lengths(tok, mcfg.vocab_size)

    def step_fn(fwd, batch):
        x, y = (t.to(env.device, non_blocking=True) for t in batch)
        _, loss = fwd(x, y)
        return loss, {"tokens": int((y != -100).sum())}

    def evaluate(m):
        val = ConversationBatches(val_rows, tok, cfg.batch_size, mcfg.block_size, loop=False)
        return evaluate_lm(m, val, cfg.eval_batches, lens, env)

    return fit(
        run_dir=out,
        kind="sft",
        cfg=cfg,
        env=env,
        model=model,
        model_cfg=mcfg,
        data=loader,
        step_fn=step_fn,
        evaluate=evaluate,
        tokenizer=state["tokenizer"],
        resume=resume,
        overwrite=overwrite,
        extra={
            "init": str(init),
            "data": str(data),
            "conversations": len(rows),
            "dropped_too_long": too_long,
            "val_dropped_too_long": val_too_long,
        },
    )
