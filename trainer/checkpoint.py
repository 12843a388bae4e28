"""Checkpoints: everything needed to resume bit-exactly, and to use the model with nothing else.

A checkpoint holds the model (config + weights), the optimizer, the data cursor, every RNG state,
the step, the run config and the tokenizer: its name (tiktoken) or, for a trained BPE, the JSON
itself, so ``sample``/``chat``/``serve`` need only the checkpoint file.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from pipelines.io import atomic_write_bytes
from pipelines.tokenizer import Tokenizer, load_tokenizer
from trainer.config import ModelConfig
from trainer.model import GPT

CKPT_NAME = "checkpoint.pt"


def resolve(path: str | Path) -> Path:
    """A checkpoint file, or a run directory holding ``checkpoint.pt``."""
    p = Path(path)
    return p / CKPT_NAME if p.is_dir() else p


def tokenizer_ref(name_or_path: str) -> dict:
    """How a checkpoint names its tokenizer: tiktoken name, or the trained BPE's JSON text."""
    p = Path(name_or_path)
    if p.suffix == ".json" or p.is_file():
        return {"name": str(p), "json": p.read_text(encoding="utf-8")}
    return {"name": name_or_path, "json": None}


def tokenizer_from_ref(ref: dict) -> Tokenizer:
    if ref.get("json") is None:
        return load_tokenizer(ref["name"])
    digest = hashlib.sha256(ref["json"].encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"tokenmill-tokenizer-{digest}.json"
    if not path.is_file():
        atomic_write_bytes(path, ref["json"].encode("utf-8"))
    return load_tokenizer(str(path))


def rng_state() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: str | Path, payload: dict) -> None:
    """Atomically write ``payload`` (a dict of tensors/state dicts/plain values)."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = resolve(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location=map_location, weights_only=False)


def exists(run_dir: str | Path) -> bool:
    return os.path.isfile(resolve(run_dir))


class RunDirExists(ValueError):
    """A run directory that already holds a checkpoint, given without ``resume``/``overwrite``."""


def guard_run_dir(run_dir: str | Path, resume: bool, overwrite: bool) -> None:
    """Never destroy a checkpoint by accident: an existing ``RUN/checkpoint.pt`` needs ``resume``
    (continue it) or ``overwrite`` (start over); both at once is contradictory."""
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: choose one")
    if exists(run_dir) and not resume and not overwrite:
        step = load(run_dir).get("step", "?")
        raise RunDirExists(
            f"{run_dir} already holds a checkpoint (step {step}): pass --resume to "
            "continue it or --overwrite to start over"
        )


def load_gpt(init: str | Path, device) -> tuple[GPT, dict]:
    """The GPT of a pretrain/SFT/RL checkpoint (weights only) and the checkpoint itself. Lives
    here, not in a training loop, so serving and chat load models without importing training."""
    state = load(init, map_location=device)
    if state["kind"] == "reward":
        raise ValueError(f"{init} is a reward model, not a language model")
    model = GPT(ModelConfig(**state["model_config"])).to(device)
    model.load_state_dict(state["model"])
    return model, state
