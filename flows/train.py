"""Prefect flows over the trainer entry points (thin: the training logic lives in ``trainer/``).

``post_train`` chains pretrain -> SFT -> (optional) RL, passing each run's checkpoint on.
"""

from __future__ import annotations

from prefect import flow


@flow(name="train-pretrain", log_prints=True)
def pretrain_flow(
    data: str,
    out: str,
    config: dict | None = None,
    preset: str = "tiny",
    tokenizer: str | None = None,
    resume: bool = False,
) -> dict:
    from trainer.config import train_config
    from trainer.pretrain import pretrain

    return pretrain(
        data,
        out,
        train_config("pretrain", **(config or {})),
        preset=preset,
        tokenizer=tokenizer,
        resume=resume,
    )


@flow(name="train-sft", log_prints=True)
def sft_flow(
    init: str, data: str, out: str, config: dict | None = None, resume: bool = False
) -> dict:
    from trainer.config import train_config
    from trainer.sft import sft

    return sft(init, data, out, train_config("sft", **(config or {})), resume=resume)


@flow(name="train-rl", log_prints=True)
def rl_flow(
    init: str,
    data: str,
    out: str,
    config: dict | None = None,
    rl_config: dict | None = None,
    resume: bool = False,
) -> dict:
    from trainer.config import RLConfig, train_config
    from trainer.rl import rl

    cfg = train_config("rl", **(config or {}))
    return rl(init, data, out, cfg, RLConfig(**(rl_config or {})), resume=resume)


@flow(name="post-train", log_prints=True)
def post_train(
    shards: str,
    conversations: str,
    out: str,
    rl_prompts: str | None = None,
    preset: str = "tiny",
    pretrain_config: dict | None = None,
    sft_config: dict | None = None,
    rl_config: dict | None = None,
) -> dict:
    """pretrain -> SFT -> RL; each stage writes ``OUT/<stage>/`` with its checkpoint."""
    results = {"pretrain": pretrain_flow(shards, f"{out}/pretrain", pretrain_config, preset)}
    results["sft"] = sft_flow(f"{out}/pretrain", conversations, f"{out}/sft", sft_config)
    if rl_prompts:
        results["rl"] = rl_flow(f"{out}/sft", rl_prompts, f"{out}/rl", rl_config)
    return results
