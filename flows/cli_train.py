"""`tokenmill train pretrain|sft|rl|reward`, `tokenmill sample`, `tokenmill chat`, `tokenmill serve`.

Training commands call the trainer directly (``flows/train.py`` wraps the same functions as Prefect
flows for orchestration). torch is imported inside the command bodies so ``--help`` stays fast.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, get_args, get_origin

import typer

from flows.cli_app import app, train_app
from pipelines.sandbox import WEAK_FLAG_HELP


def _train_parameters(mode: str) -> list[inspect.Parameter]:
    """One ``--option`` per ``TrainConfig`` field: its help is the field's description, its
    default the field's (or ``mode``'s, from ``MODE_DEFAULTS``). The config model is the one list
    of training options; a new field becomes an option of every ``train`` command."""
    from trainer.config import MODE_DEFAULTS, TrainConfig

    params = []
    for name, field in TrainConfig.model_fields.items():
        ann = field.annotation
        help_ = field.description or name.replace("_", " ")
        if get_origin(ann) is Literal:  # typer has no Literal type: a str checked by the model
            help_ += f" ({' | '.join(map(str, get_args(ann)))})"
            ann = str
        default = MODE_DEFAULTS[mode].get(name, field.default)
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=Annotated[ann, typer.Option(help=help_)],
            )
        )
    return params


_RUN_FLAGS = [
    inspect.Parameter(
        "resume",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[bool, typer.Option(help="continue OUT/checkpoint.pt (same settings)")],
    ),
    inspect.Parameter(
        "overwrite",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[bool, typer.Option(help="delete OUT's checkpoint and start over")],
    ),
]


def train_command(mode: str) -> Callable[[Callable[..., dict]], Callable[..., None]]:
    """Register ``tokenmill train MODE``: ``fn(cfg, *, resume, overwrite, **own_options)`` gets a
    ``TrainConfig`` built from the generated options; its own options come from its signature.
    A user error (an existing run dir, a bad value) prints one line and exits 1."""

    def register(fn: Callable[..., dict]) -> Callable[..., None]:
        own = [
            p
            for p in inspect.signature(fn, eval_str=True).parameters.values()
            if p.name not in ("cfg", "resume", "overwrite")
        ]
        cfg_params = _train_parameters(mode)
        names = [p.name for p in cfg_params]

        def command(**kw) -> None:
            from pydantic import ValidationError

            from trainer.config import train_config

            try:
                cfg = train_config(mode, **{k: kw.pop(k) for k in names})
                result = fn(cfg, **kw)
            except (ValueError, FileNotFoundError) as e:
                if isinstance(e, ValidationError):
                    e = ValueError(
                        "; ".join(
                            f"--{'-'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()
                        )
                    )
                typer.echo(f"error: {e}", err=True)
                raise typer.Exit(1) from None
            typer.echo(json.dumps(result))

        params = (
            [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + cfg_params + _RUN_FLAGS
        )
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__name__, command.__doc__ = f"{mode}_cmd", fn.__doc__
        train_app.command(mode)(command)
        return command

    return register


Init = Annotated[Path, typer.Option(help="checkpoint (file or run dir) to start from")]
Out = Annotated[Path, typer.Option(help="run directory")]


@train_command("pretrain")
def pretrain_cmd(
    cfg,
    *,
    resume: bool,
    overwrite: bool,
    data: Annotated[Path, typer.Option(help="token shards: DIR/train, DIR/val, DIR/manifest.json")],
    out: Out,
    config: Annotated[str, typer.Option(help="model preset: tiny | small | gpt2-124m")] = "tiny",
    tokenizer: Annotated[str | None, typer.Option(help="override the manifest's tokenizer")] = None,
    block_size: Annotated[
        int | None, typer.Option(help="override the preset's context length")
    ] = None,
) -> dict:
    """Pretrain a GPT from scratch on token shards."""
    from trainer.pretrain import pretrain

    overrides = {"block_size": block_size} if block_size else {}
    return pretrain(
        data,
        out,
        cfg,
        preset=config,
        tokenizer=tokenizer,
        model_overrides=overrides,
        resume=resume,
        overwrite=overwrite,
    )


@train_command("sft")
def sft_cmd(
    cfg,
    *,
    resume: bool,
    overwrite: bool,
    init: Init,
    data: Annotated[Path, typer.Option(help="conversations: DIR/train/*.parquet (+ DIR/val)")],
    out: Out,
) -> dict:
    """Supervised fine-tuning: loss on assistant tokens and tool calls only."""
    from trainer.sft import sft

    return sft(init, data, out, cfg, resume=resume, overwrite=overwrite)


@train_command("rl")
def rl_cmd(
    cfg,
    *,
    resume: bool,
    overwrite: bool,
    init: Init,
    data: Annotated[Path, typer.Option(help="RL prompts: DIR/train/*.parquet (+ DIR/val)")],
    out: Out,
    k: Annotated[int, typer.Option(help="sampled answers per prompt")] = 8,
    max_new_tokens: Annotated[int, typer.Option(help="answer length cap")] = 64,
    temperature: Annotated[float, typer.Option(help="rollout temperature")] = 1.0,
    reward_model: Annotated[
        Path | None,
        typer.Option(help="reward-model run: its score is the reward (default: the verifier)"),
    ] = None,
) -> dict:
    """RL on verifiable prompts: k samples per prompt, reward = correct, advantage = reward - mean."""
    from trainer.config import RLConfig
    from trainer.rl import rl

    rl_cfg = RLConfig(k=k, max_new_tokens=max_new_tokens, temperature=temperature)
    return rl(
        init, data, out, cfg, rl_cfg, resume=resume, overwrite=overwrite, reward_model=reward_model
    )


@train_command("reward")
def reward_cmd(
    cfg,
    *,
    resume: bool,
    overwrite: bool,
    init: Annotated[Path, typer.Option(help="LM checkpoint (file or run dir) for the backbone")],
    data: Annotated[Path, typer.Option(help="preference pairs: DIR/train/*.parquet (+ DIR/val)")],
    out: Out,
) -> dict:
    """Bradley-Terry reward model on chosen/rejected pairs; reports pair accuracy."""
    from trainer.reward import train_reward

    return train_reward(init, data, out, cfg, resume=resume, overwrite=overwrite)


@train_command("dpo")
def dpo_cmd(
    cfg,
    *,
    resume: bool,
    overwrite: bool,
    init: Annotated[
        Path,
        typer.Option(help="SFT checkpoint (file or run dir): policy start and frozen reference"),
    ],
    data: Annotated[Path, typer.Option(help="preference pairs: DIR/train/*.parquet (+ DIR/val)")],
    out: Out,
    beta: Annotated[
        float, typer.Option(help="DPO temperature: how far the policy may move from the reference")
    ] = 0.1,
) -> dict:
    """Direct Preference Optimization on chosen/rejected pairs against a frozen reference."""
    from trainer.dpo import dpo

    return dpo(init, data, out, cfg, beta=beta, resume=resume, overwrite=overwrite)


@app.command("sample")
def sample_cmd(
    ckpt: Annotated[Path, typer.Option(help="checkpoint file or run dir")],
    prompt: Annotated[str, typer.Option(help="text to continue")],
    max_tokens: Annotated[int, typer.Option(help="new tokens at most")] = 128,
    temperature: Annotated[float, typer.Option(help="0 = greedy (deterministic)")] = 0.0,
    top_k: Annotated[int | None, typer.Option(help="sample from the k most likely tokens")] = None,
    seed: Annotated[int | None, typer.Option(help="sampling seed")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    best_of: Annotated[
        int | None, typer.Option(help="chat reply: best of N samples by --reward-model")
    ] = None,
    reward_model: Annotated[
        Path | None, typer.Option(help="reward-model run that scores --best-of samples")
    ] = None,
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
            res = best_of_n(
                lm,
                RewardScorer(reward_model, device),
                prompt,
                best_of,
                max_tokens,
                temperature,
                top_k,
                seed or 0,
            )
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None
        typer.echo(
            json.dumps({k: res[k] for k in ("best_index", "scores", "reward_model")}), err=True
        )
        typer.echo(res["best"])
        return
    typer.echo(
        prompt
        + lm.complete(
            prompt, max_tokens=max_tokens, temperature=temperature, top_k=top_k, seed=seed
        )
    )


@app.command("chat")
def chat_cmd(
    ckpt: Annotated[Path, typer.Option(help="checkpoint file or run dir")],
    search_index: Annotated[
        str | None, typer.Option(help="search index dir for the search tool")
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="new tokens per generation")] = 256,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = 0.0,
    top_k: Annotated[int | None, typer.Option(help="top-k sampling")] = None,
    seed: Annotated[int | None, typer.Option(help="sampling seed")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    allow_weak_sandbox: Annotated[
        bool, typer.Option("--allow-weak-sandbox", help=WEAK_FLAG_HELP)
    ] = False,
) -> None:
    """Chat on stdin (/reset, /quit); python and search tool calls are executed."""
    if allow_weak_sandbox:
        from pipelines.sandbox import allow_weak_sandbox as allow_weak

        allow_weak()
    from trainer.chat import default_tools, repl
    from trainer.inference import LocalModel

    lm = LocalModel.from_checkpoint(ckpt, device=device)
    repl(
        lm,
        default_tools(search_index),
        max_tokens=max_tokens,
        temperature=temperature,
        top_k=top_k,
        seed=seed,
    )


@app.command("serve")
def serve_cmd(
    ckpt: Annotated[Path, typer.Option(help="checkpoint file or run dir")],
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    model_name: Annotated[
        str | None, typer.Option(help="model id clients send (default: the run name)")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="TOKENMILL_API_KEY", help="require `Authorization: Bearer KEY`"),
    ] = None,
    max_batch: Annotated[
        int, typer.Option(help="sequences decoded together per forward pass")
    ] = 32,
    max_waiting: Annotated[int, typer.Option(help="sequences queued beyond that before 429")] = 256,
    max_tokens_cap: Annotated[
        int, typer.Option(help="largest max_tokens a request may ask for")
    ] = 2048,
    max_request_bytes: Annotated[int, typer.Option(help="largest request body")] = 1_000_000,
) -> None:
    """OpenAI-compatible HTTP server with continuous batching and streaming (/v1/chat/completions,
    /v1/completions, /v1/models, /health)."""
    from trainer.serve import ServeConfig, serve

    cfg = ServeConfig(
        model_name=model_name,
        api_key=api_key,
        max_batch=max_batch,
        max_waiting=max_waiting,
        max_tokens_cap=max_tokens_cap,
        max_request_bytes=max_request_bytes,
    )
    serve(str(ckpt), host=host, port=port, device=device, config=cfg)
