"""Issue 4 end to end, through the `tokenmill` CLI users run (one subprocess per command):

real WARCs -> `tokenmill fineweb` -> `tokenmill tokenizer train` (a small BPE on that corpus)
-> `tokenmill pipeline` (resumes the finished fineweb stage; dedup -> tokenize with that BPE)
-> `tokenmill train pretrain` (a tiny GPT, a few dozen steps)
-> `tokenmill synth refusal` probing THAT checkpoint -> `tokenmill synth tooluse` over the corpus
-> `tokenmill synth sft` -> `tokenmill synth mix` -> `tokenmill train sft --init <pretrain>`.

The tokenizer is trained between fineweb and the rest of the pipeline because `pipeline` needs
its tokenizer up front and the tokenizer is trained on the pipeline's own documents.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.chat import tool_call
from pipelines.synth.common import read_conversations
from pipelines.synth.qa import load_documents, span_match
from pipelines.synth.refusal import REFUSALS
from pipelines.synth.rl import strip_instruction

REPO = Path(__file__).resolve().parents[1]
VOCAB = 768
BLOCK = 384  # context of the tiny model: every refusal conversation fits, so SFT sees the refusals
TIMINGS: dict[str, float] = {}


def cli(*args: str, cwd: Path) -> str:
    """Run `tokenmill ARGS` as a user would; fail with its output when it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    name = " ".join(a for a in args[:2] if not a.startswith("-"))
    TIMINGS[name if name not in TIMINGS else f"{name} (again)"] = round(time.perf_counter() - t0, 1)
    assert r.returncode == 0, (
        f"tokenmill {' '.join(args)} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    )
    return r.stdout


def last_json(stdout: str) -> dict:
    """The result line the train commands print last."""
    return json.loads([ln for ln in stdout.splitlines() if ln.startswith("{")][-1])


def finite_losses(run: Path) -> list[float]:
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    losses = [r[k] for r in rows for k in ("loss", "val_loss") if k in r]
    assert losses and all(math.isfinite(v) for v in losses), losses
    return losses


def passages(tool_output: str) -> list[tuple[str, str]]:
    """(doc id, text) of each numbered passage of a search result (``pipelines.search.format_results``)."""
    parts = re.split(r"(?:^|\n\n)\[\d+\] \(doc (.+?)\) ", tool_output)
    return list(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.slow
def test_corpus_to_sft_checkpoint(web_dir: Path, tmp_path: Path):
    t_start = time.perf_counter()
    out, syn = tmp_path / "corpus", tmp_path / "synth"

    # -- corpus: FineWeb pass, a BPE trained on it, then the pipeline (dedup + tokenize) ----------
    cli("fineweb", "--input", str(web_dir), "--output", str(out / "fineweb"), cwd=tmp_path)
    tok = tmp_path / "tok.json"
    cli(
        "tokenizer",
        "train",
        "--input",
        str(out / "fineweb"),
        "--vocab-size",
        str(VOCAB),
        "--output",
        str(tok),
        cwd=tmp_path,
    )
    cli(
        "pipeline",
        "--input",
        str(web_dir),
        "--output",
        str(out),
        "--tokenizer",
        str(tok),
        "--shard-tokens",
        "20000",
        "--val-fraction",
        "0.1",
        cwd=tmp_path,
    )
    manifest = json.loads((out / "tokenize" / "manifest.json").read_text())
    assert manifest["vocab_size"] == VOCAB and manifest["splits"]["train"]["tokens"] > 20_000
    assert manifest["splits"]["val"]["documents"] >= 1
    corpus = {d["id"]: d for d in load_documents(out / "dedup")}
    assert len(corpus) >= 30

    # -- a tiny pretrained model ---------------------------------------------------------------
    run = tmp_path / "pretrain"
    res = last_json(
        cli(
            "train",
            "pretrain",
            "--data",
            str(out / "tokenize"),
            "--out",
            str(run),
            "--steps",
            "30",
            "--block-size",
            str(BLOCK),
            "--batch-size",
            "2",
            "--eval-every",
            "0",
            "--eval-batches",
            "2",
            "--device",
            "cpu",
            "--no-progress",
            cwd=tmp_path,
        )
    )
    assert (
        res["step"] == 30 and math.isfinite(res["val_loss"]) and (run / "checkpoint.pt").is_file()
    )
    finite_losses(run)

    # -- refusal probes against that checkpoint --------------------------------------------------
    samples = 2
    refusal_args = (
        "synth",
        "refusal",
        "--output",
        str(syn / "refusal"),
        "--documents",
        str(out / "dedup"),
        "--target-checkpoint",
        str(run / "checkpoint.pt"),
        "--samples",
        str(samples),
        "--max-questions",
        "12",
    )
    cli(*refusal_args, cwd=tmp_path)
    stats = json.loads((syn / "refusal" / "stats.json").read_text())
    probes = pq.read_table(syn / "refusal" / "probes").to_pylist()
    assert stats["questions"] == len(probes) == 12
    assert stats["target_requests"] == 12 * samples and stats["target_cache_hits"] == 0
    # the tiny model is wrong on (nearly) everything, and every consistently wrong answer is refused
    wrong = [p for p in probes if p["verdict"] == "wrong"]
    assert len(wrong) >= 0.75 * len(probes) and stats["consistently_wrong"] == len(wrong)
    convs = {r["messages"][0]["content"]: r for r in read_conversations(syn / "refusal")}
    for p in probes:
        assert len(p["answers"]) == samples
        assert p["correct"] == [
            span_match(a, p["reference"]) for a in p["answers"]
        ]  # the judge, re-done
        assert p["doc_id"] in corpus and p["reference"] in corpus[p["doc_id"]]["text"]
        assert p["reference"] not in p["question"]
        row = convs.get(p["question"])
        if p["verdict"] == "wrong":
            assert row is not None and row["kind"] == "refusal", p["question"]
            assert row["messages"][1]["content"] in REFUSALS
            meta = json.loads(
                row["meta"]
            )  # provenance: the document, its snippet, what the model said
            assert row["doc_id"] == p["doc_id"] and meta["reference"] == p["reference"]
            assert meta["answers"] == p["answers"] and meta["judge"] == "span_match"
            assert p["reference"] in meta["snippet"] and meta["url"] == corpus[p["doc_id"]]["url"]
        elif p["verdict"] == "mixed":
            assert row is None
    assert sum(r["kind"] == "refusal" for r in convs.values()) == len(wrong)
    # the answers are the checkpoint's own: sample 0 of the first question, regenerated in process
    import torch

    from trainer.inference import LocalModel

    torch.set_num_threads(1)  # like the CLI run (OMP_NUM_THREADS=1): same kernels, same samples
    model = LocalModel.from_checkpoint(run / "checkpoint.pt")
    first = probes[0]
    assert (
        model.chat(
            [{"role": "user", "content": first["question"]}], max_tokens=48, temperature=0.7, seed=0
        )
        == first["answers"][0]
    )

    # a re-run answers every probe from the LLM cache: the same dataset, no generation at all
    first_data = pq.read_table(syn / "refusal" / "data").to_pylist()
    cli(*refusal_args, cwd=tmp_path)
    again = json.loads((syn / "refusal" / "stats.json").read_text())
    assert again["target_requests"] == 0 and again["target_cache_hits"] == 12 * samples
    assert pq.read_table(syn / "refusal" / "data").to_pylist() == first_data

    # -- tool-use traces over the same corpus ---------------------------------------------------
    cli(
        "synth",
        "tooluse",
        "--output",
        str(syn / "tool"),
        "--documents",
        str(out / "dedup"),
        "--search",
        "15",
        "--python",
        "5",
        cwd=tmp_path,
    )
    tool_rows = read_conversations(syn / "tool")
    search_rows = [r for r in tool_rows if r["source"] == "tool:search"]
    python_rows = [r for r in tool_rows if r["source"] == "tool:python"]
    assert len(search_rows) >= 10 and len(python_rows) == 5
    from pipelines.search import SearchIndex, format_results

    index = SearchIndex.load(syn / "tool" / "index")
    for r in search_rows:
        meta = json.loads(r["meta"])
        ref, query = meta["reference"], meta["query"]
        assert [m["role"] for m in r["messages"]] == ["user", "assistant", "tool", "assistant"]
        assert r["messages"][1]["content"] == tool_call("search", query) and not span_match(
            query, ref
        )
        result = r["messages"][2]["content"]
        # the tool output is what the persisted index returns for that query, and it holds the answer
        assert result == format_results(index.search(query, k=3), 700)
        assert span_match(result, ref)
        # ...in the passage of the recorded document, which really is a corpus document containing it
        hits = passages(result)
        assert [doc for doc, _ in hits] == meta["hit_doc_ids"]
        doc, text = hits[meta["rank"] - 1]
        assert doc == r["doc_id"] == meta["answer_doc_id"] and span_match(text, ref)
        assert doc in corpus and ref in corpus[doc]["text"]
        assert ref in r["messages"][3]["content"]
    from pipelines.sandbox import run_python

    for r in python_rows:
        code = (
            r["messages"][1]["content"]
            .split("<|python_start|>", 1)[1]
            .removesuffix("<|python_end|>")
        )
        assert run_python(code).output == r["messages"][2]["content"]  # the real sandbox output
        assert r["messages"][3]["content"].endswith(json.loads(r["meta"])["reference"])

    # -- step-by-step/identity SFT data, then the mixture ---------------------------------------
    cli(
        "synth",
        "sft",
        "--output",
        str(syn / "sft"),
        "--identity",
        "8",
        "--arithmetic",
        "8",
        "--counting",
        "8",
        "--spelling",
        "8",
        cwd=tmp_path,
    )
    sft_rows = read_conversations(syn / "sft")
    assert len(sft_rows) >= 24
    # RL prompts (their test split is what the mixture must not contain)
    cli(
        "synth",
        "rl",
        "--output",
        str(syn / "rl"),
        "--word-problems",
        "10",
        "--counting",
        "10",
        "--equations",
        "10",
        cwd=tmp_path,
    )
    rl_test = {
        strip_instruction(r["prompt"]) for r in pq.read_table(syn / "rl" / "test").to_pylist()
    }
    assert rl_test and (syn / "rl" / "train").is_dir()
    cli(
        "synth",
        "mix",
        "--output",
        str(syn / "mix"),
        "--input",
        str(syn / "sft"),
        "--input",
        str(syn / "refusal"),
        "--input",
        f"{syn / 'tool'}:12",
        "--decontaminate",
        str(syn / "rl"),
        "--val-fraction",
        "0.1",
        cwd=tmp_path,
    )
    removed = json.loads((syn / "mix" / "stats.json").read_text())["decontamination"]["removed"]
    train_rows = pq.read_table(syn / "mix" / "train").to_pylist()
    val_rows = pq.read_table(syn / "mix" / "val").to_pylist()
    mixed = train_rows + val_rows
    sources = {r["id"]: r for r in sft_rows + list(convs.values()) + tool_rows}
    assert len(val_rows) >= 1 and len({r["id"] for r in mixed}) == len(mixed)
    assert all(r["id"] in sources and r["messages"] == sources[r["id"]]["messages"] for r in mixed)
    assert len(mixed) == len(sft_rows) + len(convs) + 12 - removed
    user_turns = [m["content"] for r in mixed for m in r["messages"] if m["role"] == "user"]
    assert not any(
        problem in turn for problem in rl_test for turn in user_turns
    )  # no test problem leaks
    assert {"refusal", "tool_use"} <= {r["kind"] for r in mixed}
    # the refusal lessons fit the model's context whole (SFT cuts longer conversations at the end)
    from pipelines.chat import render_conversation
    from pipelines.tokenizer import load_tokenizer

    bpe = load_tokenizer(str(tok))
    refusals = [r for r in mixed if r["kind"] == "refusal"]
    assert refusals and all(
        len(render_conversation(r["messages"], bpe).input_ids) <= BLOCK + 1 for r in refusals
    )

    # -- SFT from the pretrained checkpoint on the mixture --------------------------------------
    sft_run = tmp_path / "sft"
    res = last_json(
        cli(
            "train",
            "sft",
            "--init",
            str(run),
            "--data",
            str(syn / "mix"),
            "--out",
            str(sft_run),
            "--steps",
            "8",
            "--batch-size",
            "4",
            "--eval-every",
            "0",
            "--eval-batches",
            "2",
            "--device",
            "cpu",
            "--no-progress",
            cwd=tmp_path,
        )
    )
    assert res["step"] == 8 and math.isfinite(res["val_loss"])
    assert (sft_run / "checkpoint.pt").is_file() and len(finite_losses(sft_run)) >= 9
    tuned = LocalModel.from_checkpoint(sft_run)
    assert tuned.tok.vocab_size == VOCAB and tuned.block_size == BLOCK
    assert isinstance(tuned.chat([{"role": "user", "content": "Who are you?"}], max_tokens=8), str)
    print("timings (s):", TIMINGS, "total", round(time.perf_counter() - t_start, 1))
