"""Direct Preference Optimization (Rafailov et al., 2023) on chosen/rejected pairs.

The policy starts from an SFT checkpoint; a frozen copy of it is the reference. For a pair, each
response's log-probability is the sum of log p over its assistant tokens (rendered exactly like
SFT data: ``pipelines.chat.render_conversation``'s loss mask, ``<|im_end|>`` included), and

    loss = -log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r))))

so the policy raises the chosen response's likelihood relative to the rejected one, measured
against where it started: no reward model and no sampling. Evaluation on held-out pairs reports
the DPO loss, the implicit reward accuracy and the policy's chosen-minus-rejected log-prob margin.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F

from pipelines.chat import render_conversation
from trainer import checkpoint as ckpt
from trainer.checkpoint import load_gpt
from trainer.config import TrainConfig
from trainer.data import IGNORE, ShuffledRows, pad_supervised, read_rows
from trainer.loop import Env, fit, setup

COLUMNS = ["prompt", "chosen", "rejected"]


def render_pair_side(tok, prompt: str, reply: str, max_tokens: int) -> tuple[list[int], list[int]]:
    """(ids, loss mask) of one (prompt, reply) exchange; an overlong one keeps its end (the reply)."""
    r = render_conversation(
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}], tok
    )
    return r.input_ids[-max_tokens:], r.loss_mask[-max_tokens:]


class DPOBatches(ShuffledRows):
    """Pairs -> (chosen inputs, chosen targets, rejected inputs, rejected targets)."""

    def __init__(
        self,
        rows: list[dict],
        tok,
        batch_size: int,
        block_size: int,
        seed: int = 0,
        loop: bool = True,
    ):
        super().__init__(rows, batch_size, seed, loop)
        self.tok, self.T = tok, block_size

    def next_batch(self):
        rows = self.next_rows()
        sides = []
        for key in ("chosen", "rejected"):
            seqs = [render_pair_side(self.tok, r["prompt"], r[key], self.T + 1) for r in rows]
            sides.extend(pad_supervised(seqs, self.tok.eot_id))
        return tuple(sides)


def sequence_logps(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum of log p(target) over supervised positions, per sequence."""
    logits = model(x)
    logp = -F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)),
        y.reshape(-1),
        ignore_index=IGNORE,
        reduction="none",
    ).view(y.shape)
    return (logp * (y != IGNORE)).sum(-1)


def dpo_terms(policy, reference, batch, device, beta: float) -> dict:
    xc, yc, xr, yr = (t.to(device) for t in batch)
    pc, pr = sequence_logps(policy, xc, yc), sequence_logps(policy, xr, yr)
    with torch.no_grad():
        rc, rr = sequence_logps(reference, xc, yc), sequence_logps(reference, xr, yr)
    logits = beta * ((pc - rc) - (pr - rr))
    return {
        "loss": -F.logsigmoid(logits).mean(),
        "reward_acc": (logits > 0).float().mean(),
        "margin": (pc - pr).mean(),
        "tokens": int((yc != IGNORE).sum() + (yr != IGNORE).sum()),
    }


@torch.no_grad()
def evaluate_pairs(policy, reference, batches, env: Env, beta: float) -> dict:
    """DPO loss, implicit-reward accuracy and policy log-prob margin over all ``batches``."""
    policy.eval()
    n = loss = acc = margin = 0.0
    for batch in batches:
        with env.autocast():
            t = dpo_terms(policy, reference, batch, env.device, beta)
        b = len(batch[0])
        n += b
        loss += float(t["loss"]) * b
        acc += float(t["reward_acc"]) * b
        margin += float(t["margin"]) * b
    return {
        "val_dpo_loss": loss / max(1, n),
        "val_reward_acc": acc / max(1, n),
        "val_margin": margin / max(1, n),
    }


def dpo(
    init: str | Path,
    data: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    beta: float = 0.1,
    resume: bool = False,
    overwrite: bool = False,
) -> dict:
    """DPO-train the model of checkpoint ``init`` (the reference is a frozen copy of it) on the
    pairs in ``data`` (``DIR/train`` + optional ``DIR/val``; without val the train pairs are scored)."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, not {beta}")
    env = setup(cfg.device)
    torch.manual_seed(cfg.seed)
    model, state = load_gpt(init, env.device)
    reference = copy.deepcopy(model).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    tok = ckpt.tokenizer_from_ref(state["tokenizer"])
    rows = read_rows(data, "train", COLUMNS)
    if not rows:
        raise ValueError(
            f"{data}: no preference pairs (expected DIR/train/*.parquet with {COLUMNS})"
        )
    val_rows = read_rows(data, "val", COLUMNS) or rows
    T = model.cfg.block_size
    loader = DPOBatches(rows, tok, cfg.batch_size, T, seed=cfg.seed)
    before = evaluate_pairs(
        model, reference, DPOBatches(val_rows, tok, cfg.batch_size, T, loop=False), env, beta
    )

    def step_fn(fwd, batch):
        t = dpo_terms(fwd, reference, batch, env.device, beta)
        return t["loss"], {
            "tokens": t["tokens"],
            "reward_acc": float(t["reward_acc"].detach()),
            "margin": float(t["margin"].detach()),
        }

    def evaluate(m):
        return evaluate_pairs(
            m, reference, DPOBatches(val_rows, tok, cfg.batch_size, T, loop=False), env, beta
        )

    result = fit(
        run_dir=out,
        kind="dpo",
        cfg=cfg,
        env=env,
        model=model,
        model_cfg=model.cfg,
        data=loader,
        step_fn=step_fn,
        evaluate=evaluate,
        tokenizer=state["tokenizer"],
        resume=resume,
        overwrite=overwrite,
        extra={"init": str(init), "data": str(data), "beta": beta},
    )
    return {**result, **{f"initial_{k}": v for k, v in before.items()}}
