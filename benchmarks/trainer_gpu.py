"""GPU training throughput and MFU of tokenmill's trainer (bf16 autocast + torch.compile).

Runs the real ``trainer.pretrain.pretrain`` on synthetic token shards (random ids of the chosen
tokenizer) and prints tokens/s and model FLOPs utilisation:

    MFU = (6 N + 12 L d T) * tokens/s / peak bf16 FLOP/s

(N = non-embedding parameters + the tied LM head, L layers, d width, T context: the PaLM/nanoGPT
estimate.) The first ``--warmup`` steps (compilation) are left out of the median.

    python benchmarks/trainer_gpu.py --preset gpt2-124m --batch-size 16 --steps 40
    python benchmarks/trainer_gpu.py --preset tiny --device cpu --steps 6   # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.io import atomic_write_parquet  # noqa: E402
from pipelines.tokenizer import load_tokenizer  # noqa: E402
from schemas.tokens import TOKEN_SHARD_SCHEMA  # noqa: E402
from trainer.config import TrainConfig, model_config  # noqa: E402

#: Dense bf16 peak FLOP/s by device name substring (vendor datasheets, no sparsity).
PEAK_BF16 = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 125e12,
    "4090": 165e12,
}


def peak_flops(device: str, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="gpt2-124m")
    ap.add_argument("--tokenizer", default="cl100k_base")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument(
        "--warmup", type=int, default=10, help="steps left out (compilation, allocator)"
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument(
        "--peak-tflops", type=float, default=None, help="override the bf16 peak (TFLOP/s)"
    )
    args = ap.parse_args()

    from trainer.pretrain import pretrain

    tok = load_tokenizer(args.tokenizer)
    mcfg = model_config(args.preset, tok.vocab_size)
    T = mcfg.block_size
    n_tokens = (args.steps + 2) * args.batch_size * args.grad_accum * (T + 1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ordinary = np.setdiff1d(np.arange(tok.vocab_size), list(tok.special_ids.values()))
        ids = rng.choice(ordinary, n_tokens)
        docs = np.array_split(ids, max(1, n_tokens // 2000))
        for split in ("train", "val"):
            table = pa.table(
                {
                    "id": [str(i) for i in range(len(docs))],
                    "input_ids": [d.tolist() for d in docs],
                    "num_tokens": [len(d) for d in docs],
                },
                schema=TOKEN_SHARD_SCHEMA,
            )
            atomic_write_parquet(tmp / "shards" / split / "shard-00000.parquet", table)
        (tmp / "shards" / "manifest.json").write_text(json.dumps({"tokenizer": args.tokenizer}))
        cfg = TrainConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            grad_accum=args.grad_accum,
            eval_every=0,
            eval_batches=1,
            ckpt_every=10**9,
            device=args.device,
            compile=not args.no_compile,
            progress=False,
            warmup_steps=2,
        )
        pretrain(tmp / "shards", tmp / "run", cfg, preset=args.preset)
        recs = [json.loads(x) for x in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in recs if "tokens_per_s" in r][
        min(args.warmup, args.steps - 1) :
    ]
    tps = statistics.median(rates)
    flops = mcfg.flops_per_token()
    peak = peak_flops(args.device, args.peak_tflops)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"device {name} | preset {args.preset} ({mcfg.num_params() / 1e6:.1f}M params, T={T}, vocab {mcfg.vocab_size})"
        f" | batch {args.batch_size}x{args.grad_accum} | compile {name != 'cpu' and not args.no_compile}"
    )
    print(
        f"tokens/s {tps:,.0f} | model TFLOP/s {flops * tps / 1e12:.2f}"
        + (
            f" | MFU {flops * tps / peak:.1%} of {peak / 1e12:.0f} TFLOP/s bf16"
            if peak
            else " | MFU n/a (no peak)"
        )
    )


if __name__ == "__main__":
    main()
