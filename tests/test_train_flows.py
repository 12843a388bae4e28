"""The Prefect flows of ``flows/train.py`` run for real on tiny data.

No server is set up: the flows run in a fresh Python process (own temporary PREFECT_HOME, no
PREFECT_API_URL), where Prefect runs in its own local mode and starts its temporary
local API server. ``train-pretrain`` trains a tiny GPT for a few steps on token shards written
with ``TOKEN_SHARD_SCHEMA`` (trained BPE); ``train-sft`` fine-tunes that checkpoint on two
conversations; ``post-train`` (slow) chains both as subflows. Each flow run must end COMPLETED in
Prefect's database with a checkpoint, metrics and a finite loss.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_trainer_data import (
    TOOL_CONV,
    corpus_texts,
    make_tokenizer,
    write_conversations,
    write_token_shards,
)

SCRIPT = r"""
import json, sys
import torch
torch.set_num_threads(1)
from flows import train
from prefect.client.orchestration import get_client

args = json.loads(sys.argv[1])
cfg = {"steps": 3, "batch_size": 2, "eval_every": 0, "eval_batches": 1, "warmup_steps": 1, "progress": False}
states = {}
if args["which"] == "stages":
    states["pretrain"] = train.pretrain_flow(args["shards"], args["out"] + "/pretrain", cfg, return_state=True)
    states["sft"] = train.sft_flow(args["out"] + "/pretrain", args["convs"], args["out"] + "/sft", cfg,
                                   return_state=True)
else:
    states["post"] = train.post_train(args["shards"], args["convs"], args["out"], pretrain_config=cfg,
                                      sft_config=cfg, return_state=True)
report = {}
with get_client(sync_client=True) as client:
    for name, state in states.items():
        run = client.read_flow_run(state.state_details.flow_run_id)
        subflows = [(client.read_flow(r.flow_id).name, r.state.type.value) for r in client.read_flow_runs()
                    if r.parent_task_run_id is not None]
        report[name] = {"state": state.type.value, "server_state": run.state.type.value,
                        "flow": client.read_flow(run.flow_id).name, "result": state.result(),
                        "subflows": sorted(subflows)}
print("REPORT " + json.dumps(report))
"""


def _data(tmp_path: Path) -> tuple[Path, Path]:
    """Token shards (TOKEN_SHARD_SCHEMA, trained BPE) and two SFT conversations."""
    tok = make_tokenizer(tmp_path)
    shards = write_token_shards(tmp_path / "shards", tok, corpus_texts(120), shards=2, val=10)
    convs = write_conversations(
        tmp_path / "convs",
        [
            TOOL_CONV,
            [{"role": "user", "content": "What is 2+3?"}, {"role": "assistant", "content": "5"}],
        ],
    )
    return shards, convs


def _run_flows(tmp_path: Path, which: str, shards: Path, convs: Path, out: Path) -> dict:
    """Run the flows in a fresh process with no Prefect settings but PREFECT_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    home = tmp_path / "home" / "prefect"  # Prefect's local mode keeps its DB here
    home.mkdir(parents=True)  # Prefect creates only the last level of PREFECT_HOME
    env["PREFECT_HOME"] = str(home)
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = (
        "180"  # a loaded 2-core machine is slow
    )
    args = json.dumps({"which": which, "shards": str(shards), "convs": str(convs), "out": str(out)})
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT "))
    # Prefect's own local mode: its database lives in PREFECT_HOME, not in ~/.prefect
    assert list((tmp_path / "home" / "prefect").glob("*.db"))
    return json.loads(line.removeprefix("REPORT "))


def _records(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]


def _check_run(run: Path, kind: str, result: dict) -> dict:
    """checkpoint.pt at step 3, metrics for steps 1-3 with finite losses, config.json; returns it."""
    assert (run / "checkpoint.pt").is_file()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["kind"] == kind and cfg["train"]["steps"] == 3
    steps = [r for r in _records(run) if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in steps)
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["kind"] == kind and state["step"] == 3
    # the flow returns the trainer's final evaluation: a finite validation loss at the last step
    assert result["step"] == 3 and math.isfinite(result["val_loss"]) and result["val_loss"] > 0
    return cfg


def test_pretrain_and_sft_flows_run_locally_and_complete(tmp_path: Path) -> None:
    shards, convs = _data(tmp_path)
    out = tmp_path / "model"
    report = _run_flows(tmp_path, "stages", shards, convs, out)

    assert {k: (v["flow"], v["state"], v["server_state"]) for k, v in report.items()} == {
        "pretrain": ("train-pretrain", "COMPLETED", "COMPLETED"),
        "sft": ("train-sft", "COMPLETED", "COMPLETED"),
    }
    pre = _check_run(out / "pretrain", "pretrain", report["pretrain"]["result"])
    assert pre["data"] == str(shards) and pre["tokenizer"] == str(tmp_path / "tok.json")
    sft = _check_run(out / "sft", "sft", report["sft"]["result"])
    assert sft["conversations"] == 2 and sft["dropped_too_long"] == 0
    assert sft["init"] == str(out / "pretrain")
    assert sft["train"]["lr"] == 1e-3  # the flow's SFT default when the config names no lr


@pytest.mark.slow
def test_post_train_flow_chains_pretrain_and_sft_subflows(tmp_path: Path) -> None:
    shards, convs = _data(tmp_path)
    out = tmp_path / "model"
    report = _run_flows(tmp_path, "post", shards, convs, out)["post"]

    assert (report["flow"], report["state"], report["server_state"]) == (
        "post-train",
        "COMPLETED",
        "COMPLETED",
    )
    assert report["subflows"] == [["train-pretrain", "COMPLETED"], ["train-sft", "COMPLETED"]]
    assert set(report["result"]) == {"pretrain", "sft"}  # no rl_prompts: no RL stage
    _check_run(out / "pretrain", "pretrain", report["result"]["pretrain"])
    sft = _check_run(out / "sft", "sft", report["result"]["sft"])
    assert sft["init"] == str(out / "pretrain")  # SFT started from the pretrain checkpoint
