"""The continuous-batching engine: its batched forward (per-row positions, per-row key masks)
computes what ``GPT.forward`` computes; a request's greedy output inside a busy batch equals its
output served alone, token for token; seeded sampling does not depend on the batch; the queue is
bounded; cancelled sequences leave at the next token boundary."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from trainer.batching import Engine, QueueFull, SamplingParams, Sequence
from trainer.config import ModelConfig
from trainer.model import GPT
from trainer.sample import generate

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    m = GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=24, vocab_size=64)).eval()
    with torch.no_grad():  # sharper than the init's near-uniform logits: fewer near-ties
        m.ln_f.weight.fill_(3.0)
    return m


def _naive_greedy(model: GPT, prompt: list[int], n: int) -> list[int]:
    """Full recompute with GPT.forward every token, no cache (the reference); the same window rule
    as the engine: a full window restarts from its last half."""
    bs = model.cfg.block_size
    window, out = prompt[-(bs - 1) :], []
    for _ in range(n):
        with torch.no_grad():
            tok = int(model(torch.tensor([window]))[0, -1].argmax())
        out.append(tok)
        window = (prompt + out)[-(bs // 2) :] if len(window) >= bs else window + [tok]
    return out


def _prompt(i: int, length: int) -> list[int]:
    return [(7 * i + 3 * j) % 60 + 1 for j in range(length)]


def test_engine_matches_gpt_forward_and_the_lockstep_sampler(model):
    engine = Engine(model, max_batch=4)
    try:
        for i, (plen, n) in enumerate(
            [(5, 10), (1, 40), (23, 30), (30, 8)]
        ):  # 40 > block: window rolls
            p = _prompt(i, plen)
            got = engine.generate(p, SamplingParams(max_tokens=n))
            assert got == _naive_greedy(model, p, n), (plen, n)
            assert got == generate(model, p, 1, n)[0]
    finally:
        engine.close()


def test_sequences_admitted_together_each_answer_as_alone(model):
    engine = Engine(model, max_batch=8)
    prompts = [_prompt(i, n) for i, n in enumerate([1, 9, 4, 23, 2])]  # prefilled together, padded
    seqs = [Sequence(p, SamplingParams(max_tokens=30)) for p in prompts]
    engine.submit(*seqs)
    assert [s.wait(60) for s in seqs] == [_naive_greedy(model, p, 30) for p in prompts]
    engine.close()


def test_greedy_inside_a_busy_batch_equals_served_alone(model):
    target = _prompt(99, 9)
    alone_engine = Engine(model, max_batch=8)
    alone = alone_engine.generate(target, SamplingParams(max_tokens=30))
    alone_engine.close()

    engine = Engine(model, max_batch=8)
    started = threading.Event()
    others = [
        Sequence(
            _prompt(i, 3 + 2 * i),
            SamplingParams(max_tokens=20 + 5 * i, temperature=1.0, seed=i),
            listener=lambda ev: started.set(),
        )
        for i in range(6)
    ]
    engine.submit(*others)
    started.wait(10)  # the target joins a batch that is already decoding
    seq = Sequence(target, SamplingParams(max_tokens=30))
    engine.submit(seq)
    busy = seq.wait(60)
    for o in others:
        o.wait(60)
    engine.close()
    assert busy == alone
    assert engine.max_active_seen == 7  # it really ran inside a batch of 7


def test_seeded_sampling_does_not_depend_on_the_batch(model):
    params = SamplingParams(max_tokens=15, temperature=1.0, top_k=20, top_p=0.9, seed=1234)
    p = _prompt(5, 6)
    e1 = Engine(model)
    alone = e1.generate(p, params)
    e1.close()
    e2 = Engine(model)
    crowd = [
        Sequence(_prompt(i, 4), SamplingParams(max_tokens=15, temperature=1.0, seed=i))
        for i in range(5)
    ]
    seq = Sequence(p, params)
    e2.submit(*crowd[:2], seq, *crowd[2:])
    assert seq.wait(60) == alone
    e2.close()
    other = Engine(model)
    assert other.generate(p, SamplingParams(max_tokens=15, temperature=1.0, seed=99)) != alone
    other.close()


def test_stop_ids_logprobs_banned_and_zero_tokens(model):
    engine = Engine(model)
    p = _prompt(1, 5)
    free = engine.generate(p, SamplingParams(max_tokens=10))
    stopped = engine.generate(p, SamplingParams(max_tokens=10, stop_ids=(free[2],)))
    assert stopped == free[: free.index(free[2]) + 1]  # ends with (and includes) the stop id
    assert free[0] not in engine.generate(p, SamplingParams(max_tokens=10, banned_ids=(free[0],)))
    assert engine.generate(p, SamplingParams(max_tokens=0)) == []
    events = []
    seq = Sequence(p, SamplingParams(max_tokens=3, logprobs=2), listener=events.append)
    engine.submit(seq)
    seq.wait(30)
    toks = [e for e in events if hasattr(e, "token")]
    assert [e.token for e in toks] == free[:3]
    for e in toks:  # greedy: the chosen token is the most likely one
        assert e.logprob <= 0 and e.top[0][0] == e.token and e.top[0][1] == pytest.approx(e.logprob)
        assert len(e.top) == 2 and e.top[1][1] <= e.top[0][1]
    assert events[-1].reason == "length"
    engine.close()


def test_queue_is_bounded_and_cancel_frees_the_slot(model):
    engine = Engine(model, max_batch=1, max_waiting=1)
    gate = threading.Event()
    first = Sequence(
        _prompt(0, 3), SamplingParams(max_tokens=10_000), listener=lambda ev: gate.set()
    )
    engine.submit(first)
    gate.wait(10)
    second = Sequence(_prompt(1, 3), SamplingParams(max_tokens=5))
    engine.submit(second)  # waits: the only slot is taken
    with pytest.raises(QueueFull):
        engine.submit(Sequence(_prompt(2, 3), SamplingParams(max_tokens=5)))
    engine.cancel(first)  # e.g. its client disconnected: it leaves at the next token boundary
    assert len(second.wait(30)) == 5
    first.wait(30)
    assert first.finish.reason == "cancelled" and len(first.out) < 10_000
    engine.close()


def test_cache_grows_with_demand_and_the_idle_thread_ends(model, monkeypatch):
    import trainer.batching as batching

    monkeypatch.setattr(batching, "IDLE_EXIT_S", 0.2)
    engine = Engine(model, max_batch=8)
    p = _prompt(3, 4)
    first = engine.generate(p, SamplingParams(max_tokens=6))
    assert engine._cache.slots == 1  # one request: one slot, not max_batch
    seqs = [Sequence(_prompt(i, 4), SamplingParams(max_tokens=6)) for i in range(5)]
    engine.submit(*seqs)
    for s in seqs:
        s.wait(30)
    assert 5 <= engine._cache.slots <= 8
    deadline = time.monotonic() + 10
    while engine._thread is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine._thread is None and engine._cache is None  # idle: thread gone, memory freed
    assert engine.generate(p, SamplingParams(max_tokens=6)) == first  # and it starts again
    with pytest.raises(ValueError, match="prompt ids"):
        engine.submit(Sequence([model.cfg.vocab_size], SamplingParams(max_tokens=2)))
    engine.close()
