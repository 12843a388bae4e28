"""The HTTP LLM backend against a real `tokenmill serve` subprocess (the project's own model over
OpenAI-compatible HTTP): chat and completion answers equal the in-process model's, sampling is
seeded per request, and the disk cache makes a re-run cost zero requests (even with the server
gone)."""

from __future__ import annotations

import os
import signal

import httpx
import pytest

from pipelines.llm import LLMConfig, LLMError, OpenAICompatibleLLM, make_llm
from tests.serve_helpers import ServeProcess
from tests.test_trainer_data import tiny_checkpoint

CONVS = [
    [{"role": "user", "content": "What is 2+3?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "The number 12 is"}],
    [
        {"role": "user", "content": "Count to four."},
        {"role": "assistant", "content": "1 2 3 4"},
        {"role": "user", "content": "Again, please."},
    ],
]
PROMPTS = ["The number 4 is", "It comes after"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(checkpoint path, base URL): `tokenmill serve` on a free loopback port; killed at the end."""
    d = tmp_path_factory.mktemp("serve")
    ckpt = tiny_checkpoint(d, steps=10, block_size=128) / "checkpoint.pt"  # prompts fit: no 400
    with ServeProcess(
        ckpt, d / "server.log", "--model-name", "tokenmill", env={"OMP_NUM_THREADS": "1"}
    ) as srv:
        yield ckpt, f"{srv.url}/v1", srv.proc


def _calls(llm) -> list[str]:
    """Everything a generator asks: greedy chats, seeded samples (n=2) and completions."""
    return (
        llm.chat(CONVS, temperature=0.0, max_tokens=12)
        + llm.chat(CONVS, temperature=1.0, max_tokens=12, n=2, seed=7)
        + llm.complete(PROMPTS, temperature=0.0, max_tokens=8)
        + llm.complete(PROMPTS, temperature=1.0, max_tokens=8, n=2, seed=3)
    )


N_REQUESTS = len(CONVS) * 3 + len(PROMPTS) * 3


def test_preference_samples_from_the_served_model(served, tmp_path):
    """`synth samples --llm-url` against `tokenmill serve`: k seeded draws per prompt, ranked by
    the verifier and exported as pairs (runs before the test below, which stops the server)."""
    import pyarrow as pa

    from pipelines.io import atomic_write_parquet
    from pipelines.rank.auto import verifier_ranking
    from pipelines.rank.db import RankStore
    from pipelines.rank.export import export_pairs
    from pipelines.synth.samples import SamplesConfig, read_samples, run_samples

    _, base, _ = served
    atomic_write_parquet(
        tmp_path / "p" / "train" / "part-00000.parquet",
        pa.Table.from_pylist(
            [
                {"prompt": "What is 2+3?", "answer": "5"},
                {"prompt": "The number 12 is", "answer": "12"},
            ]
        ),
    )
    stats = run_samples(
        SamplesConfig(
            output=str(tmp_path / "s"),
            prompts=str(tmp_path / "p"),
            k=3,
            max_tokens=8,
            llm=LLMConfig(base_url=base, max_retries=0),
        )
    )
    assert stats["responses"] == 6 and stats["llm_requests"] == 6
    rows = read_samples(tmp_path / "s")
    assert all(
        len({r["text"] for r in row["responses"]}) > 1 for row in rows
    )  # seeded draws differ
    store = RankStore(f"sqlite:///{tmp_path / 'r.sqlite'}")
    store.load_samples(rows)
    for s in store.sets():
        store.submit(s["id"], "verifier", verifier_ranking(s))
    assert export_pairs(store, tmp_path / "pairs")["rankings"] == 2


def test_http_backend_against_tokenmill_serve(served, tmp_path):
    ckpt, base, proc = served
    models = httpx.get(f"{base}/models", timeout=10).json()
    assert models["object"] == "list" and models["data"][0]["id"]

    cfg = LLMConfig(
        base_url=base, cache_dir=str(tmp_path / "cache"), max_concurrency=3, max_retries=0
    )
    http = make_llm(cfg)
    assert isinstance(http, OpenAICompatibleLLM)
    answers = _calls(http)
    assert http.requests == N_REQUESTS and http.cache_hits == 0
    assert len(answers) == N_REQUESTS and all(isinstance(a, str) for a in answers)
    assert any(a.strip() for a in answers)  # the model really wrote something

    # what came over HTTP is what the same checkpoint answers in process (same seeds, same text)
    local = make_llm(LLMConfig(backend="local", checkpoint=str(ckpt)))
    assert _calls(local) == answers
    sampled = answers[len(CONVS) : 3 * len(CONVS)]
    assert len(set(sampled)) > 1  # seeds differ per sample: sampling really samples
    http.close()

    # a re-run reads every answer from the cache: zero requests reach the server
    again = make_llm(cfg)
    assert _calls(again) == answers
    assert again.requests == 0 and again.cache_hits == N_REQUESTS
    again.close()

    # ...which holds with the server gone; an uncached request then fails loudly
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)
    offline = make_llm(cfg)
    assert _calls(offline) == answers and offline.requests == 0
    with pytest.raises(LLMError, match="giving up"):
        offline.chat([[{"role": "user", "content": "not cached"}]], max_tokens=4)
    offline.close()
