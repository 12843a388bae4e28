"""DPO: against a frozen reference, training lowers the DPO loss and raises the policy's
chosen-vs-rejected log-prob margin on held-out pairs (prompts never seen in training)."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import torch

from pipelines.io import atomic_write_parquet
from schemas.conversations import PREFERENCE_SCHEMA
from tests.test_trainer_data import tiny_checkpoint
from trainer.config import TrainConfig
from trainer.dpo import DPOBatches, dpo, sequence_logps
from trainer.inference import LocalModel

torch.set_num_threads(1)


def write_pairs(
    d,
    split,
    n,
    offset=0,
    prompt="Is {} a number?",
    chosen="Yes, {} is a number.",
    rejected="no no no no no",
):
    """``n`` preference pairs in ``d/split`` (``prompt``/``chosen`` with number ``i + offset``)."""
    rows = [
        {
            "id": f"{split}{i}",
            "prompt": prompt.format(i + offset),
            "chosen": chosen.format(i + offset),
            "rejected": rejected,
            "source": "test",
        }
        for i in range(n)
    ]
    atomic_write_parquet(
        d / split / "part-00000.parquet", pa.Table.from_pylist(rows, schema=PREFERENCE_SCHEMA)
    )
    return d


def test_dpo_lowers_loss_and_raises_margin_on_held_out_pairs(tmp_path):
    base = tiny_checkpoint(tmp_path / "base", steps=10)
    write_pairs(tmp_path / "pairs", "train", 24)
    write_pairs(tmp_path / "pairs", "val", 8, offset=500)
    cfg = TrainConfig(steps=25, batch_size=8, lr=2e-3, warmup_steps=2, eval_every=0, progress=False)
    out = dpo(base, tmp_path / "pairs", tmp_path / "dpo", cfg, beta=0.1)
    assert (
        abs(out["initial_val_dpo_loss"] - 0.6931) < 1e-3
    )  # policy == reference at the start: log 2
    assert out["val_dpo_loss"] < out["initial_val_dpo_loss"] - 0.1
    assert out["val_margin"] > out["initial_val_margin"] + 1.0
    assert out["val_reward_acc"] == 1.0
    # the result is a language model the rest of the project loads (chat, serve, sample)
    lm = LocalModel.from_checkpoint(tmp_path / "dpo")
    assert isinstance(lm.chat([{"role": "user", "content": "Is 3 a number?"}], max_tokens=4), str)
    assert json.loads((tmp_path / "dpo" / "config.json").read_text())["beta"] == 0.1


def test_logps_count_only_the_reply(tmp_path):
    from trainer.checkpoint import load_gpt

    base = tiny_checkpoint(tmp_path / "base", steps=2)
    model, state = load_gpt(base, "cpu")
    from trainer import checkpoint as ckpt

    tok = ckpt.tokenizer_from_ref(state["tokenizer"])
    rows = [
        {"prompt": "A long prompt " * 5, "chosen": "x", "rejected": "x"},
        {"prompt": "Short", "chosen": "x", "rejected": "x"},
    ]
    xc, yc, xr, yr = DPOBatches(rows, tok, 2, model.cfg.block_size, loop=False).next_batch()
    assert int((yc[0] != -100).sum()) == int(
        (yc[1] != -100).sum()
    )  # same reply, same supervised tokens
    with torch.no_grad():
        a, b = sequence_logps(model, xc, yc)
    assert torch.isfinite(a) and a != b  # the prompt conditions the reply's probability


def test_cli_train_dpo(tmp_path):
    base = tiny_checkpoint(tmp_path / "base", steps=2)
    write_pairs(tmp_path / "pairs", "train", 8)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "train",
            "dpo",
            "--init",
            str(base),
            "--data",
            str(tmp_path / "pairs"),
            "--out",
            str(tmp_path / "run"),
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--no-progress",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["step"] == 2 and "val_dpo_loss" in res
