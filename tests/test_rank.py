"""Preferences as the seed material describes: k sampled responses per prompt (real loopback
endpoint), ranked by the verifier, by a position-swapped LLM judge or by people (store API), and
exported as every implied chosen/rejected pair with annotator ids."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pyarrow as pa
import pytest

from pipelines.io import atomic_write_parquet
from pipelines.llm import LLMConfig, make_llm
from pipelines.rank.auto import judge_rankings, verifier_ranking
from pipelines.rank.db import AlreadyRanked, IncompleteRanking, RankStore, UnknownSample
from pipelines.rank.export import agreement, export_pairs, implied_pairs
from pipelines.synth.samples import SamplesConfig, read_samples, run_samples
from pipelines.verify import is_correct
from tests.test_synth_support import OpenAIServer, last_user

PROMPTS = [
    (f"What is {a} + {b}?", str(a + b))
    for a, b in [(2, 3), (10, 32), (7, 8), (40, 2), (13, 29), (6, 6)]
]


def write_prompts(d):
    atomic_write_parquet(
        d / "train" / "part-00000.parquet",
        pa.Table.from_pylist([{"prompt": p, "answer": a} for p, a in PROMPTS]),
    )
    return d


def policy(body: dict) -> str:
    """A sampler that honours seeds: some seeds give a wrong sum, all show their work."""
    a, b = map(int, re.findall(r"\d+", last_user(body))[:2])
    wrong = body["seed"] % 3 == 0
    total = a + b + (1 if wrong else 0)
    return f"Attempt {body['seed'] % 997}: {a} plus {b}, add the ones, then the tens, giving {total}.\nAnswer: {total}"


@pytest.fixture
def samples(tmp_path):
    with OpenAIServer(policy) as server:
        stats = run_samples(
            SamplesConfig(
                output=str(tmp_path / "s"),
                prompts=str(write_prompts(tmp_path / "p")),
                k=5,
                llm=LLMConfig(base_url=server.base_url, cache_dir=str(tmp_path / "c")),
            )
        )
        assert len({r["seed"] for r in server.requests}) == len(server.requests) == 30
    assert stats["prompts"] == 6 and stats["responses"] == 30
    return tmp_path / "s"


def test_samples_k_responses_per_prompt(samples):
    rows = read_samples(samples)
    assert [len(r["responses"]) for r in rows] == [5] * 6
    assert {r["answer"] for r in rows} == {a for _, a in PROMPTS}
    assert len({x["id"] for r in rows for x in r["responses"]}) == 30


def test_verifier_ranking_exports_correct_over_incorrect(samples, tmp_path):
    store = RankStore(f"sqlite:///{tmp_path / 'r.sqlite'}")
    store.load_samples(read_samples(samples))
    for s in store.sets():
        store.submit(s["id"], "verifier", verifier_ranking(s))
    stats = export_pairs(store, tmp_path / "pairs")
    rows = pa.parquet.read_table(tmp_path / "pairs" / "train").to_pylist()
    assert rows and stats["pairs"] == len(rows)
    answer = {p: a for p, a in PROMPTS}
    for r in rows:  # every pair's chosen was ranked above its rejected, and is the correct one
        assert r["chosen_rank"] < r["rejected_rank"] and r["annotator"] == "verifier"
        assert is_correct(r["chosen"], answer[r["prompt"]]) and not is_correct(
            r["rejected"], answer[r["prompt"]]
        )
    # all implied pairs: #correct x #incorrect per set; the ties inside groups are dropped
    expected = sum(
        len(g[0]) * len(g[1]) for g in (verifier_ranking(s) for s in store.sets()) if len(g) == 2
    )
    assert stats["pairs"] == expected and stats["ties_dropped"] > 0


def test_llm_judge_is_position_swapped(samples, tmp_path):
    sets = RankStore(f"sqlite:///{tmp_path / 'j.sqlite'}")
    sets.load_samples(read_samples(samples))
    sets = sets.sets()[:2]
    with OpenAIServer(lambda b: "A") as biased:  # always the first position: no real preference
        ranks, fig = judge_rankings(make_llm(LLMConfig(base_url=biased.base_url)), sets)
        assert len(biased.requests) == 2 * 2 * 10  # 10 pairs per set, both orders
    assert fig["position_flips"] == 20 and all(len(r) == 1 for r in ranks)  # all tied: no pairs

    def fair(body):  # prefers the response whose answer is right
        text = last_user(body)
        a, b = map(int, re.findall(r"What is (\d+) \+ (\d+)", text)[0])
        ra = text.split("Response A:\n")[1].split("Response B:")[0]
        return "A" if is_correct(ra, str(a + b)) else "B"

    with OpenAIServer(fair) as judge:
        ranks, fig = judge_rankings(make_llm(LLMConfig(base_url=judge.base_url)), sets)
    for s, r in zip(sets, ranks, strict=True):
        for c, rej, _, _ in implied_pairs(s, r)[0]:
            text = {x["id"]: x["text"] for x in s["responses"]}
            assert is_correct(text[c], s["answer"]) and not is_correct(text[rej], s["answer"])


def test_bad_rankings_get_clear_errors_and_change_nothing(samples, tmp_path):
    store = RankStore(f"sqlite:///{tmp_path / 'b.sqlite'}")
    store.load_samples(read_samples(samples))
    s = store.sets()[0]
    ids = [r["id"] for r in s["responses"]]
    with pytest.raises(IncompleteRanking, match="all 5 responses"):
        store.submit(s["id"], "ana", ids[:4])
    with pytest.raises(IncompleteRanking, match="not in set"):
        store.submit(s["id"], "ana", ids[:4] + ["nope"])
    with pytest.raises(IncompleteRanking, match="twice"):
        store.submit(s["id"], "ana", ids + ids[:1])
    with pytest.raises(UnknownSample):
        store.submit("no-such-set", "ana", ids)
    assert store.rankings() == []
    store.submit(s["id"], "ana", ids)
    with pytest.raises(AlreadyRanked):
        store.submit(s["id"], "ana", ids[::-1])
    assert [r["ranking"] for r in store.rankings()] == [[[i] for i in ids]]
    # the store is a real database: a new connection (a restarted server) sees the ranking
    again = RankStore(store.url)
    assert again.rankings() == store.rankings() and again.next_for("ana")["id"] != s["id"]


def test_agreement_between_annotators(samples, tmp_path):
    store = RankStore(f"sqlite:///{tmp_path / 'a.sqlite'}")
    store.load_samples(read_samples(samples))
    s = store.sets()[0]
    ids = [r["id"] for r in s["responses"]]
    store.submit(s["id"], "ana", ids)
    store.submit(s["id"], "ben", ids)
    store.submit(s["id"], "cy", ids[::-1])
    a = agreement(store.rankings())
    assert a["sets_with_several_rankings"] == 1 and a["compared_pairs"] == 30
    assert a["by_annotator_pair"] == {"ana vs ben": 1.0, "ana vs cy": 0.0, "ben vs cy": 0.0}
    stats = export_pairs(store, tmp_path / "x", annotators=["ana", "cy"])
    assert stats["pairs"] == 20 and stats["by_annotator"] == {"ana": 10, "cy": 10}
    with pytest.raises(ValueError, match="no rankings by"):
        export_pairs(store, tmp_path / "y", annotators=["zed"])


def test_cli_samples_auto_export(tmp_path):
    with OpenAIServer(policy) as server:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "flows.cli",
                "synth",
                "samples",
                "--prompts",
                str(write_prompts(tmp_path / "p")),
                "--llm-url",
                server.base_url,
                "--k",
                "4",
                "--output",
                str(tmp_path / "s"),
            ],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "rank",
            "auto",
            "--samples",
            str(tmp_path / "s"),
            "--by",
            "verifier",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ranked"] == 6
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "rank",
            "export",
            "--samples",
            str(tmp_path / "s"),
            "--output",
            str(tmp_path / "pairs"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pairs"] > 0


def test_samples_from_the_projects_own_model(tmp_path):
    """`synth samples --checkpoint RUN`: k responses from a local checkpoint, one seed each."""
    from tests.test_trainer_data import tiny_checkpoint

    run = tiny_checkpoint(tmp_path / "base", steps=3)
    stats = run_samples(
        SamplesConfig(
            output=str(tmp_path / "s"),
            prompts=str(write_prompts(tmp_path / "p")),
            k=3,
            n_prompts=2,
            max_tokens=6,
            llm=LLMConfig(backend="local", checkpoint=str(run)),
        )
    )
    rows = read_samples(tmp_path / "s")
    assert stats["responses"] == 6 and stats["source"].startswith("checkpoint:")
    assert all(len({x["text"] for x in r["responses"]}) > 1 for r in rows)  # k draws, not k copies
    assert json.loads((tmp_path / "s" / "stats.json").read_text())["config"]["k"] == 3


def test_cli_rank_by_judge(tmp_path):
    with OpenAIServer(policy) as server:
        run_samples(
            SamplesConfig(
                output=str(tmp_path / "s"),
                prompts=str(write_prompts(tmp_path / "p")),
                k=3,
                n_prompts=2,
                llm=LLMConfig(base_url=server.base_url),
            )
        )

    def judge(body):  # prefers the right sum, whatever its position
        text = last_user(body)
        a, b = map(int, re.findall(r"What is (\d+) \+ (\d+)", text)[0])
        return (
            "A"
            if is_correct(text.split("Response A:\n")[1].split("Response B:")[0], str(a + b))
            else "B"
        )

    with OpenAIServer(judge) as j:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "flows.cli",
                "rank",
                "auto",
                "--samples",
                str(tmp_path / "s"),
                "--by",
                "judge",
                "--judge-url",
                j.base_url,
                "--judge-model",
                "stub",
            ],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
        assert len(j.requests) == 2 * 2 * 3  # 3 pairs per set, both orders
    out = json.loads(r.stdout)
    # pairs of two right (or two wrong) answers get "A" both ways: position bias, recorded as a tie
    assert out["annotator"] == "judge:stub" and out["ranked"] == 2 and out["consistent"] > 0
    stats = export_pairs(
        RankStore(f"sqlite:///{tmp_path / 's' / 'rankings.sqlite'}"), tmp_path / "pairs"
    )
    answer = dict(PROMPTS)
    for row in pa.parquet.read_table(tmp_path / "pairs" / "train").to_pylist():
        assert row["annotator"] == "judge:stub" and is_correct(row["chosen"], answer[row["prompt"]])
    assert stats["pairs"] == out["consistent"]


def test_cli_rank_errors_are_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "flows.cli", "rank", "serve", "--samples", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and r.stderr.startswith("error:") and "synth samples" in r.stderr
    (tmp_path / "s").mkdir()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "rank",
            "export",
            "--samples",
            str(tmp_path / "s"),
            "--output",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert (
        r.returncode == 1 and "no rankings database" in r.stderr and not (tmp_path / "o").exists()
    )


def test_resampling_with_other_settings_gives_other_sets(tmp_path):
    """Sets are named by what made them: other sampling settings never collide with stored rankings."""
    with OpenAIServer(policy) as server:
        a = SamplesConfig(
            output=str(tmp_path / "a"),
            prompts=str(write_prompts(tmp_path / "p")),
            k=3,
            n_prompts=2,
            llm=LLMConfig(base_url=server.base_url),
        )
        run_samples(a)
        run_samples(a.model_copy(update={"output": str(tmp_path / "b"), "temperature": 0.7}))
    store = RankStore(f"sqlite:///{tmp_path / 'r.sqlite'}")
    assert store.load_samples(read_samples(tmp_path / "a")) == 2
    assert store.load_samples(read_samples(tmp_path / "b")) == 2 and len(store.sets()) == 4
    assert store.load_samples(read_samples(tmp_path / "a")) == 0  # loading again adds nothing


def test_re_export_with_other_settings_leaves_no_stale_split(samples, tmp_path):
    store = RankStore(f"sqlite:///{tmp_path / 'v.sqlite'}")
    store.load_samples(read_samples(samples))
    for s in store.sets():
        store.submit(s["id"], "verifier", verifier_ranking(s))
    # every set in val: set ids name the stub server's URL (a free port), so with a fraction
    # below 1 whether any of the 6 sets lands in val is chance (0.5 left val empty 1 run in 64)
    first = export_pairs(store, tmp_path / "pairs", val_fraction=1.0)
    assert first["val"] == first["pairs"] > 0 and (tmp_path / "pairs" / "val").is_dir()
    again = export_pairs(store, tmp_path / "pairs", val_fraction=0.0)
    assert again["val"] == 0 and not list((tmp_path / "pairs" / "val").glob("*.parquet"))
    assert (
        pa.parquet.read_table(tmp_path / "pairs" / "train").num_rows
        == again["pairs"]
        == first["pairs"]
    )
