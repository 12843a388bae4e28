"""``LocalModel``: a trained checkpoint as an LLM (token, text and chat interfaces).

The synthesis stages build their LLM backend on this class and ``trainer.serve`` exposes it over
HTTP; keep the interface stable. Only the checkpoint is needed: it carries the tokenizer.

Every generation, in process (``sample``, ``chat``, the synthesis backend) or over HTTP, goes
through the model's one continuous-batching engine (``trainer.batching``): concurrent callers
share forward passes, and a request's output does not depend on who else is generating.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pipelines.chat import IM_END, render_prompt
from trainer import checkpoint as ckpt
from trainer.batching import Engine, SamplingParams
from trainer.model import GPT
from trainer.sample import allowed_ids
from trainer.threads import limit_cpu_threads


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (a stop id was produced) or "length"
    ids: list[int]


class LocalModel:
    def __init__(
        self,
        model: GPT,
        tokenizer,
        name: str = "tokenmill",
        max_batch: int = 32,
        max_waiting: int = 256,
    ):
        self.model, self.tok, self.name = model.eval(), tokenizer, name
        self.allowed = allowed_ids(tokenizer, model.cfg.vocab_size).to(model.wte.weight.device)
        self.engine = Engine(
            self.model,
            self.allowed,
            bos=tokenizer.eot_id,
            max_batch=max_batch,
            max_waiting=max_waiting,
        )

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", **engine) -> LocalModel:
        """``engine``: ``max_batch`` / ``max_waiting`` of the batching engine."""
        if device == "cpu":
            torch.set_flush_denormal(True)
            limit_cpu_threads()
        model, state = ckpt.load_gpt(path, device)
        p = ckpt.resolve(path)  # name: the run directory for RUN/checkpoint.pt, else the file stem
        return cls(
            model,
            ckpt.tokenizer_from_ref(state["tokenizer"]),
            name=p.parent.name if p.name == ckpt.CKPT_NAME else p.stem,
            **engine,
        )

    @property
    def block_size(self) -> int:
        return self.model.cfg.block_size

    def generate(
        self,
        prompt_ids: list[int],
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_k: int | None = None,
        seed: int | None = None,
        stop_ids: list[int] | tuple[int, ...] | None = None,
    ) -> list[int]:
        """New token ids; the stop id that ended generation (default: EOT) is the last one.
        ``temperature=0`` is greedy and deterministic; ``seed`` makes sampling reproducible.
        A prompt longer than the context keeps its last ``block_size - 1`` tokens."""
        stops = (self.tok.eot_id,) if stop_ids is None else tuple(stop_ids)
        params = SamplingParams(
            max_tokens=max_tokens, temperature=temperature, top_k=top_k, seed=seed, stop_ids=stops
        )
        return list(self.engine.generate(prompt_ids, params))

    def _finish(self, prompt_ids: list[int], out: list[int], stops: tuple[int, ...]) -> Completion:
        stopped = bool(out) and out[-1] in stops
        text = self.tok.decode(out[:-1] if stopped else out)
        return Completion(text, len(prompt_ids), len(out), "stop" if stopped else "length", out)

    def complete_full(
        self,
        text: str,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_k: int | None = None,
        seed: int | None = None,
    ) -> Completion:
        ids = self.tok.encode(text)
        stops = (self.tok.eot_id,)
        return self._finish(
            ids, self.generate(ids, max_tokens, temperature, top_k, seed, stops), stops
        )

    def chat_full(
        self,
        messages: list[dict],
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_k: int | None = None,
        seed: int | None = None,
    ) -> Completion:
        ids = render_prompt(messages, self.tok)
        stops = (self.tok.special(IM_END), self.tok.eot_id)
        return self._finish(
            ids, self.generate(ids, max_tokens, temperature, top_k, seed, stops), stops
        )

    def complete(self, text: str, **kw) -> str:
        """Continue plain text (stops at EOT)."""
        return self.complete_full(text, **kw).text

    def chat(self, messages: list[dict], **kw) -> str:
        """The next assistant message for ``messages`` (rendered like training data; stops at
        ``<|im_end|>``). Tool calls are not executed here: see ``trainer.chat``."""
        return self.chat_full(messages, **kw).text
