"""`tokenmill train pretrain|sft|rl|reward`, `tokenmill sample`, `tokenmill chat`, `tokenmill serve`.

Training commands call the trainer directly (``flows/train.py`` wraps the same functions as Prefect
flows for orchestration). torch is imported inside the command bodies so ``--help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli_app import app, train_app

Steps = Annotated[int, typer.Option(help="optimizer steps in the run (sets the LR schedule)")]
StopAt = Annotated[int | None, typer.Option(help="stop and checkpoint after this step (resume later)")]
Batch = Annotated[int, typer.Option(help="sequences (RL: prompts) per micro-batch")]
Accum = Annotated[int, typer.Option(help="micro-batches per optimizer step")]
LR = Annotated[float | None, typer.Option(help="peak learning rate (default depends on the mode)")]
Warmup = Annotated[int, typer.Option(help="linear warmup steps")]
EvalEvery = Annotated[int, typer.Option(help="validation every N steps (0 = at the end only)")]
EvalBatches = Annotated[int, typer.Option(help="validation micro-batches per evaluation")]
CkptEvery = Annotated[int, typer.Option(help="checkpoint every N steps (always at the end)")]
Seed = Annotated[int, typer.Option(help="seed of data order, init and sampling")]
Device = Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")]
Resume = Annotated[bool, typer.Option(help="continue from OUT/checkpoint.pt if it exists")]
Progress = Annotated[bool, typer.Option(help="show the progress bar")]
Compile = Annotated[bool, typer.Option(help="torch.compile on CUDA")]


def _cfg(lr_default: float, steps, stop_at, batch_size, grad_accum, lr, warmup_steps, eval_every,
         eval_batches, ckpt_every, seed, device, progress, compile):
    from trainer.config import TrainConfig

    return TrainConfig(steps=steps, stop_at=stop_at, batch_size=batch_size, grad_accum=grad_accum,
                       lr=lr if lr is not None else lr_default, warmup_steps=warmup_steps,
                       eval_every=eval_every, eval_batches=eval_batches, ckpt_every=ckpt_every,
                       seed=seed, device=device, progress=progress, compile=compile)


def _report(result: dict) -> None:
    typer.echo(json.dumps(result))


@train_app.command("pretrain")
def pretrain_cmd(
    data: Annotated[Path, typer.Option(help="token shards: DIR/train, DIR/val, DIR/manifest.json")],
    out: Annotated[Path, typer.Option(help="run directory")],
    config: Annotated[str, typer.Option(help="model preset: tiny | small | gpt2-124m")] = "tiny",
    tokenizer: Annotated[str | None, typer.Option(help="override the manifest's tokenizer")] = None,
    block_size: Annotated[int | None, typer.Option(help="override the preset's context length")] = None,
    steps: Steps = 200, stop_at: StopAt = None, batch_size: Batch = 8, grad_accum: Accum = 1, lr: LR = None,
    warmup_steps: Warmup = 10, eval_every: EvalEvery = 50, eval_batches: EvalBatches = 8,
    ckpt_every: CkptEvery = 100, seed: Seed = 1337, device: Device = "auto", resume: Resume = False,
    progress: Progress = True, compile: Compile = True,
) -> None:
    """Pretrain a GPT from scratch on token shards."""
    from trainer.pretrain import pretrain

    cfg = _cfg(3e-3, steps, stop_at, batch_size, grad_accum, lr, warmup_steps, eval_every, eval_batches,
               ckpt_every, seed, device, progress, compile)
    overrides = {"block_size": block_size} if block_size else {}
    _report(pretrain(data, out, cfg, preset=config, tokenizer=tokenizer, model_overrides=overrides, resume=resume))


@train_app.command("sft")
def sft_cmd(
    init: Annotated[Path, typer.Option(help="checkpoint (file or run dir) to start from")],
    data: Annotated[Path, typer.Option(help="conversations: DIR/train/*.parquet (+ DIR/val)")],
    out: Annotated[Path, typer.Option(help="run directory")],
    steps: Steps = 100, stop_at: StopAt = None, batch_size: Batch = 8, grad_accum: Accum = 1, lr: LR = None,
    warmup_steps: Warmup = 5, eval_every: EvalEvery = 50, eval_batches: EvalBatches = 8,
    ckpt_every: CkptEvery = 100, seed: Seed = 1337, device: Device = "auto", resume: Resume = False,
    progress: Progress = True, compile: Compile = True,
) -> None:
    """Supervised fine-tuning: loss on assistant tokens and tool calls only."""
    from trainer.sft import sft

    cfg = _cfg(1e-3, steps, stop_at, batch_size, grad_accum, lr, warmup_steps, eval_every, eval_batches,
               ckpt_every, seed, device, progress, compile)
    _report(sft(init, data, out, cfg, resume=resume))


@train_app.command("rl")
def rl_cmd(
    init: Annotated[Path, typer.Option(help="checkpoint (file or run dir) to start from")],
    data: Annotated[Path, typer.Option(help="RL prompts: DIR/train/*.parquet (+ DIR/val)")],
    out: Annotated[Path, typer.Option(help="run directory")],
    k: Annotated[int, typer.Option(help="sampled answers per prompt")] = 8,
    max_new_tokens: Annotated[int, typer.Option(help="answer length cap")] = 64,
    temperature: Annotated[float, typer.Option(help="rollout temperature")] = 1.0,
    reward_model: Annotated[Path | None, typer.Option(help="reward-model run: its score is the reward "
                                                      "(default: the verifier)")] = None,
    steps: Steps = 50, stop_at: StopAt = None, batch_size: Batch = 4, grad_accum: Accum = 1, lr: LR = None,
    warmup_steps: Warmup = 0, eval_every: EvalEvery = 25, eval_batches: EvalBatches = 8,
    ckpt_every: CkptEvery = 50, seed: Seed = 1337, device: Device = "auto", resume: Resume = False,
    progress: Progress = True, compile: Compile = False,
) -> None:
    """RL on verifiable prompts: k samples per prompt, reward = correct, advantage = reward - mean."""
    from trainer.config import RLConfig
    from trainer.rl import rl

    cfg = _cfg(1e-4, steps, stop_at, batch_size, grad_accum, lr, warmup_steps, eval_every, eval_batches,
               ckpt_every, seed, device, progress, compile)
    _report(rl(init, data, out, cfg, RLConfig(k=k, max_new_tokens=max_new_tokens, temperature=temperature),
               resume=resume, reward_model=reward_model))


@train_app.command("reward")
def reward_cmd(
    init: Annotated[Path, typer.Option(help="LM checkpoint (file or run dir) for the backbone")],
    data: Annotated[Path, typer.Option(help="preference pairs: DIR/train/*.parquet (+ DIR/val)")],
    out: Annotated[Path, typer.Option(help="run directory")],
    steps: Steps = 100, stop_at: StopAt = None, batch_size: Batch = 8, grad_accum: Accum = 1, lr: LR = None,
    warmup_steps: Warmup = 5, eval_every: EvalEvery = 50, eval_batches: EvalBatches = 8,
    ckpt_every: CkptEvery = 100, seed: Seed = 1337, device: Device = "auto", resume: Resume = False,
    progress: Progress = True, compile: Compile = True,
) -> None:
    """Bradley-Terry reward model on chosen/rejected pairs; reports pair accuracy."""
    from trainer.reward import train_reward

    cfg = _cfg(1e-3, steps, stop_at, batch_size, grad_accum, lr, warmup_steps, eval_every, eval_batches,
               ckpt_every, seed, device, progress, compile)
    _report(train_reward(init, data, out, cfg, resume=resume))


@train_app.command("dpo")
def dpo_cmd(
    init: Annotated[Path, typer.Option(help="SFT checkpoint (file or run dir): policy start and frozen reference")],
    data: Annotated[Path, typer.Option(help="preference pairs: DIR/train/*.parquet (+ DIR/val)")],
    out: Annotated[Path, typer.Option(help="run directory")],
    beta: Annotated[float, typer.Option(help="DPO temperature: how far the policy may move from the reference")] = 0.1,
    steps: Steps = 100, stop_at: StopAt = None, batch_size: Batch = 8, grad_accum: Accum = 1, lr: LR = None,
    warmup_steps: Warmup = 5, eval_every: EvalEvery = 50, eval_batches: EvalBatches = 8,
    ckpt_every: CkptEvery = 100, seed: Seed = 1337, device: Device = "auto", resume: Resume = False,
    progress: Progress = True, compile: Compile = True,
) -> None:
    """Direct Preference Optimization on chosen/rejected pairs against a frozen reference."""
    from trainer.dpo import dpo

    cfg = _cfg(1e-4, steps, stop_at, batch_size, grad_accum, lr, warmup_steps, eval_every, eval_batches,
               ckpt_every, seed, device, progress, compile)
    _report(dpo(init, data, out, cfg, beta=beta, resume=resume))


@app.command("sample")
def sample_cmd(
    ckpt: Annotated[Path, typer.Option(help="checkpoint file or run dir")],
    prompt: Annotated[str, typer.Option(help="text to continue")],
    max_tokens: Annotated[int, typer.Option(help="new tokens at most")] = 128,
    temperature: Annotated[float, typer.Option(help="0 = greedy (deterministic)")] = 0.0,
    top_k: Annotated[int | None, typer.Option(help="sample from the k most likely tokens")] = None,
    seed: Annotated[int | None, typer.Option(help="sampling seed")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    best_of: Annotated[int | None, typer.Option(help="chat reply: best of N samples by --reward-model")] = None,
    reward_model: Annotated[Path | None, typer.Option(help="reward-model run that scores --best-of samples")] = None,
) -> None:
    """Continue a text prompt with a trained model (or, with --best-of, answer it as a user message)."""
    from trainer.inference import LocalModel

    lm = LocalModel.from_checkpoint(ckpt, device=device)
    if best_of is not None or reward_model is not None:
        if best_of is None or reward_model is None:
            raise typer.BadParameter("--best-of N and --reward-model RUN go together")
        from trainer.best_of_n import best_of_n
        from trainer.reward import RewardScorer

        try:
            res = best_of_n(lm, RewardScorer(reward_model, device), prompt, best_of, max_tokens, temperature,
                            top_k, seed or 0)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
        typer.echo(json.dumps({k: res[k] for k in ("best_index", "scores", "reward_model")}), err=True)
        typer.echo(res["best"])
        return
    typer.echo(prompt + lm.complete(prompt, max_tokens=max_tokens, temperature=temperature, top_k=top_k, seed=seed))


@app.command("chat")
def chat_cmd(
    ckpt: Annotated[Path, typer.Option(help="checkpoint file or run dir")],
    search_index: Annotated[str | None, typer.Option(help="search index dir for the search tool")] = None,
    max_tokens: Annotated[int, typer.Option(help="new tokens per generation")] = 256,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = 0.0,
    top_k: Annotated[int | None, typer.Option(help="top-k sampling")] = None,
    seed: Annotated[int | None, typer.Option(help="sampling seed")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
) -> None:
    """Chat on stdin (/reset, /quit); python and search tool calls are executed."""
    from trainer.chat import default_tools, repl
    from trainer.inference import LocalModel

    lm = LocalModel.from_checkpoint(ckpt, device=device)
    repl(lm, default_tools(search_index), max_tokens=max_tokens, temperature=temperature, top_k=top_k, seed=seed)


@app.command("serve")
def serve_cmd(
    ckpt: Annotated[Path, typer.Option(help="checkpoint file or run dir")],
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
) -> None:
    """OpenAI-compatible HTTP server (/v1/chat/completions, /v1/completions, /v1/models)."""
    from trainer.serve import serve

    serve(str(ckpt), host=host, port=port, device=device)
