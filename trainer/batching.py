"""Continuous batching: one scheduler thread serves many generations with one forward pass per step.

Sequences wait in a bounded queue; at every token boundary the scheduler admits waiting sequences
into free slots of a batched KV cache (prefilled together, right-padded, each row attending to its
own prompt only), then runs ONE decode step for every active sequence: each row feeds its
last token at its own position and attends to its own cached keys only (per-row positions and a
per-row key mask; rows are never padded into each other). A sequence leaves as soon as it emits a
stop id, reaches ``max_tokens`` or is cancelled (client gone), and its slot is reused at once.

Sampling is per sequence (temperature, top-k, top-p, its own seeded generator, banned ids), so a
request's output does not depend on what else is in the batch. The forward pass below follows
``trainer.model.GPT`` block for block (pre-norm, learned positions, tied head); a test checks
that it agrees with ``GPT.forward`` token for token.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from trainer.model import GPT
from trainer.sample import filter_logits

#: The scheduler thread ends (and frees its cache) after this long without work.
IDLE_EXIT_S = 30.0


class QueueFull(RuntimeError):
    """The waiting queue is full: try again later (HTTP 429)."""


class EngineClosed(RuntimeError):
    """The engine is shut down or failed (HTTP 503)."""


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 0.0  # 0 = greedy
    top_k: int | None = None
    top_p: float = 1.0
    seed: int | None = None  # None: the global torch RNG
    stop_ids: tuple[int, ...] = ()  # generation ends after one of these (it is emitted)
    banned_ids: tuple[int, ...] = ()  # never sampled
    logprobs: int | None = None  # None: off; k: the token's logprob and the k most likely


@dataclass
class TokenEvent:
    token: int
    logprob: float | None = None
    top: list[tuple[int, float]] | None = None


@dataclass
class Finished:
    reason: str  # "stop" | "length" | "cancelled" | "error"
    error: str | None = None


Listener = Callable[[TokenEvent | Finished], None]


@dataclass(eq=False)
class Sequence:
    """One generation. ``listener`` is called from the scheduler thread for every token and once
    with ``Finished``; ``out`` holds the emitted ids."""

    prompt: list[int]
    params: SamplingParams
    listener: Listener | None = None
    out: list[int] = field(default_factory=list)
    finish: Finished | None = None
    cancelled: bool = False
    _done: threading.Event = field(default_factory=threading.Event)
    _gen: torch.Generator | None = None
    _cached: int = 0  # tokens in this sequence's cache slot

    def emit(self, ev: TokenEvent | Finished) -> None:
        if isinstance(ev, Finished):
            self.finish = ev
        if self.listener is not None:
            self.listener(ev)
        if isinstance(ev, Finished):
            self._done.set()

    def wait(self, timeout: float | None = None) -> list[int]:
        """Block until finished; the emitted ids (raises if the engine failed)."""
        if not self._done.wait(timeout):
            raise TimeoutError("generation did not finish in time")
        if self.finish is not None and self.finish.reason == "error":
            raise EngineClosed(f"generation failed: {self.finish.error}")
        return self.out


class SlotCache:
    """Keys/values of ``slots`` sequences: (n_layer, slots, n_head, block_size, head_dim)."""

    def __init__(self, model: GPT, slots: int):
        cfg = model.cfg
        shape = (cfg.n_layer, slots, cfg.n_head, cfg.block_size, cfg.n_embd // cfg.n_head)
        w = model.wte.weight
        self.k = torch.zeros(shape, device=w.device, dtype=w.dtype)
        self.v = torch.zeros(shape, device=w.device, dtype=w.dtype)

    @property
    def slots(self) -> int:
        return self.k.size(1)

    def ensure(self, slots: int, limit: int) -> None:
        """Room for ``slots`` sequences (doubling, at most ``limit``): a server that sees few
        concurrent requests never pays for ``max_batch`` full-context caches."""
        if slots <= self.slots:
            return
        n = min(limit, max(slots, 2 * self.slots))
        grow = (self.k.size(0), n - self.slots, *self.k.shape[2:])
        self.k = torch.cat([self.k, self.k.new_zeros(grow)], dim=1)
        self.v = torch.cat([self.v, self.v.new_zeros(grow)], dim=1)

    def move(self, src: int, dst: int, length: int) -> None:
        self.k[:, dst, :, :length] = self.k[:, src, :, :length]
        self.v[:, dst, :, :length] = self.v[:, src, :, :length]


@torch.no_grad()
def forward_rows(
    model: GPT,
    cache: SlotCache,
    idx: torch.Tensor,
    start: torch.Tensor,
    slots: list[int],
    last: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run ``idx`` (B, T) for the sequences in cache ``slots`` (B,), row b's tokens at positions
    ``start[b] .. start[b]+T-1``; writes their keys/values into the cache and returns the logits
    of each row's last position, or of position ``last[b]`` (B, V). A query sees its own row's
    keys at positions <= its own, nothing else."""
    B, T = idx.shape
    C, H = model.cfg.n_embd, model.cfg.n_head
    slot_t = torch.tensor(slots, device=idx.device)
    contiguous = slots == list(range(slots[0], slots[0] + B))
    rows = slice(slots[0], slots[0] + B) if contiguous else slot_t  # a view when contiguous
    offs = torch.arange(T, device=idx.device)
    pos = start[:, None] + offs[None]  # (B, T)
    kv_len = int(start.max()) + T
    x = model.wte(idx) + model.wpe(pos)
    mask = None
    if not (B == 1 and int(start[0]) == 0):  # a lone prefill from 0 is plain causal attention
        mask = (torch.arange(kv_len, device=idx.device)[None, None] <= pos[:, :, None])[:, None]
    b_idx = slot_t[:, None].expand(B, T)
    s0 = int(start[0])
    if T == 1 and contiguous:  # decode: scatter each row's one key at its own position (fast path)
        at = start.view(B, 1, 1, 1).expand(B, H, 1, C // H)
    for layer, block in enumerate(model.blocks):
        attn = block.attn
        q, k, v = attn.qkv(block.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
        ck, cv = cache.k[layer], cache.v[layer]
        if B == 1:  # prefill: one slot, consecutive positions
            ck[slots[0], :, s0 : s0 + T] = k[0]
            cv[slots[0], :, s0 : s0 + T] = v[0]
        elif T == 1 and contiguous:
            ck[rows].scatter_(2, at, k)
            cv[rows].scatter_(2, at, v)
        else:
            ck[b_idx, :, pos] = k.transpose(1, 2)  # (B, T, H, D) into (slot, :, position)
            cv[b_idx, :, pos] = v.transpose(1, 2)
        keys, vals = ck[rows, :, :kv_len], cv[rows, :, :kv_len]
        y = F.scaled_dot_product_attention(q, keys, vals, attn_mask=mask, is_causal=mask is None)
        x = x + attn.proj(y.transpose(1, 2).reshape(B, T, C))
        x = x + block.mlp(block.ln2(x))
    h = x[:, -1] if last is None else x[torch.arange(B, device=idx.device), last]
    return F.linear(model.ln_f(h), model.wte.weight)


class Engine:
    """The scheduler: ``submit`` sequences (from any thread), tokens arrive through listeners.

    ``max_batch`` sequences decode together (cache slots); ``max_waiting`` more may queue, beyond
    that ``submit`` raises ``QueueFull``. ``allowed`` masks ids that cannot be decoded; ``bos`` is
    fed for an empty prompt. The thread starts on the first submit and is a daemon.
    """

    def __init__(
        self,
        model: GPT,
        allowed: torch.Tensor | None = None,
        bos: int = 0,
        max_batch: int = 32,
        max_waiting: int = 256,
    ):
        if max_batch < 1 or max_waiting < 0:
            raise ValueError("max_batch must be >= 1 and max_waiting >= 0")
        self.model = model.eval()
        self.allowed, self.bos = allowed, bos
        self.max_batch, self.max_waiting = max_batch, max_waiting
        self.device = model.wte.weight.device
        self.block_size = model.cfg.block_size
        self._cache: SlotCache | None = None
        self._active: list[Sequence] = []  # _active[i] lives in cache slot i (kept contiguous)
        self._waiting: collections.deque[Sequence] = collections.deque()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.error: str | None = None
        self.steps = 0  # decode steps run (for tests and stats)
        self.max_active_seen = 0

    # --- public, thread-safe ---------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return not self._closed and self.error is None

    def load(self) -> dict:
        with self._cv:
            return {
                "active": len(self._active),
                "waiting": len(self._waiting),
                "max_batch": self.max_batch,
                "max_waiting": self.max_waiting,
            }

    def submit(self, *seqs: Sequence) -> None:
        """Queue sequences (all or none): ``QueueFull`` / ``EngineClosed`` when they cannot."""
        with self._cv:
            if not self.alive:
                raise EngineClosed(self.error or "the engine is shut down")
            free = self.max_batch - len(self._active) + self.max_waiting - len(self._waiting)
            if len(seqs) > free:
                raise QueueFull(
                    f"{len(self._active)} generating and {len(self._waiting)} waiting; "
                    "try again shortly"
                )
            vocab = self.model.cfg.vocab_size
            for s in seqs:
                if any(not 0 <= t < vocab for t in s.prompt):
                    raise ValueError(f"prompt ids must be in [0, {vocab})")
            for s in seqs:
                if s.params.max_tokens <= 0:
                    s.emit(Finished("length"))
                    continue
                if s.params.seed is not None:
                    s._gen = torch.Generator(device=self.device).manual_seed(s.params.seed)
                self._waiting.append(s)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tokenmill-batching", daemon=True
                )
                self._thread.start()
            self._cv.notify()

    def generate(self, prompt: list[int], params: SamplingParams) -> list[int]:
        """Submit one sequence and wait for its ids (blocking; for in-process callers)."""
        seq = Sequence(list(prompt), params)
        self.submit(seq)
        return seq.wait()

    def cancel(self, seq: Sequence) -> None:
        """Stop ``seq`` at the next token boundary (e.g. its client went away)."""
        seq.cancelled = True

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)

    # --- scheduler thread ----------------------------------------------------------------------
    def _run(self) -> None:
        if self.device.type == "cpu":
            torch.set_flush_denormal(True)  # a per-thread CPU flag: set it in this thread too
        try:
            while True:
                with self._cv:
                    while not self._closed and not self._waiting and not self._active:
                        if not self._cv.wait(timeout=IDLE_EXIT_S) and not self._waiting:
                            self._thread, self._cache = None, None  # idle: free the cache
                            return  # (the next submit starts a new thread)
                    if self._closed:
                        break
                    admit = []
                    while self._waiting and len(self._active) + len(admit) < self.max_batch:
                        admit.append(self._waiting.popleft())
                self._step(admit)
        except BaseException as e:  # noqa: BLE001 (reported to every waiting caller)
            self.error = f"{type(e).__name__}: {e}"
            raise
        finally:
            with self._cv:
                pending = self._active + list(self._waiting)
                self._active, self._waiting = [], collections.deque()
            for s in pending:
                s.emit(Finished("error", self.error or "the engine is shut down"))

    def _step(self, admit: list[Sequence]) -> None:
        if self._cache is None:
            self._cache = SlotCache(self.model, min(self.max_batch, max(1, len(admit))))
        cache = self._cache
        cache.ensure(len(self._active) + len(admit), self.max_batch)
        rows: list[Sequence] = []
        logits: list[torch.Tensor] = []
        joining = []
        for s in admit:  # join: the next free slots, prefilled together in one forward pass
            if s.cancelled:
                s.emit(Finished("cancelled"))
                continue
            joining.append((len(self._active), s, s.prompt[-(self.block_size - 1) :] or [self.bos]))
            self._active.append(s)
        if joining:
            logits.append(self._prefill_many(cache, joining))
            rows += [s for _, s, _ in joining]
        decode = [(i, s) for i, s in enumerate(self._active) if s not in rows and s.out]
        # a sequence whose window is full restarts from its last half window (learned positions
        # cannot go past block_size), exactly as trainer.sample.generate does
        for i, s in [(i, s) for i, s in decode if s._cached >= self.block_size]:
            window = (s.prompt + s.out)[-(self.block_size // 2) :]
            logits.append(self._prefill(cache, i, s, window))
            rows.append(s)
        decode = [(i, s) for i, s in decode if s not in rows]
        if decode:
            idx = torch.tensor([[s.out[-1]] for _, s in decode], device=self.device)
            start = torch.tensor([s._cached for _, s in decode], device=self.device)
            logits.append(forward_rows(self.model, cache, idx, start, [i for i, _ in decode]))
            for _, s in decode:
                s._cached += 1
                rows.append(s)
            self.steps += 1
        self.max_active_seen = max(self.max_active_seen, len(self._active))
        if rows:
            self._sample(rows, torch.cat(logits) if len(logits) > 1 else logits[0])
        self._retire()

    def _prefill_many(
        self, cache: SlotCache, items: list[tuple[int, Sequence, list[int]]]
    ) -> torch.Tensor:
        """Prefill several prompts (right-padded to the longest) into their slots; each row
        attends only to its own prompt, and the keys written for its padding lie beyond its
        length, where they are overwritten before anything attends to them."""
        if len(items) == 1:
            slot, s, ids = items[0]
            return self._prefill(cache, slot, s, ids)
        width = max(len(ids) for _, _, ids in items)
        idx = torch.tensor(
            [ids + [self.bos] * (width - len(ids)) for _, _, ids in items], device=self.device
        )
        start = torch.zeros(len(items), dtype=torch.long, device=self.device)
        last = torch.tensor([len(ids) - 1 for _, _, ids in items], device=self.device)
        out = forward_rows(self.model, cache, idx, start, [slot for slot, _, _ in items], last=last)
        for _, s, ids in items:
            s._cached = len(ids)
        return out

    def _prefill(self, cache: SlotCache, slot: int, s: Sequence, ids: list[int]) -> torch.Tensor:
        idx = torch.tensor([ids], device=self.device)
        start = torch.zeros(1, dtype=torch.long, device=self.device)
        out = forward_rows(self.model, cache, idx, start, [slot])
        s._cached = len(ids)
        return out

    def _sample(self, rows: list[Sequence], logits: torch.Tensor) -> None:
        logits = logits.float()
        if self.allowed is not None:
            logits = logits.masked_fill(~self.allowed, float("-inf"))
        for i, s in enumerate(rows):
            if s.params.banned_ids:
                logits[i, list(s.params.banned_ids)] = float("-inf")
        logp = (
            torch.log_softmax(logits, -1)
            if any(s.params.logprobs is not None for s in rows)
            else None
        )
        greedy = logits.argmax(-1).tolist()
        for i, s in enumerate(rows):
            p = s.params
            if p.temperature <= 0:
                tok = greedy[i]
            else:
                probs = torch.softmax(
                    filter_logits(logits[i : i + 1], p.temperature, p.top_k, p.top_p), -1
                )
                tok = int(torch.multinomial(probs, 1, generator=s._gen))
            ev = TokenEvent(tok)
            if p.logprobs is not None and logp is not None:
                ev.logprob = float(logp[i, tok])
                if p.logprobs > 0:
                    top = torch.topk(logp[i], p.logprobs)
                    ev.top = list(zip(top.indices.tolist(), top.values.tolist(), strict=True))
            s.out.append(tok)
            s.emit(ev)
            if tok in p.stop_ids:
                s.finish = Finished("stop")
            elif len(s.out) >= p.max_tokens:
                s.finish = Finished("length")

    def _retire(self) -> None:
        """Finished and cancelled sequences leave; the last active sequence moves into a freed
        slot so active slots stay contiguous (one batched view of the cache per step)."""
        i = 0
        while i < len(self._active):
            s = self._active[i]
            if s.finish is None and not s.cancelled:
                i += 1
                continue
            last = self._active.pop()
            if last is not s:
                self._active[i] = last
                self._cache.move(len(self._active), i, last._cached)
            s.emit(s.finish or Finished("cancelled"))
