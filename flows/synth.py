"""Prefect flows of the post-training generators (thin: the logic lives in ``pipelines/synth``).

Each flow takes the generator's config as a dict (the pydantic model validates it) and returns
the generator's stats, so a deployment can pass parameters as JSON.
"""

from __future__ import annotations

from prefect import flow

from pipelines.synth.mix import MixConfig, run_mix
from pipelines.synth.refusal import RefusalConfig, run_refusal
from pipelines.synth.rl import PrefsConfig, RLConfig, run_prefs, run_rl
from pipelines.synth.samples import SamplesConfig, run_samples
from pipelines.synth.sft import SFTConfig, run_sft
from pipelines.synth.tooluse import ToolUseConfig, run_tooluse


@flow(name="synth-sft")
def synth_sft_flow(config: dict) -> dict:
    return run_sft(SFTConfig(**config))


@flow(name="synth-refusal")
def synth_refusal_flow(config: dict) -> dict:
    return run_refusal(RefusalConfig(**config))


@flow(name="synth-tooluse")
def synth_tooluse_flow(config: dict) -> dict:
    return run_tooluse(ToolUseConfig(**config))


@flow(name="synth-rl")
def synth_rl_flow(config: dict) -> dict:
    return run_rl(RLConfig(**config))


@flow(name="synth-prefs")
def synth_prefs_flow(config: dict) -> dict:
    return run_prefs(PrefsConfig(**config))


@flow(name="synth-mix")
def synth_mix_flow(config: dict) -> dict:
    return run_mix(MixConfig(**config))


@flow(name="synth-samples")
def synth_samples_flow(config: dict) -> dict:
    return run_samples(SamplesConfig(**config))


FLOWS = {
    "sft": synth_sft_flow,
    "refusal": synth_refusal_flow,
    "tooluse": synth_tooluse_flow,
    "rl": synth_rl_flow,
    "prefs": synth_prefs_flow,
    "mix": synth_mix_flow,
    "samples": synth_samples_flow,
}
