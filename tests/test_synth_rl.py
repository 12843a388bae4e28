"""`rl` prompts (verifiable, split, decontaminated), `prefs` pairs, and the `mix` the trainer reads."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from pipelines.synth.common import read_conversations
from pipelines.synth.decontam import NgramIndex
from pipelines.synth.mix import MixConfig, run_mix
from pipelines.synth.rl import PrefsConfig, RLConfig, rl_prompts, run_prefs, run_rl
from pipelines.synth.sft import SFTConfig, run_sft
from pipelines.verify import is_correct
from schemas.conversations import PREFERENCE_SCHEMA, RL_PROMPT_SCHEMA
from tests.test_synth_support import OpenAIServer, last_user


def test_rl_prompts_split_and_decontaminated(tmp_path):
    run_sft(
        SFTConfig(output=str(tmp_path / "sft"), identity=0, arithmetic=0, counting=50, spelling=0)
    )
    sft_prompts = [r["messages"][0]["content"] for r in read_conversations(tmp_path / "sft")]
    stats = run_rl(
        RLConfig(
            output=str(tmp_path / "rl"),
            word_problems=100,
            counting=300,
            equations=100,
            test_fraction=0.2,
            decontaminate=[str(tmp_path / "sft")],
        )
    )
    train = pq.read_table(tmp_path / "rl" / "train").to_pylist()
    test = pq.read_table(tmp_path / "rl" / "test").to_pylist()
    assert pq.read_schema(next((tmp_path / "rl" / "test").glob("*.parquet"))).equals(
        RL_PROMPT_SCHEMA
    )
    assert (
        stats["train"] == len(train)
        and stats["test"] == len(test)
        and 0.1 < len(test) / (len(train) + len(test)) < 0.3
    )
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    # no test prompt repeats a training question (SFT counting questions included)
    for r in test:
        assert not any(p in r["prompt"] for p in sft_prompts)
    removed = stats["decontamination"]["test_removed"]
    assert (
        stats["test"] + removed + stats["train"] == stats["prompts"] - stats["duplicates_dropped"]
    )


def test_ngram_decontamination_flags_copies_not_templates():
    idx = NgramIndex(["Alice has 12 apples and buys 3 packs with 7 apples in each pack"])
    assert idx.contaminated(
        "Q: Alice has 12 apples and buys 3 packs with 7 apples in each pack. Answer?"
    )
    assert not idx.contaminated("Bob has 40 pencils and buys 9 packs with 2 pencils in each pack")


def test_prefs_synthetic_and_sampled(tmp_path):
    stats = run_prefs(PrefsConfig(output=str(tmp_path / "syn"), n_prompts=30))
    pairs = pq.read_table(tmp_path / "syn" / "train").to_pylist()
    assert stats["pairs"] == 30 and pq.read_schema(
        next((tmp_path / "syn" / "train").glob("*.parquet"))
    ).equals(PREFERENCE_SCHEMA)
    for p in pairs:
        assert (
            p["chosen"] != p["rejected"]
            and len(p["chosen"]) > len(p["rejected"])
            or "Answer:" in p["rejected"]
        )
    run_rl(
        RLConfig(
            output=str(tmp_path / "rl"),
            word_problems=20,
            counting=0,
            equations=20,
            test_fraction=0.0,
        )
    )
    answers = {
        r["prompt"]: r["answer"] for r in pq.read_table(tmp_path / "rl" / "train").to_pylist()
    }

    def policy(body):  # right on even seeds, wrong on odd ones
        ans = answers[last_user(body)]
        return f"Working...\nAnswer: {ans if body['seed'] % 2 == 0 else ans + '1'}"

    with OpenAIServer(policy) as server:
        stats = run_prefs(
            PrefsConfig(
                output=str(tmp_path / "s"),
                prompts=str(tmp_path / "rl"),
                samples=2,
                llm={"base_url": server.base_url},
            )
        )
        assert len(server.requests) == 2 * len(answers)
    pairs = pq.read_table(tmp_path / "s" / "train").to_pylist()
    assert stats["pairs"] == len(answers) and stats["sample_accuracy"] == 0.5
    for p in pairs:
        assert is_correct(p["chosen"], answers[p["prompt"]]) and not is_correct(
            p["rejected"], answers[p["prompt"]]
        )


def test_mix_combines_caps_and_decontaminates(tmp_path):
    run_sft(
        SFTConfig(output=str(tmp_path / "a"), identity=20, arithmetic=30, counting=30, spelling=0)
    )
    run_sft(
        SFTConfig(
            output=str(tmp_path / "b"), identity=20, arithmetic=0, counting=0, spelling=10, seed=1
        )
    )
    run_rl(
        RLConfig(
            output=str(tmp_path / "rl"),
            word_problems=0,
            counting=200,
            equations=0,
            test_fraction=0.5,
        )
    )
    stats = run_mix(
        MixConfig(
            output=str(tmp_path / "m"),
            inputs=[{"path": str(tmp_path / "a")}, {"path": str(tmp_path / "b"), "max_rows": 15}],
            decontaminate=[str(tmp_path / "rl")],
        )
    )
    assert stats["inputs"] == {str(tmp_path / "a"): 80, str(tmp_path / "b"): 15}
    rows = read_conversations(tmp_path / "m")
    assert len(rows) == stats["conversations"] == stats["train"] + stats["val"]
    assert (
        stats["conversations"]
        == 95 - stats["duplicates_dropped"] - stats["decontamination"]["removed"]
    )
    test_prompts = [r["prompt"] for r in pq.read_table(tmp_path / "rl" / "test").to_pylist()]
    index = NgramIndex([p.split(" Show your work")[0] for p in test_prompts])
    assert not any(index.contaminated(r["messages"][0]["content"]) for r in rows)
    assert json.loads((tmp_path / "m" / "stats.json").read_text())["by_kind"]


def test_mix_is_what_the_trainer_reads(tmp_path):
    from pipelines.tokenizer import load_tokenizer
    from trainer.data import ConversationBatches, read_rows

    run_sft(
        SFTConfig(output=str(tmp_path / "a"), identity=10, arithmetic=10, counting=10, spelling=10)
    )
    run_mix(
        MixConfig(
            output=str(tmp_path / "m"), inputs=[{"path": str(tmp_path / "a")}], val_fraction=0.1
        )
    )
    rows = read_rows(tmp_path / "m", "train", ["messages"])
    assert len(rows) == 36 and len(read_rows(tmp_path / "m", "val", ["messages"])) == 4
    batches = ConversationBatches(rows, load_tokenizer("cl100k_base"), batch_size=4, seq_len=256)
    x, y = batches.next_batch()
    assert x.shape[0] == 4 and (y != -100).any()


def test_synthetic_pairs_reject_only_wrong_answers_and_differ_in_the_work(tmp_path):
    stats = run_prefs(PrefsConfig(output=str(tmp_path / "p"), n_prompts=150))
    rows = pq.read_table(tmp_path / "p" / "train").to_pylist()
    answers = {
        r["prompt"]: r["answer"]
        for r in rl_prompts(RLConfig(output="x", word_problems=50, counting=50, equations=50))
    }
    assert len(rows) == 150
    for r in rows:
        assert is_correct(r["chosen"], answers[r["prompt"]])
        assert not is_correct(
            r["rejected"], answers[r["prompt"]]
        )  # a rejected answer is never right
        # never the same work with only the final line changed
        assert r["chosen"].splitlines()[:-1] != r["rejected"].splitlines()[:-1]
    assert set(stats["corruptions"]) == {"synthetic:no_work_wrong_answer", "synthetic:slip_in_step"}
