"""The Prefect flows of the generators run locally (temporary API server; slow: ~10 s to start)."""

from __future__ import annotations

import pytest

from pipelines.synth.common import read_conversations


@pytest.mark.slow
def test_synth_flows_run_locally(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    from flows.synth import synth_mix_flow, synth_rl_flow, synth_sft_flow

    sft = synth_sft_flow(
        {
            "output": str(tmp_path / "sft"),
            "identity": 5,
            "arithmetic": 5,
            "counting": 5,
            "spelling": 5,
        }
    )
    rl = synth_rl_flow(
        {"output": str(tmp_path / "rl"), "word_problems": 20, "counting": 0, "equations": 20}
    )
    mix = synth_mix_flow(
        {
            "output": str(tmp_path / "mix"),
            "inputs": [{"path": str(tmp_path / "sft")}],
            "decontaminate": [str(tmp_path / "rl")],
        }
    )
    assert sft["conversations"] == 20 and rl["train"] + rl["test"] <= 40
    assert len(read_conversations(tmp_path / "mix")) == mix["conversations"]
