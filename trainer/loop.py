"""The one training loop every mode shares (pretrain, SFT, RL, reward model).

A mode supplies a data loader with a cursor, ``step_fn(forward_model, batch) -> (loss, info)`` and
``evaluate(model) -> metrics``; this loop owns the rest: device and precision, AdamW with the LR
schedule, gradient accumulation and clipping, progress bar, ``metrics.jsonl``/``loss.png``, and
checkpoints that resume bit-exactly (model, optimizer, data cursor, RNG states, step).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from trainer import checkpoint as ckpt
from trainer.config import RESUMABLE_CHANGES, ModelConfig, TrainConfig
from trainer.metrics import MetricsLog, plot
from trainer.optim import lr_at, make_optimizer
from trainer.threads import limit_cpu_threads


@dataclass
class Env:
    """Where and in what precision a run computes."""

    device: torch.device
    autocast: Callable[[], contextlib.AbstractContextManager]

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def setup(device: str = "auto") -> Env:
    """bf16 autocast (+ TF32) on CUDA; plain fp32 with flushed denormals on CPU (denormals make
    CPU matmuls many times slower when small gradients underflow)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return Env(dev, lambda: torch.autocast("cuda", dtype=torch.bfloat16))
    torch.set_flush_denormal(True)
    limit_cpu_threads()
    return Env(dev, contextlib.nullcontext)


def check_resumable(run_dir: Path, state: dict, kind: str, cfg: TrainConfig) -> None:
    """A resumed run must continue the same computation: same mode and the same settings (except
    the ones in ``RESUMABLE_CHANGES``); otherwise refuse, naming what differs."""
    if state.get("kind") != kind:
        raise ValueError(
            f"{run_dir} holds a {state.get('kind')} checkpoint; cannot resume it as {kind} "
            "(use another --out, or --overwrite)"
        )
    saved = state.get("train_config") or {}
    diff = sorted(
        k
        for k, v in cfg.model_dump().items()
        if k not in RESUMABLE_CHANGES and k in saved and saved[k] != v
    )
    if diff:
        what = ", ".join(f"{k}: {saved[k]!r} -> {getattr(cfg, k)!r}" for k in diff)
        raise ValueError(
            f"{run_dir}: cannot resume with different settings ({what}); use the "
            "checkpoint's settings, another --out, or --overwrite"
        )


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def fit(
    *,
    run_dir: str | Path,
    kind: str,
    cfg: TrainConfig,
    env: Env,
    model: torch.nn.Module,
    model_cfg: ModelConfig,
    data,
    step_fn: Callable,
    evaluate: Callable[[torch.nn.Module], dict],
    tokenizer: dict,
    resume: bool = False,
    overwrite: bool = False,
    extra: dict | None = None,
) -> dict:
    """Train ``model`` to ``cfg.steps`` (or ``cfg.stop_at``); returns the last evaluation.
    An existing checkpoint needs ``resume`` (same settings) or ``overwrite`` (deleted first)."""
    run_dir = Path(run_dir)
    ckpt.guard_run_dir(run_dir, resume, overwrite)
    run_dir.mkdir(parents=True, exist_ok=True)
    if overwrite and ckpt.exists(run_dir):
        ckpt.resolve(run_dir).unlink()
    opt = make_optimizer(model, cfg, env.device)
    step, resumed = 0, False
    if resume and ckpt.exists(run_dir):
        state = ckpt.load(run_dir, map_location=env.device)
        check_resumable(run_dir, state, kind, cfg)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        data.load_state_dict(state["data"])
        ckpt.set_rng_state(state["rng"])
        step, resumed = state["step"], True
    log = MetricsLog(run_dir, resume_step=step if resumed else None)
    (run_dir / "config.json").write_text(
        json.dumps(
            {
                "kind": kind,
                "train": cfg.model_dump(),
                "model": model_cfg.model_dump(),
                "tokenizer": tokenizer["name"],
                **(extra or {}),
            },
            indent=2,
        )
    )
    fwd = torch.compile(model) if env.cuda and cfg.compile else model
    end = min(cfg.steps, cfg.stop_at or cfg.steps)

    def save() -> None:
        ckpt.save(
            run_dir / ckpt.CKPT_NAME,
            {
                "kind": kind,
                "step": step,
                "model_config": model_cfg.model_dump(),
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "data": data.state_dict(),
                "rng": ckpt.rng_state(),
                "train_config": cfg.model_dump(),
                "tokenizer": tokenizer,
                "extra": extra or {},
            },
        )

    last_eval: dict = {}
    with _progress(cfg.progress) as bar:
        task = bar.add_task(kind, total=end, completed=step, info="")
        while step < end:
            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            t0 = time.perf_counter()
            model.train()
            loss_sum, tokens, info = 0.0, 0, {}
            for _ in range(cfg.grad_accum):
                batch = data.next_batch()
                with env.autocast():
                    loss, info = step_fn(fwd, batch)
                (loss / cfg.grad_accum).backward()
                loss_sum += loss.item()
                tokens += int(info.pop("tokens", 0))
            norm = (
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                if cfg.grad_clip > 0
                else None
            )
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            dt = time.perf_counter() - t0
            rec = {
                "step": step,
                "loss": loss_sum / cfg.grad_accum,
                "lr": lr,
                "tokens_per_s": tokens / dt,
                **{k: float(v) for k, v in info.items()},
            }
            if norm is not None:
                rec["grad_norm"] = float(norm)
            log.log(**rec)
            bar.update(
                task,
                completed=step,
                info=f"loss {rec['loss']:.3f} | {rec['tokens_per_s']:,.0f} tok/s",
            )
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps:
                last_eval = evaluate(model)
                log.log(step=step, **last_eval)
                bar.console.print(
                    f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in last_eval.items())
                )
            if step % cfg.ckpt_every == 0 or step == end:
                save()
    plot(run_dir, keys=("loss", *[k for k in last_eval if k.startswith("val_loss")]))
    return {"step": step, **last_eval}
