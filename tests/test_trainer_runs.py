"""Run-directory safety and the trainer's guard rails: an existing checkpoint is never silently
overwritten (refuse / --resume / --overwrite), a resume with other settings refuses, training
options come from the config model, and the warnings for slow or hopeless runs fire."""

from __future__ import annotations

import warnings

import pytest
import torch
from typer.testing import CliRunner

from flows.cli import app
from tests.test_trainer_data import corpus_texts, make_tokenizer, write_token_shards
from trainer import checkpoint as ckpt
from trainer.config import (
    MODE_DEFAULTS,
    TrainConfig,
    TrainerWarning,
    model_config,
    warn_if_head_dominates,
)


def _args(data, out, steps: int, *extra: str) -> list[str]:
    return [
        "train",
        "pretrain",
        "--data",
        str(data),
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--batch-size",
        "2",
        "--block-size",
        "16",
        "--eval-every",
        "0",
        "--no-progress",
        "--device",
        "cpu",
        *extra,
    ]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    return write_token_shards(d / "shards", make_tokenizer(d), corpus_texts(40))


def test_existing_checkpoint_needs_resume_or_overwrite(shards, tmp_path):
    torch.set_num_threads(1)
    runner, out = CliRunner(), tmp_path / "run"
    r = runner.invoke(app, _args(shards, out, 6, "--stop-at", "4"))
    assert r.exit_code == 0, r.output
    before = ckpt.resolve(out).read_bytes()
    assert ckpt.load(out)["step"] == 4

    # the bug: a second run without --resume started over and replaced the step-4 checkpoint
    r = runner.invoke(app, _args(shards, out, 6))
    assert r.exit_code == 1
    assert "already holds a checkpoint (step 4)" in r.output and "--resume" in r.output
    assert "Traceback" not in r.output
    assert ckpt.resolve(out).read_bytes() == before  # untouched

    # resuming with settings that change the computation refuses, naming the setting
    r = runner.invoke(app, _args(shards, out, 6, "--resume", "--lr", "0.01"))
    assert r.exit_code == 1 and "lr: 0.003 -> 0.01" in r.output
    assert ckpt.resolve(out).read_bytes() == before

    r = runner.invoke(app, _args(shards, out, 6, "--resume"))
    assert r.exit_code == 0, r.output
    assert ckpt.load(out)["step"] == 6

    r = runner.invoke(app, _args(shards, out, 2, "--overwrite"))
    assert r.exit_code == 0, r.output
    assert ckpt.load(out)["step"] == 2
    assert runner.invoke(app, _args(shards, out, 2, "--overwrite", "--resume")).exit_code == 1


def test_sft_into_a_pretrain_run_dir_refuses(shards, tmp_path):
    from trainer.pretrain import pretrain
    from trainer.sft import sft

    torch.set_num_threads(1)
    cfg = TrainConfig(steps=1, batch_size=2, eval_every=0, progress=False, device="cpu")
    pretrain(shards, tmp_path / "run", cfg, model_overrides={"block_size": 16})
    with pytest.raises(ckpt.RunDirExists):
        sft(tmp_path / "run", tmp_path / "nodata", tmp_path / "run", cfg)
    with pytest.raises(ValueError, match="holds a pretrain checkpoint"):
        from trainer.loop import check_resumable

        check_resumable(tmp_path / "run", ckpt.load(tmp_path / "run"), "sft", cfg)


def test_train_options_come_from_the_config_model():
    runner = CliRunner()
    for mode in MODE_DEFAULTS:
        out = runner.invoke(app, ["train", mode, "--help"], terminal_width=200).output
        for name in TrainConfig.model_fields:
            assert f"--{name.replace('_', '-')}" in out, (mode, name)
        assert "--overwrite" in out and "--resume" in out
    sft_help = runner.invoke(app, ["train", "sft", "--help"], terminal_width=200).output
    assert "[default: 100]" in sft_help  # the sft default, from MODE_DEFAULTS
    bad = runner.invoke(
        app, ["train", "sft", "--init", "x", "--data", "y", "--out", "z", "--decay", "cos"]
    )
    assert bad.exit_code == 1 and "--decay" in bad.output and "Traceback" not in bad.output


def test_training_configs_refuse_unknown_keys():
    from pydantic import ValidationError

    from trainer.config import RLConfig, train_config

    with pytest.raises(ValidationError, match="setps"):
        train_config("sft", setps=5)
    with pytest.raises(ValidationError, match="temprature"):
        RLConfig(temprature=0.5)


def test_warns_when_the_vocabulary_dwarfs_a_tiny_model():
    with pytest.warns(TrainerWarning, match="output layer 65x"):
        warn_if_head_dominates(model_config("tiny", 100277), "cl100k_base")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_head_dominates(model_config("tiny", 2048), "bpe.json")  # 2k BPE: fine
        warn_if_head_dominates(model_config("gpt2-124m", 100277), "cl100k_base")


def test_warns_when_every_reward_of_a_step_is_zero():
    from trainer.rl import warn_if_no_reward

    with pytest.warns(TrainerWarning, match="all 3 rewards of this step are zero"):
        assert warn_if_no_reward([[0.0, 0.0], [0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_no_reward([[0.0, 1.0], [0.0]])


def test_cpu_threads_never_exceed_the_available_cores():
    from trainer.threads import available_cores, limit_cpu_threads

    old = torch.get_num_threads()
    try:
        torch.set_num_threads(available_cores() + 8)
        assert limit_cpu_threads() == available_cores() == torch.get_num_threads()
        torch.set_num_threads(1)
        assert limit_cpu_threads() == 1  # a lower setting is kept
    finally:
        torch.set_num_threads(old)


def test_serving_does_not_import_the_training_loops():
    import subprocess
    import sys

    code = (
        "import sys, trainer.serve, trainer.chat; "
        "print(sorted(m for m in sys.modules if m in "
        "('trainer.loop', 'trainer.pretrain', 'trainer.sft', 'trainer.rl', 'trainer.reward', 'trainer.optim')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
