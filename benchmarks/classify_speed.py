"""Quality classifier: tokenmill's linear model vs scikit-learn's HashingVectorizer pipeline vs
supervised fastText, on the same labels and documents: training time, held-out accuracy / F1,
and scoring speed (documents/s on one core, the issue's target: >= 5,000).

Labels: the real pages of ../shared/data/web, main text = 4, boilerplate (menus, footers) = 1
(as tests/test_classify.py); held out by id hash (20%). Scoring input: the main texts and
boilerplate of those pages, repeated to ``--docs`` documents (so the mix of lengths is real).

fastText: this environment's ``fasttext`` module is fasttext-predict (predicts, cannot train).
Training runs in a subprocess with a trainer build installed apart, e.g.

    pip install --no-deps --target /tmp/fttrain fasttext-numpy2-wheel
    python benchmarks/classify_speed.py --fasttext-trainer /tmp/fttrain

(word 1-2-grams, 2^18 hash buckets like the linear model, dim 100, 25 epochs) and the model
it writes is scored in process by fasttext-predict (tokenmill's
``FastTextQualityModel``). Without ``--fasttext-trainer`` the fastText rows are left out.
Scoring speed is documents per CPU second of the (single-threaded) scoring call, i.e.
documents/s/core, which a loaded shared machine does not distort; wall-clock docs/s is shown too.
Every scoring run is single-threaded (OMP/BLAS threads 1); the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results import append_bullets  # noqa: E402
from pipelines.classify import FastTextQualityModel, evaluate, is_heldout, load_model, train  # noqa: E402
from schemas.config import QualityTrainConfig  # noqa: E402
from tests.quality_corpus import real_pages  # noqa: E402

FT_TRAIN = """
import sys
sys.path.insert(0, sys.argv[1])
import fasttext
m = fasttext.train_supervised(sys.argv[2], wordNgrams=2, epoch=25, lr=0.5, seed=0, thread=1,
                              verbose=0, minCount=1, bucket=2 ** 18)
m.save_model(sys.argv[3])
"""


def labelled(web: str) -> list[dict]:
    return [
        {"id": f"{p['id']}#{k}", "text": p[k], "score": s}
        for p in real_pages(web)
        for k, s in (("main", 4), ("boilerplate", 1))
    ]


def speed(score, texts: list[str], repeat: int) -> tuple[float, float]:
    """(documents per CPU second of this single-threaded process = docs/s/core, documents per
    wall second), medians. CPU time is the figure that survives a shared, loaded machine."""
    score(texts[:200])  # warm-up (imports, first allocation)
    cpu, wall = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        score(texts)
        cpu.append(len(texts) / (time.process_time() - c0))
        wall.append(len(texts) / (time.perf_counter() - t0))
    return statistics.median(cpu), statistics.median(wall)


class SklearnPipeline:
    """The straightforward anchor: HashingVectorizer(1-2-grams) + LogisticRegression."""

    def __init__(self, rows: list[dict], max_chars: int = 4000):
        from sklearn.feature_extraction.text import HashingVectorizer
        from sklearn.linear_model import LogisticRegression

        self.max_chars = max_chars
        self.vec = HashingVectorizer(n_features=2**18, ngram_range=(1, 2), alternate_sign=False)
        t0 = time.perf_counter()
        x = self.vec.transform([r["text"][:max_chars] for r in rows])
        self.clf = LogisticRegression(C=4.0, max_iter=2000).fit(x, [r["score"] for r in rows])
        self.train_seconds = time.perf_counter() - t0

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.clf.predict(self.vec.transform([t[: self.max_chars] for t in texts]))

    def scores(self, texts: list[str]) -> np.ndarray:
        p = self.clf.predict_proba(self.vec.transform([t[: self.max_chars] for t in texts]))
        return p @ self.clf.classes_


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--web", default=str(REPO.parent / "shared" / "data" / "web"))
    ap.add_argument("--docs", type=int, default=20_000, help="documents scored per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--fasttext-trainer", default=None, help="dir with a fasttext build that trains"
    )
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()

    rows = labelled(args.web)
    tr = [r for r in rows if not is_heldout(r["id"], 0.2)]
    te = [r for r in rows if is_heldout(r["id"], 0.2)]
    y_te = np.array([r["score"] for r in te])
    pool = [r["text"] for r in rows]
    texts = (pool * (args.docs // len(pool) + 1))[: args.docs]
    mean_chars = float(np.mean([len(t) for t in texts]))
    results: dict[str, dict] = {}
    work = Path(tempfile.mkdtemp(prefix="classify_bench_"))

    t0 = time.perf_counter()
    train(rows, work / "linear.bin", QualityTrainConfig())
    ours = load_model(work / "linear.bin")
    results["tokenmill linear"] = {
        "train_s": time.perf_counter() - t0,
        "heldout": evaluate(y_te, ours.predict([r["text"] for r in te]), 3.0),
        "docs_per_s": speed(ours.scores, texts, args.repeat),
    }
    sk = SklearnPipeline(tr)
    results["sklearn HashingVectorizer+LR"] = {
        "train_s": sk.train_seconds,
        "heldout": evaluate(y_te, sk.predict([r["text"] for r in te]), 3.0),
        "docs_per_s": speed(sk.scores, texts, args.repeat),
    }
    if args.fasttext_trainer:
        data = work / "ft.txt"
        data.write_text(
            "".join(f"__label__{r['score']} {' '.join(r['text'][:4000].split())}\n" for r in tr)
        )
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-c",
                FT_TRAIN,
                args.fasttext_trainer,
                str(data),
                str(work / "ft.bin"),
            ],
            check=True,
        )
        ft_train = time.perf_counter() - t0
        ft = FastTextQualityModel(work / "ft.bin")
        results["fastText supervised (fasttext-predict scoring)"] = {
            "train_s": ft_train,
            "heldout": evaluate(y_te, ft.predict([r["text"] for r in te]), 3.0),
            "docs_per_s": speed(ft.scores, texts, args.repeat),
            "model_bytes": (work / "ft.bin").stat().st_size,
        }
    results["tokenmill linear"]["model_bytes"] = (work / "linear.bin").stat().st_size

    lines = [
        f"labels: {len(rows)} real-page texts (main=4, boilerplate=1), {len(tr)} train / "
        f"{len(te)} held out by id hash; scoring: {args.docs:,} documents, mean "
        f"{mean_chars:,.0f} chars, one thread, median of {args.repeat}"
    ]
    for name, r in results.items():
        h = r["heldout"]
        lines.append(
            f"{name}: **{r['docs_per_s'][0]:,.0f} docs/s/core** scoring (CPU time; wall "
            f"{r['docs_per_s'][1]:,.0f} docs/s), held-out accuracy "
            f"{h['accuracy']:.3f}, macro F1 {h['macro_f1']:.3f}, train {r['train_s']:.1f} s"
            + (f", model {r['model_bytes'] / 1e6:.1f} MB" if "model_bytes" in r else "")
        )
    print(
        json.dumps(
            {
                k: {**v, "heldout": {x: v["heldout"][x] for x in ("accuracy", "macro_f1")}}
                for k, v in results.items()
            },
            indent=2,
        )
    )
    if not args.no_append:
        append_bullets(
            "Quality classifier: tokenmill linear vs scikit-learn vs fastText "
            "(`benchmarks/classify_speed.py`)",
            lines,
        )


if __name__ == "__main__":
    main()
