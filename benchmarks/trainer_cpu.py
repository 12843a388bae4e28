"""CPU training throughput: tokenmill's trainer vs a minimal plain-PyTorch loop of the same model.

Both train the same GPT shape (tiny and small presets, a ~1k-token BPE) with AdamW, grad clipping and
the same batch; each step is timed from fetching the batch to the optimizer step. Ours is the
real ``trainer.pretrain.pretrain`` reading Parquet token shards (progress bar, metrics.jsonl and
checkpoint included); the reference is a nanoGPT-style model and loop written here on purpose
from scratch, with batches sliced from an in-memory tensor. Runs alternate (and which goes
first alternates); the figure is the median over runs of each run's median step throughput, and
the fastest single step (on a shared machine, the figure least affected by other jobs).

    python benchmarks/trainer_cpu.py [--runs 3] [--steps 12] [--append]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import append_results  # noqa: E402
from pipelines.io import atomic_write_parquet  # noqa: E402
from schemas.tokens import TOKEN_SHARD_SCHEMA  # noqa: E402
from trainer.config import PRESETS, TrainConfig  # noqa: E402

VOCAB = 1024  # set from the benchmark's own BPE in main()
BATCH = 8


class RefBlock(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = nn.LayerNorm(d, bias=False), nn.LayerNorm(d, bias=False)
        self.qkv, self.o = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.fc, self.out = nn.Linear(d, 4 * d, bias=False), nn.Linear(4 * d, d, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, 2)
        q, k, v = (t.view(B, T, self.h, -1).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + self.o(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class RefGPT(nn.Module):
    def __init__(self, n_layer, n_head, n_embd, block_size):
        super().__init__()
        self.tok, self.pos = nn.Embedding(VOCAB, n_embd), nn.Embedding(block_size, n_embd)
        self.blocks = nn.Sequential(*[RefBlock(n_embd, n_head) for _ in range(n_layer)])
        self.ln = nn.LayerNorm(n_embd, bias=False)
        for p in self.parameters():  # nanoGPT's init, so both runs see the same kind of numbers
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, targets):
        x = self.tok(idx) + self.pos(torch.arange(idx.size(1)))
        logits = self.ln(self.blocks(x)) @ self.tok.weight.T
        return F.cross_entropy(logits.view(-1, VOCAB), targets.reshape(-1))


def reference(preset: str, steps: int, data: torch.Tensor) -> tuple[float, float]:
    shape = PRESETS[preset]
    T = shape["block_size"]
    torch.manual_seed(0)
    model = RefGPT(**shape)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    rates = []
    for step in range(steps):
        t0 = time.perf_counter()
        i = step * BATCH * (T + 1)
        rows = data[i : i + BATCH * (T + 1)].view(BATCH, T + 1)
        loss = model(rows[:, :-1], rows[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        rates.append(BATCH * T / (time.perf_counter() - t0))
    return statistics.median(rates[2:]), max(rates[2:])


def ours(preset: str, steps: int, shards: Path, out: Path, tokenizer: str) -> tuple[float, float]:
    from trainer.pretrain import pretrain

    cfg = TrainConfig(
        steps=steps,
        batch_size=BATCH,
        eval_every=0,
        eval_batches=1,
        ckpt_every=10_000,
        progress=False,
        device="cpu",
        warmup_steps=2,
    )
    pretrain(shards, out, cfg, preset=preset, tokenizer=tokenizer)
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in recs if "tokens_per_s" in r][2:]
    return statistics.median(rates), max(rates)


def write_shards(d: Path, tokens: np.ndarray) -> None:
    docs = np.array_split(tokens, len(tokens) // 500)
    for split in ("train", "val"):
        t = pa.table(
            {
                "id": [f"{split}{i}" for i in range(len(docs))],
                "input_ids": [x.tolist() for x in docs],
                "num_tokens": [len(x) for x in docs],
            },
            schema=TOKEN_SHARD_SCHEMA,
        )
        atomic_write_parquet(d / split / "shard-00000.parquet", t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--append", action="store_true", help="append the result to benchmarks/RESULTS.md"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    global VOCAB
    from pipelines.tokenizer import train_bpe

    rng = np.random.default_rng(0)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        texts = [
            f"Item {i} weighs {i * 7 % 1000} grams and costs {i % 97} euros." for i in range(5000)
        ]
        tok = train_bpe(texts, 2048, tmp / "tok.json")
        VOCAB = (tok.vocab_size + 63) // 64 * 64  # the trainer pads the same way
        for preset in args.presets:
            T = PRESETS[preset]["block_size"]
            n = (args.steps + 1) * BATCH * (T + 1) * 2
            tokens = rng.integers(0, tok.vocab_size, n, dtype=np.int64)
            write_shards(tmp / preset, tokens)
            data = torch.from_numpy(tokens)
            ref_r, our_r = [], []
            for run in range(args.runs):  # alternate which goes first: the machine's load drifts
                for which in ("ref", "ours") if run % 2 == 0 else ("ours", "ref"):
                    if which == "ref":
                        ref_r.append(reference(preset, args.steps, data))
                    else:
                        our_r.append(
                            ours(
                                preset,
                                args.steps,
                                tmp / preset,
                                tmp / f"run-{preset}-{run}",
                                str(tmp / "tok.json"),
                            )
                        )
            ref, our = (statistics.median(r[0] for r in rs) for rs in (ref_r, our_r))
            ref_best, our_best = (max(r[1] for r in rs) for rs in (ref_r, our_r))
            lines.append(
                f"| {preset} | {ref:,.0f} | {our:,.0f} | {our / ref:.2f}x | {ref_best:,.0f} | {our_best:,.0f} "
                f"| {our_best / ref_best:.2f}x |"
            )
            print(lines[-1], flush=True)
    table = [
        "| preset | plain loop tok/s (median) | tokenmill tok/s (median) | ratio | plain loop best step "
        "| tokenmill best step | ratio |",
        "|---|---|---|---|---|---|---|",
        *lines,
    ]
    print("\n".join(table))
    if args.append:
        entry = [
            f"\n## {date.today().isoformat()} trainer CPU throughput (benchmarks/trainer_cpu.py)\n",
            f"Machine: 2-core x86_64 CPU, 24 GiB, shared/noisy; torch {torch.__version__}, "
            f"{args.threads} threads, python {platform.python_version()}. Batch {BATCH}, vocab {VOCAB}, "
            f"{args.steps} steps per run, median of {args.runs} alternating runs of each run's "
            "median step throughput (first 2 steps dropped); 'best step' = fastest single step of all runs, "
            "the least contention-affected figure.\n",
            *table,
            "",
        ]
        append_results("\n".join(entry) + "\n")


if __name__ == "__main__":
    main()
