"""Checkpoints resume bit-exactly: N steps straight == N/2 steps, save, a fresh process, N/2 more
(model, optimizer moments and logged losses, tensor for tensor)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from tests.test_trainer_data import corpus_texts, make_tokenizer, write_token_shards
from trainer import checkpoint as ckpt

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


ARGS = dict(
    steps=12,
    batch_size=4,
    warmup_steps=3,
    eval_every=4,
    ckpt_every=100,
    progress=False,
    device="cpu",
)


def _train_here(data, out, **kw):
    from trainer.config import TrainConfig
    from trainer.pretrain import pretrain

    torch.set_num_threads(1)
    pretrain(data, out, TrainConfig(**{**ARGS, **kw}), model_overrides={"block_size": 32})


def _train(data, out, *extra):
    """The same run through the CLI, in a fresh process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO}
    cmd = [
        sys.executable,
        "-m",
        "flows.cli",
        "train",
        "pretrain",
        "--data",
        str(data),
        "--out",
        str(out),
        "--steps",
        "12",
        "--batch-size",
        "4",
        "--block-size",
        "32",
        "--warmup-steps",
        "3",
        "--eval-every",
        "4",
        "--ckpt-every",
        "100",
        "--no-progress",
        "--device",
        "cpu",
        *extra,
    ]
    subprocess.run(cmd, check=True, env=env, cwd=REPO, capture_output=True, timeout=300)


def _losses(run):
    return [
        (r["step"], r["loss"])
        for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
        if "loss" in r
    ]


def test_resume_in_a_fresh_process_is_bit_exact(tmp_path):
    tok = make_tokenizer(tmp_path)
    data = write_token_shards(tmp_path / "shards", tok, corpus_texts(), shards=2)
    _train_here(data, tmp_path / "straight")
    _train_here(data, tmp_path / "split", stop_at=6)
    half = ckpt.load(tmp_path / "split")
    assert half["step"] == 6
    _train(data, tmp_path / "split", "--resume")

    a, b = ckpt.load(tmp_path / "straight"), ckpt.load(tmp_path / "split")
    assert a["step"] == b["step"] == 12
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(
        a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True
    ):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(
            sa["exp_avg_sq"], sb["exp_avg_sq"]
        )
    assert a["data"] == b["data"]
    assert _losses(tmp_path / "straight") == _losses(tmp_path / "split")
    # and training did move the weights: the comparison is not between two untouched inits
    assert not torch.equal(half["model"]["wte.weight"], a["model"]["wte.weight"])
    assert (tmp_path / "split" / "loss.png").stat().st_size > 0
