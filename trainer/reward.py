"""Reward model: a GPT backbone + scalar head trained on preference pairs with the
Bradley-Terry loss -log sigmoid(r(chosen) - r(rejected)); reports pair accuracy."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from trainer import checkpoint as ckpt
from trainer.checkpoint import load_gpt
from trainer.config import TrainConfig
from trainer.data import PairBatches, read_rows
from trainer.loop import Env, fit, setup
from trainer.model import RewardModel

COLUMNS = ["prompt", "chosen", "rejected"]


def pair_scores(model: RewardModel, batch, device) -> tuple[torch.Tensor, torch.Tensor]:
    xc, lc, xr, lr = (t.to(device) for t in batch)
    return model(xc, lc), model(xr, lr)


@torch.no_grad()
def pair_accuracy(model: RewardModel, batches, env: Env) -> dict:
    model.eval()
    right = total = 0
    loss = 0.0
    for batch in batches:
        with env.autocast():
            rc, rr = pair_scores(model, batch, env.device)
        right += int((rc > rr).sum())
        total += len(rc)
        loss += float(-F.logsigmoid((rc - rr).float()).sum())
    return {"val_loss": loss / max(1, total), "val_pair_acc": right / max(1, total)}


def train_reward(
    init: str | Path,
    data: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
) -> dict:
    """Train a reward model initialised from the LM checkpoint ``init`` on pairs in ``data``
    (``DIR/train`` + optional ``DIR/val``; without a val split the train pairs are scored)."""
    env = setup(cfg.device)
    torch.manual_seed(cfg.seed)
    gpt, state = load_gpt(init, env.device)
    tok = ckpt.tokenizer_from_ref(state["tokenizer"])
    model = RewardModel(gpt.cfg).to(env.device)
    model.gpt.load_state_dict(gpt.state_dict())
    T = gpt.cfg.block_size
    rows = read_rows(data, "train", COLUMNS)
    val_rows = read_rows(data, "val", COLUMNS) or rows
    loader = PairBatches(rows, tok, cfg.batch_size, T, seed=cfg.seed)

    def step_fn(fwd, batch):
        rc, rr = pair_scores(fwd, batch, env.device)
        loss = -F.logsigmoid((rc - rr).float()).mean()
        return loss, {
            "tokens": int(batch[1].sum() + batch[3].sum()),
            "pair_acc": float((rc > rr).float().mean()),
        }

    def evaluate(m):
        return pair_accuracy(m, PairBatches(val_rows, tok, cfg.batch_size, T, loop=False), env)

    return fit(
        run_dir=out,
        kind="reward",
        cfg=cfg,
        env=env,
        model=model,
        model_cfg=gpt.cfg,
        data=loader,
        step_fn=step_fn,
        evaluate=evaluate,
        tokenizer=state["tokenizer"],
        resume=resume,
        overwrite=overwrite,
        extra={"init": str(init), "data": str(data)},
    )


def load_reward_model(path: str | Path, device: str = "cpu") -> tuple[RewardModel, object]:
    """A trained reward model and its tokenizer, for scoring replies."""
    from trainer.config import ModelConfig

    state = ckpt.load(path, map_location=device)
    if state["kind"] != "reward":
        raise ValueError(f"{path} is not a reward-model checkpoint")
    model = RewardModel(ModelConfig(**state["model_config"])).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), ckpt.tokenizer_from_ref(state["tokenizer"])


class RewardScorer:
    """A trained reward model as a function: (prompt, replies) -> one score per reply.

    Replies are rendered exactly as in reward training (``trainer.data.render_reply``) with the
    reward model's own tokenizer, so any policy can be scored by it (best-of-n, RL rewards)."""

    def __init__(self, path: str | Path, device: str = "cpu", batch_size: int = 16):
        self.path = str(path)
        self.model, self.tok = load_reward_model(path, device)
        self.device, self.batch_size = device, batch_size

    @torch.no_grad()
    def score(self, prompt: str, replies: list[str]) -> list[float]:
        from trainer.data import render_reply

        T = self.model.gpt.cfg.block_size
        out: list[float] = []
        for i in range(0, len(replies), self.batch_size):
            seqs = [render_reply(self.tok, prompt, r, T) for r in replies[i : i + self.batch_size]]
            L = max(len(s) for s in seqs)
            x = torch.full((len(seqs), L), self.tok.eot_id, dtype=torch.long)
            for j, s in enumerate(seqs):
                x[j, : len(s)] = torch.tensor(s, dtype=torch.long)
            lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
            out.extend(self.model(x.to(self.device), lengths.to(self.device)).float().tolist())
        return out
