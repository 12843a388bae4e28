"""The issue-14 commands end to end through the real CLI (Prefect flows, worker processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.quality_corpus import real_pages, write_documents

REPO = Path(__file__).resolve().parents[1]


def _cli(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TOKENMILL_HOME=str(tmp / "home"))
    env.pop("PREFECT_HOME", None)
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_train_classify_dedup_decontaminate_chain(web_dir, tmp_path):
    pages = real_pages(str(web_dir))
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        "\n".join(
            json.dumps({"id": f"{p['id']}{k}", "text": p[k], "score": s})
            for p in pages
            for k, s in (("main", 4), ("boilerplate", 1))
        )
    )
    model = tmp_path / "model.bin"
    r = _cli(["quality", "train", "--labels", str(labels), "--output", str(model)], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "held-out accuracy" in r.stdout and model.with_suffix(".confusion.png").exists()

    docs = [
        {
            "id": f"m{i:03d}",
            "url": p["url"].strip("<>"),
            "date": p["date"],
            "source": "t",
            "text": p["main"],
        }
        for i, p in enumerate(pages[:40])
    ]
    docs += [
        {"id": f"b{i:03d}", "url": None, "date": None, "source": "t", "text": p["boilerplate"]}
        for i, p in enumerate(pages[:10])
    ]
    docs.append({**docs[0], "id": "m999"})  # an exact copy
    inp = write_documents(tmp_path / "in", docs, shards=3)
    evals = tmp_path / "eval.jsonl"
    evals.write_text(json.dumps({"id": "q", "text": " ".join(docs[5]["text"].split()[10:40])}))

    steps = [
        ("classify", ["--model", str(model), "--threshold", "2.5", "--workers", "2"]),
        ("exact-dedup", []),
        ("line-dedup", ["--max-docs", "2"]),
        ("decontaminate", ["--against", str(evals)]),
    ]
    prev = inp
    for name, extra in steps:
        out = tmp_path / name
        r = _cli(["stage", name, "--input", str(prev), "--output", str(out), *extra], tmp_path)
        assert r.returncode == 0, (name, r.stderr[-3000:])
        stats = json.loads((out / "stats.json").read_text())
        st = stats["stages"][name.replace("-", "_")]
        assert st["in"] == st["kept"] + st["removed"]
        kept = pq.read_table(out / "documents").num_rows
        gone = pq.read_table(out / "removed").num_rows
        assert (st["kept"], st["removed"]) == (kept, gone)
        prev = out
    final = pq.read_table(tmp_path / "decontaminate" / "documents").to_pylist()
    ids = {d["id"] for d in final}
    assert "m999" not in ids and "m005" not in ids
    assert all(d["quality_score"] is not None for d in final)  # annotations survive later stages
    assert sum(i.startswith("b") for i in ids) <= 3

    # a re-run with other settings refuses with one clear line
    r = _cli(
        [
            "stage",
            "line-dedup",
            "--input",
            str(tmp_path / "exact-dedup"),
            "--output",
            str(tmp_path / "line-dedup"),
            "--max-docs",
            "5",
        ],
        tmp_path,
    )
    assert r.returncode == 1 and "different run" in r.stderr and "--overwrite" in r.stderr
