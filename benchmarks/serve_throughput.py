"""Serving throughput: continuous batching vs one request at a time, over real HTTP.

A `small`-preset GPT (random weights: speed does not depend on what the model learned) with a
BPE trained here is served by a real `tokenmill serve` subprocess, twice: `--max-batch 32`
(continuous batching) and `--max-batch 1` (one sequence at a time: what the server did before).
32 clients (the official `openai` client, one thread each) send a completion request at once,
each for exactly 64 new tokens (`ignore_eos`, greedy). Figures: aggregate generated tokens/s
(all tokens / wall time from the first request to the last answer), per-request latency p50 and
p95; medians over ``--runs`` alternating runs. The batched answers must equal the one-at-a-time
answers (checked).

    python benchmarks/serve_throughput.py [--runs 3] [--requests 32] [--tokens 64] [--append]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import MACHINE, append_bullets  # noqa: E402
from tests.serve_helpers import ServeProcess  # noqa: E402

WORDS = (
    "the of and to in is was for on that with as by at from his her an which it were are this be "
    "river city music history science market water energy people school language garden winter"
).split()


def make_checkpoint(d: Path, preset: str) -> Path:
    """A randomly initialised GPT of ``preset`` with a small BPE trained on generated text."""
    import random

    import torch

    from pipelines.tokenizer import load_tokenizer, train_bpe
    from trainer import checkpoint as ckpt
    from trainer.config import model_config
    from trainer.model import GPT

    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(60)) + "." for _ in range(2000)]
    bpe = d / "bpe.json"
    train_bpe(texts, 1024, bpe)
    tok = load_tokenizer(str(bpe))
    torch.manual_seed(0)
    cfg = model_config(preset, tok.vocab_size)
    model = GPT(cfg)
    path = d / "run" / ckpt.CKPT_NAME
    path.parent.mkdir(parents=True)
    ckpt.save(
        path,
        {
            "kind": "pretrain",
            "step": 0,
            "model_config": cfg.model_dump(),
            "model": model.state_dict(),
            "tokenizer": ckpt.tokenizer_ref(str(bpe)),
        },
    )
    return path.parent


def start_server(run: Path, max_batch: int, log: Path) -> ServeProcess:
    return ServeProcess(
        run,
        log,
        "--model-name",
        "bench",
        "--max-batch",
        str(max_batch),
        "--max-waiting",
        "512",
        timeout=120,
    )


def burst(url: str, requests: int, tokens: int) -> tuple[float, list[float], list[str], int]:
    """All requests at once: (wall s, latencies s, texts, completion tokens)."""
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=600)
    client.completions.create(model="bench", prompt="warm up", max_tokens=2, temperature=0)

    def one(i: int):
        t0 = time.perf_counter()
        r = client.completions.create(
            model="bench",
            prompt=f"{WORDS[i % len(WORDS)]} request {i} is about",
            max_tokens=tokens,
            temperature=0,
            extra_body={"ignore_eos": True},
        )
        return time.perf_counter() - t0, r.choices[0].text, r.usage.completion_tokens

    t0 = time.perf_counter()
    with ThreadPoolExecutor(requests) as pool:
        out = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - t0
    return wall, [o[0] for o in out], [o[1] for o in out], sum(o[2] for o in out)


def engine_burst(run: Path, requests: int, tokens: int, max_batch: int) -> float:
    """The same burst in process, straight into the batching engine (no HTTP): tokens/s."""
    from trainer.batching import SamplingParams, Sequence
    from trainer.inference import LocalModel

    lm = LocalModel.from_checkpoint(run, max_batch=max_batch, max_waiting=512)
    seqs = [
        Sequence(
            lm.tok.encode(f"{WORDS[i % len(WORDS)]} request {i} is about"),
            SamplingParams(max_tokens=tokens),
        )
        for i in range(requests)
    ]
    t0 = time.perf_counter()
    lm.engine.submit(*seqs)
    n = sum(len(s.wait()) for s in seqs)
    dt = time.perf_counter() - t0
    lm.engine.close()
    return n / dt


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--preset", default="small")
    ap.add_argument(
        "--append", action="store_true", help="append the figures to benchmarks/RESULTS.md"
    )
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        run = make_checkpoint(d, args.preset)
        servers = {
            "batched (--max-batch 32)": start_server(run, 32, d / "b.log"),
            "one at a time (--max-batch 1)": start_server(run, 1, d / "s.log"),
        }
        stats: dict[str, dict[str, list[float]]] = {
            k: {"tps": [], "p50": [], "p95": []} for k in servers
        }
        texts: dict[str, list[str]] = {}
        try:
            for r in range(args.runs):
                order = list(servers) if r % 2 == 0 else list(reversed(servers))
                for name in order:
                    wall, lat, out, toks = burst(servers[name].url, args.requests, args.tokens)
                    assert toks == args.requests * args.tokens, toks
                    stats[name]["tps"].append(toks / wall)
                    stats[name]["p50"].append(pct(lat, 0.5))
                    stats[name]["p95"].append(pct(lat, 0.95))
                    texts.setdefault(name, out)
                    print(
                        f"run {r + 1} {name}: {toks / wall:.0f} tok/s, p50 {pct(lat, 0.5):.2f} s, "
                        f"p95 {pct(lat, 0.95):.2f} s",
                        flush=True,
                    )
        finally:
            for s in servers.values():
                s.stop()
        engine = {
            mb: statistics.median(
                engine_burst(run, args.requests, args.tokens, mb) for _ in range(args.runs)
            )
            for mb in (32, 1)
        }
    a, b = list(servers)
    same = texts[a] == texts[b]
    med = {k: {m: statistics.median(v) for m, v in s.items()} for k, s in stats.items()}
    ratio = med[a]["tps"] / med[b]["tps"]
    lines = [
        f"`{args.preset}` preset (random weights, 1k BPE), {args.requests} concurrent completion requests x "
        f"{args.tokens} new tokens (greedy, ignore_eos), official openai client over HTTP to "
        f"`tokenmill serve`; median of {args.runs} alternating runs"
    ]
    for k, m in med.items():
        lines.append(
            f"{k}: **{m['tps']:.0f} tokens/s** aggregate, latency p50 {m['p50']:.2f} s, "
            f"p95 {m['p95']:.2f} s"
        )
    lines.append(
        f"batched / one-at-a-time: **{ratio:.1f}x** tokens/s (target >= 4x); answers identical: {same}"
    )
    lines.append(
        f"the engine alone, in process (no HTTP, no stop ids): {engine[32]:.0f} vs {engine[1]:.0f} "
        f"tokens/s = {engine[32] / engine[1]:.1f}x"
    )
    for ln in lines:
        print(ln)
    if args.append:
        append_bullets(
            "Serving throughput: continuous batching vs one at a time "
            "(`benchmarks/serve_throughput.py`)",
            lines,
            MACHINE,
        )
    if not same:
        sys.exit("batched answers differ from one-at-a-time answers")


if __name__ == "__main__":
    main()
