"""LLM-generated SFT through a real loopback OpenAI-compatible endpoint that honours seeds:
N requests give N distinct conversations, near duplicates are removed with MinHash, shortfalls
are reported; identity and arithmetic families reach the counts asked for."""

from __future__ import annotations

import hashlib
import json
import random
import re

from pipelines.llm import LLMConfig, make_llm, request_seeds
from pipelines.sandbox import run_python
from pipelines.synth.common import read_conversations
from pipelines.synth.generated import GeneratedConfig, generate_conversations
from pipelines.synth.identity import ModelCard, identity_conversations, max_identity_conversations
from pipelines.synth.neardup import NearDuplicateFilter
from pipelines.synth.sft import SFTConfig, run_sft
from pipelines.synth.tasks import problems
from pipelines.verify import extract_answer, is_correct
from tests.test_synth_support import OpenAIServer, last_user

BANK = [
    "How long should I rest a steak?",
    "What is the best oil for frying?",
    "Why does bread dough need kneading?",
    "How do I keep rice from sticking?",
    "Can I freeze fresh basil?",
    "What makes a sauce split?",
    "How do I sharpen a kitchen knife?",
    "Is cast iron safe for tomatoes?",
    "How do I caramelize onions quickly?",
    "What can I use instead of buttermilk?",
    "How long do cooked beans keep in the fridge?",
    "Why is my risotto gluey?",
    "How do I stop avocado turning brown?",
    "What is blanching for?",
    "How much salt goes in pasta water?",
    "Can I bake bread without yeast?",
    "How do I fix a too-salty soup?",
    "What temperature kills bacteria in chicken?",
    "How can I make pasta dough without eggs?",
    "Why do my cookies spread too much?",
    "Which herbs go with lamb?",
    "How do I poach an egg?",
]


def seeded_writer(body: dict) -> str:
    """Like a real sampler that honours `seed`: same prompt + same seed = same text."""
    text = last_user(body)
    if text.startswith("Imagine you are"):
        h = int(hashlib.sha256(f"{text}|{body['seed']}".encode()).hexdigest(), 16)
        return BANK[h % len(BANK)]
    if text.startswith("Here is a conversation"):
        return "Thanks! Could you give me one concrete example?"
    return f"Here is a careful answer to: {text[:60]}"


def _sft(tmp_path, server, n, name="g", **gen):
    cfg = SFTConfig(
        output=str(tmp_path / name),
        identity=0,
        arithmetic=0,
        counting=0,
        spelling=0,
        generated=n,
        topics=["cooking"],
        generation=gen,
        llm={"base_url": server.base_url, "cache_dir": str(tmp_path / "cache")},
    )
    return run_sft(cfg), read_conversations(tmp_path / name)


def test_request_seeds_are_distinct_and_reproducible():
    s = request_seeds(0, 500, "question")
    assert len(set(s)) == 500 and s == request_seeds(0, 500, "question")
    assert s != request_seeds(1, 500, "question") and s != request_seeds(0, 500, "answer")


def test_every_question_request_has_its_own_seed_and_prompt(tmp_path):
    with OpenAIServer(seeded_writer) as server:
        stats, rows = _sft(tmp_path, server, 10)
        qreqs = [r for r in server.requests if last_user(r).startswith("Imagine you are")]
        assert len({r["seed"] for r in qreqs}) == len(qreqs)
        assert len({last_user(r) for r in qreqs}) >= 8  # persona/facet/difficulty/format variation
        assert stats["generated"]["generated"] == 10 and len(rows) == 10
        firsts = [r["messages"][0]["content"] for r in rows]
        assert len(set(firsts)) == 10
        assert stats["generated"]["multi_turn"] >= 1
        multi = [r for r in rows if len(r["messages"]) == 4]
        assert multi and [m["role"] for m in multi[0]["messages"]] == [
            "user",
            "assistant",
            "user",
            "assistant",
        ]
        meta = json.loads(rows[0]["meta"])
        assert {"persona", "facet", "difficulty", "format", "topic"} <= set(meta)


def test_near_duplicate_questions_are_removed_with_minhash(tmp_path):
    variants = [
        "How do I boil an egg?",
        "How do I boil an egg perfectly?",
        "how do I boil an egg",
        "What spices go well with lentils?",
        "What spices go well with lentils?!",
    ]

    def writer(body):
        text = last_user(body)
        if text.startswith("Imagine you are"):
            return variants[body["seed"] % len(variants)]
        return "An answer."

    f = NearDuplicateFilter()
    assert [f.add(v) for v in variants] == [True, False, False, True, False]
    with OpenAIServer(writer) as server:
        llm = make_llm(LLMConfig(base_url=server.base_url))
        rows, fig = generate_conversations(
            llm, 6, 0, ["cooking"], cfg=GeneratedConfig(followup_rate=0, max_rounds=3)
        )
    assert (
        len(rows) == 2
        and fig["generated"] == 2
        and fig["shortfall"] == 4
        and fig["duplicate_questions"] >= 3
    )
    assert (
        fig["rounds"] == 3 and fig["question_requests"] > 6
    )  # refill rounds were tried before giving up


def test_shortfall_is_reported_never_silent(tmp_path, capsys):
    with OpenAIServer(
        lambda b: "Is salt a spice?" if last_user(b).startswith("Imagine") else "No."
    ) as server:
        stats, rows = _sft(tmp_path, server, 5, max_rounds=2)
    g = stats["generated"]
    assert (
        len(rows) == 1
        and g["shortfall"] == 4
        and g["rounds"] == 2
        and g["question_requests"] == 7 + 5
    )
    assert "generated: 1 of 5 conversations" in capsys.readouterr().err
    saved = json.loads((tmp_path / "g" / "stats.json").read_text())
    assert saved["generated"]["shortfall"] == 4


def test_rerun_is_served_from_cache(tmp_path):
    with OpenAIServer(seeded_writer) as server:
        _sft(tmp_path, server, 6)
        n = len(server.requests)
        _sft(tmp_path, server, 6, name="again")
        assert len(server.requests) == n


def test_identity_gives_as_many_distinct_as_asked_or_warns(tmp_path, capsys):
    rows = identity_conversations(ModelCard(name="Quill"), 200, 0)
    users = {tuple(m["content"] for m in r["messages"] if m["role"] == "user") for r in rows}
    assert len(rows) == 200 == len(users)
    assert any(len(r["messages"]) == 4 for r in rows)
    stats = run_sft(
        SFTConfig(output=str(tmp_path / "i"), identity=200, arithmetic=0, counting=0, spelling=0)
    )
    assert stats["by_kind"] == {"identity": 200}
    too_many = max_identity_conversations() + 10
    stats = run_sft(
        SFTConfig(
            output=str(tmp_path / "j"), identity=too_many, arithmetic=0, counting=0, spelling=0
        )
    )
    assert stats["identity"]["generated"] == max_identity_conversations()
    assert f"at most {max_identity_conversations()}" in capsys.readouterr().err


def test_arithmetic_covers_four_operations_fractions_decimals_and_word_problems():
    ps = problems("arithmetic", 400, 0)
    assert len(ps) == 400
    prompts = " ".join(p.prompt for p in ps)
    for op in (" + ", " - ", " * ", " / ", " x "):
        assert op in prompts, op
    assert re.search(r"\d+/\d+ [-+x÷] \d+/\d+", prompts) and re.search(
        r"\d+\.\d+ [-+x] \d+\.\d+", prompts
    )
    assert any("$" in p.prompt for p in ps) and any("friends" in p.prompt for p in ps)
    rng = random.Random(0)
    for p in ps:
        assert is_correct(p.solution, p.answer)
        lines = p.solution.splitlines()
        assert len(lines) >= 3 and extract_answer(lines[-1]) == p.answer  # work first, answer last
        assert sum(line.startswith("Answer:") for line in lines) == 1
    for p in rng.sample(ps, 12):  # the tool-use code computes the same answer
        assert run_python(p.code).output.strip() == p.answer, p.code


def test_config_typo_is_a_one_line_error_not_a_silent_default(tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"generation": {"folowup_rate": 0.9}}))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "synth",
            "sft",
            "--output",
            str(tmp_path / "o"),
            "--config",
            str(cfg),
        ],
        capture_output=True,
        text=True,
    )
    assert (
        r.returncode == 1 and "generation.folowup_rate" in r.stderr and "followup_rate" in r.stderr
    )
    assert not (tmp_path / "o").exists()


def test_task_family_shortfall_is_reported(tmp_path, capsys):
    # spelling draws from a fixed word list: 2 x len(WORDS) distinct problems at most
    from pipelines.synth.tasks import WORDS

    stats = run_sft(
        SFTConfig(
            output=str(tmp_path / "s"),
            identity=0,
            arithmetic=0,
            counting=0,
            spelling=3 * len(WORDS),
        )
    )
    assert stats["shortfall"]["spelling"] == 3 * len(WORDS) - stats["by_kind"]["spelling"] > 0
    assert "spelling:" in capsys.readouterr().err


def test_rewrite_with_fewer_rows_leaves_no_stale_shards(tmp_path):
    from pipelines.synth.common import write_conversations

    rows = identity_conversations(ModelCard(), 5, 0)
    write_conversations(tmp_path, rows, shard_rows=2)
    assert len(read_conversations(tmp_path)) == 5
    write_conversations(tmp_path, rows[:1], shard_rows=2)
    assert [r["id"] for r in read_conversations(tmp_path)] == [rows[0]["id"]]
