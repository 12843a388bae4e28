"""`sft` generator: worked tasks (work first, correct answer last), identity, imports, LLM generation."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from pipelines.synth.common import read_conversations
from pipelines.synth.identity import ModelCard, identity_conversations
from pipelines.synth.imports import import_oasst, import_openai_jsonl, import_sharegpt
from pipelines.synth.sft import SFTConfig, run_sft
from pipelines.synth.tasks import addition, count_letter, multiplication, problems, spell
from pipelines.verify import extract_answer, is_correct
from schemas.conversations import CONVERSATION_SCHEMA
from tests.test_synth_support import OpenAIServer, last_user


@pytest.mark.parametrize("kind", ["arithmetic", "counting", "spelling", "word_problem", "equation"])
def test_worked_solutions_are_correct_and_answer_comes_last(kind):
    ps = problems(kind, 200, seed=3)
    assert len(ps) == 200 and len({p.prompt for p in ps}) == 200
    for p in ps:
        sol = p.solution
        assert is_correct(sol, p.answer), (p.prompt, sol)
        lines = sol.splitlines()
        assert lines[-1] == f"Answer: {p.answer}"
        assert len(lines) >= 3  # there IS work before the answer
        assert all(extract_answer(line) is None for line in lines[:-1]), (
            "an answer line before the work"
        )


def test_arithmetic_steps_compute_the_true_result():
    rng = random.Random(0)
    for _ in range(300):
        a, b = rng.randint(0, 10**7), rng.randint(0, 10**5)
        assert addition(a, b).answer == str(a + b)
        assert multiplication(a, b).answer == str(a * b)
    p = count_letter("strawberry", "r")
    assert p.answer == "3" and p.steps.count("-> match") == 3
    assert 'in the word "strawberry"' in p.prompt
    assert 'in the phrase "red barn"' in count_letter("red barn", "r").prompt  # not a "word"
    assert spell("cat", backwards=True).answer == "t-a-c"


def test_identity_follows_the_model_card():
    card = ModelCard(name="Zorblax", maker="Acme Labs", knowledge_cutoff="March 2031")
    rows = identity_conversations(card, 60, seed=1)
    assert len(rows) == 60 and len({r["messages"][0]["content"] for r in rows}) >= 40
    answers = " ".join(r["messages"][1]["content"] for r in rows)
    assert "Zorblax" in answers and "Acme Labs" in answers and "March 2031" in answers
    assert "Millie" not in answers
    assert rows == identity_conversations(card, 60, seed=1)  # deterministic
    assert rows != identity_conversations(card, 60, seed=2)


def test_imports_of_common_formats(tmp_path):
    oa = tmp_path / "openai.jsonl"
    oa.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {
                    "messages": [
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Hi"},
                        {"role": "assistant", "content": "Hello!"},
                    ]
                },
                {"messages": [{"role": "user", "content": "unanswered"}]},
                {"nothing": 1},
            ]
        )
    )
    rows, rep = import_openai_jsonl(oa)
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant"]
    assert (
        rep.read == 3
        and rep.imported == 1
        and rep.skipped == {"no_final_assistant_turn": 1, "no_messages": 1}
    )

    sg = tmp_path / "sharegpt.json"
    sg.write_text(
        json.dumps(
            [
                {
                    "id": "x",
                    "conversations": [
                        {"from": "human", "value": "2+2?"},
                        {"from": "gpt", "value": "4"},
                    ],
                }
            ]
        )
    )
    rows, _ = import_sharegpt(sg)
    assert rows[0]["messages"] == [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]

    tree = {
        "message_tree_id": "t1",
        "prompt": {
            "message_id": "p",
            "role": "prompter",
            "text": "Capital of France?",
            "replies": [
                {"message_id": "a2", "role": "assistant", "text": "Lyon", "rank": 1, "replies": []},
                {
                    "message_id": "a1",
                    "role": "assistant",
                    "text": "Paris",
                    "rank": 0,
                    "replies": [
                        {
                            "message_id": "p2",
                            "role": "prompter",
                            "text": "Sure?",
                            "replies": [
                                {
                                    "message_id": "b1",
                                    "role": "assistant",
                                    "text": "Maybe",
                                    "rank": 1,
                                },
                                {
                                    "message_id": "b0",
                                    "role": "assistant",
                                    "text": "Yes.",
                                    "rank": 0,
                                },
                            ],
                        }
                    ],
                },
            ],
        },
    }
    (tmp_path / "trees.jsonl").write_text(json.dumps(tree))
    rows, _ = import_oasst(tmp_path / "trees.jsonl")
    assert [m["content"] for m in rows[0]["messages"]] == [
        "Capital of France?",
        "Paris",
        "Sure?",
        "Yes.",
    ]
    # the same tree as flat oasst1 messages (parent ids), including an unanswered leaf prompt
    flat = [
        {"message_id": "p", "parent_id": None, "role": "prompter", "text": "Q"},
        {"message_id": "a", "parent_id": "p", "role": "assistant", "text": "worse", "rank": 1},
        {"message_id": "b", "parent_id": "p", "role": "assistant", "text": "better", "rank": 0},
        {
            "message_id": "c",
            "parent_id": "b",
            "role": "prompter",
            "text": "follow-up nobody answered",
        },
    ]
    (tmp_path / "flat.jsonl").write_text("\n".join(json.dumps(m) for m in flat))
    rows, _ = import_oasst(tmp_path / "flat.jsonl")
    assert [m["content"] for m in rows[0]["messages"]] == ["Q", "better"]


def test_run_sft_writes_dataset_and_stats_deterministically(tmp_path):
    cfg = dict(identity=30, arithmetic=40, counting=40, spelling=20, seed=7)
    stats = run_sft(SFTConfig(output=str(tmp_path / "a"), **cfg))
    run_sft(SFTConfig(output=str(tmp_path / "b"), **cfg))
    a = pq.read_table(tmp_path / "a" / "data" / "part-00000.parquet")
    assert a.schema.equals(CONVERSATION_SCHEMA)
    assert a.equals(pq.read_table(tmp_path / "b" / "data" / "part-00000.parquet"))
    saved = json.loads((tmp_path / "a" / "stats.json").read_text())
    assert (
        saved["by_kind"]
        == {"arithmetic": 40, "counting": 40, "identity": 30, "spelling": 20}
        == stats["by_kind"]
    )
    assert sum(saved["tokens"]["histogram"].values()) == 130
    prompts = [r["messages"][0]["content"] for r in a.to_pylist()]
    assert len(prompts) == len(set(prompts))


def test_llm_generated_conversations_through_a_real_endpoint(tmp_path):
    def responder(body):
        text = last_user(body)
        if text.startswith("Imagine you are"):
            subject = text.split("when it comes to ", 1)[1].split(".")[0]
            return f"Why is {subject} interesting?"
        return f"Because of reasons ({text})."

    with OpenAIServer(responder) as server:
        cfg = SFTConfig(
            output=str(tmp_path / "g"),
            identity=0,
            arithmetic=0,
            counting=0,
            spelling=0,
            generated=6,
            topics=["volcanoes", "tides", "volcanoes"],
            llm={"base_url": server.base_url, "cache_dir": str(tmp_path / "cache")},
        )
        stats = run_sft(cfg)
        rows = read_conversations(tmp_path / "g")
        # an endpoint that ignores the prompt variation gives one question per topic: the
        # duplicates are dropped before answering and the shortfall is reported
        assert stats["generated"]["generated"] == 2 and stats["generated"]["shortfall"] == 4
        assert {r["messages"][0]["content"] for r in rows} == {
            "Why is volcanoes interesting?",
            "Why is tides interesting?",
        }
        n = len(server.requests)
        run_sft(cfg.model_copy(update={"output": str(tmp_path / "g2")}))
        assert len(server.requests) == n  # the re-run is served from the cache


def test_cli_sft(tmp_path):
    out = tmp_path / "cli"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "synth",
            "sft",
            "--output",
            str(out),
            "--identity",
            "5",
            "--arithmetic",
            "5",
            "--counting",
            "0",
            "--spelling",
            "0",
            "--model-name",
            "Quill",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["conversations"] == 10
    rows = read_conversations(out)
    assert any("Quill" in r["messages"][1]["content"] for r in rows if r["kind"] == "identity")
