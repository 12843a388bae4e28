"""Model-based quality classification (FineWeb-Edu / DCLM): train a fast classifier on 0-5
labels, then score every document and remove those below a threshold.

Two model kinds, one interface (``QualityModel.scores(texts) -> float32 scores``):

- ``linear`` (default): multinomial logistic regression (scikit-learn) on hashed word 1-2-gram
  counts (``features``: no vocabulary to store, constant memory, same features for any text;
  measured ~3x faster than scikit-learn's ``HashingVectorizer``). Saved as a compressed
  ``.npz`` (weights + settings as JSON): no pickle, so a model file is data, never code.
- ``fasttext``: a supervised fastText model (``__label__0`` .. ``__label__5``). Scoring loads it
  with whichever ``fasttext`` module is installed (``fasttext-predict`` can predict); training
  needs a build that can train (``fasttext-numpy2-wheel``), which this environment does not
  have side by side with ``fasttext-predict``: benchmarks/classify_speed.py measures both.

The score of a document is the expected label, ``sum_k p(k) * k`` (a smooth 0-5 value, as
FineWeb-Edu's regression head gives), from the first ``max_chars`` characters (FineWeb-Edu's
classifier also reads a truncated head). ``classify`` removes documents whose score is below
``threshold`` (``classify:below_threshold``) and annotates the others with ``quality_score``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from pipelines import shard_stage as ss
from pipelines.io import atomic_write_bytes, atomic_write_text
from schemas.config import ClassifyConfig, QualityTrainConfig

STAGE = "classify"
REASON = "classify:below_threshold"
FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")
FORMAT = "tokenmill-quality-linear/1"


#: weight of each layout feature next to the L2-normed n-gram vector. Measured on the real pages
#: (main text vs boilerplate, two id splits): held-out accuracy 0.86 / 0.74 without layout
#: features, 0.96 / 0.90 at 0.5 (0.95 / 0.91 at 0.25, 0.96 / 0.90 at 1.0).
SHAPE_WEIGHT = 0.5
_LINE = re.compile(r"^[ \t]*\S", re.M)
_PUNCT_EOL = re.compile(r"[.!?:\"\u201d\u3002][ \t]*$", re.M)
_BIGRAM_MUL = np.uint64(0x9E3779B97F4A7C15)


def _shape_tokens(text: str) -> list[str]:
    """Layout features words cannot give: words per line, the share of lines ending like a
    sentence and the number of lines, bucketed (menus and link lists are many short lines
    without terminal punctuation). Counted with C-level regex/split calls over the whole text."""
    lines = len(_LINE.findall(text))
    if not lines:
        return ["__shape_empty_0", "__shape_empty_1", "__shape_empty_2"]
    words = len(text.split()) / lines
    punct = min(len(_PUNCT_EOL.findall(text)) / lines, 1.0)
    return [
        f"__shape_wpl_{min(int(np.log2(words + 1) * 2), 16)}",
        f"__shape_punct_{int(punct * 10)}",
        f"__shape_lines_{min(int(np.log2(lines + 1)), 12)}",
    ]


def _heads(texts: list[str | None], max_chars: int) -> list[str]:
    return [(t or "")[:max_chars] for t in texts]


def ngram_matrix(heads: list[str], n_features: int, ngram_max: int):
    """Hashed word 1..ngram_max-grams of each head: CSR, counts log-scaled, rows L2-normed.
    Words are ``pipelines.minhash``'s normalized words, hashed by its vectorized numpy routine
    (no per-word Python); k-grams combine consecutive word hashes within a document."""
    from scipy.sparse import csr_matrix
    from sklearn.preprocessing import normalize

    from pipelines.minhash import batch_shingle_hashes

    words, off = batch_shingle_hashes(heads, 1)
    doc = np.repeat(np.arange(len(heads), dtype=np.int32), np.diff(off))
    rows, cols = [doc], [words]
    gram = words
    for k in range(2, ngram_max + 1):
        same = doc[k - 1 :] == doc[: len(doc) - k + 1]
        gram = gram[:-1] * _BIGRAM_MUL + words[k - 1 :]  # k-gram = (k-1)-gram then next word
        rows.append(doc[k - 1 :][same])
        cols.append(gram[same])
    r = np.concatenate(rows)
    c = (np.concatenate(cols) % np.uint64(n_features)).astype(np.int32)
    x = csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(heads), n_features))
    x.sum_duplicates()
    np.log1p(x.data, out=x.data)
    return normalize(x, copy=False)


def shape_columns(heads: list[str], n_features: int) -> np.ndarray:
    """(n, 3) feature columns of the layout tokens (each weighs ``SHAPE_WEIGHT``)."""
    return np.array(
        [
            [xxhash.xxh64_intdigest(t.encode()) % n_features for t in _shape_tokens(h)]
            for h in heads
        ],
        dtype=np.int64,
    ).reshape(len(heads), 3)


def features(texts: list[str | None], n_features: int, ngram_max: int, max_chars: int):
    """The model's feature matrix: n-gram part + layout columns (training uses this; scoring
    computes the same product in two parts, ``QualityModel.logits``)."""
    from scipy.sparse import csr_matrix

    heads = _heads(texts, max_chars)
    x = ngram_matrix(heads, n_features, ngram_max)
    cols = shape_columns(heads, n_features)
    rows = np.repeat(np.arange(len(heads)), cols.shape[1])
    return x + csr_matrix(
        (np.full(cols.size, SHAPE_WEIGHT, np.float32), (rows, cols.ravel())), shape=x.shape
    )


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class _LabelScores:
    """``scores`` and ``predict`` of a model from its ``probabilities`` (one column per class)
    and ``classes`` (the float label of each column)."""

    classes: np.ndarray

    def probabilities(self, texts: list[str | None]) -> np.ndarray:
        raise NotImplementedError

    def scores(self, texts: list[str | None]) -> np.ndarray:
        """Expected label of each text (float32)."""
        if not texts:
            return np.zeros(0, np.float32)
        return (self.probabilities(texts) @ self.classes).astype(np.float32)

    def predict(self, texts: list[str | None]) -> np.ndarray:
        return self.classes[np.argmax(self.probabilities(texts), axis=1)].astype(np.int64)


class QualityModel(_LabelScores):
    """A trained quality classifier; ``scores`` is the one scoring routine of every engine."""

    kind = "linear"

    def __init__(
        self, coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray, settings: dict
    ):
        self.coef = np.ascontiguousarray(coef, dtype=np.float32)  # (k, F) or (1, F) for 2 classes
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.classes = np.asarray(classes, dtype=np.float32)
        self.settings = settings
        self.max_chars = int(settings["max_chars"])

    def probabilities(self, texts: list[str | None]) -> np.ndarray:
        s = self.settings
        heads = _heads(texts, self.max_chars)
        x = ngram_matrix(heads, int(s["n_features"]), int(s["ngram_max"]))
        cols = shape_columns(heads, int(s["n_features"]))
        # == features(...) @ coef.T, without building the sum matrix: the layout part is a gather
        z = (
            np.asarray(x @ self.coef.T)
            + SHAPE_WEIGHT * self.coef.T[cols].sum(axis=1)
            + self.intercept
        )
        if self.coef.shape[0] == 1:  # binary logistic regression: one logit for classes[1]
            p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1.0 - p1, p1], axis=1)
        return _softmax(z)

    def save(self, path: str | Path) -> None:
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            coef=self.coef.astype(np.float16),
            intercept=self.intercept,
            classes=self.classes,
            meta=np.array(json.dumps({"format": FORMAT, **self.settings})),
        )
        atomic_write_bytes(Path(path), buf.getvalue())


class FastTextQualityModel(_LabelScores):
    """A supervised fastText model with ``__label__<score>`` labels."""

    kind = "fasttext"

    def __init__(self, path: str | Path, max_chars: int = 4000):
        import fasttext

        self.model = fasttext.load_model(str(path))
        self.max_chars = max_chars
        # fasttext-predict has no get_labels(): every label comes back from a k=-1 prediction
        labels = sorted(self.model.predict("", k=-1)[0])
        try:
            self.classes = np.array(
                [float(lab.removeprefix("__label__")) for lab in labels], np.float32
            )
        except ValueError as e:
            raise ValueError(
                f"{path}: fastText labels must be __label__<score>, got {labels}"
            ) from e
        self._column = {lab: i for i, lab in enumerate(labels)}
        self.settings = {"backend": "fasttext", "max_chars": max_chars}

    def probabilities(self, texts: list[str | None]) -> np.ndarray:
        k = len(self.classes)
        out = np.zeros((len(texts), k), np.float32)
        predict, column = self.model.predict, self._column
        for r, t in enumerate(texts):  # one line at a time: fasttext-predict's batch call is broken
            labels, probs = predict(" ".join((t or "")[: self.max_chars].split()), k=k)
            for lab, p in zip(labels, probs, strict=True):
                out[r, column[lab]] = p
        return out


def load_model(path: str | Path) -> QualityModel | FastTextQualityModel:
    """A model written by ``train`` (either kind), recognised from the file itself."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"quality model {p} does not exist (train one with `tokenmill quality train`)"
        )
    head = p.open("rb").read(4)
    if head == FASTTEXT_MAGIC:
        return FastTextQualityModel(p)
    if head != b"PK\x03\x04":
        raise ValueError(f"{p} is neither a tokenmill linear quality model nor a fastText model")
    with np.load(p, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{p}: unknown model format {meta.get('format')!r}")
        return QualityModel(z["coef"].astype(np.float32), z["intercept"], z["classes"], meta)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------- training


def is_heldout(doc_id: str, fraction: float, seed: int = 0) -> bool:
    """Deterministic split by a hash of the id (the same document is always on the same side)."""
    return (
        xxhash.xxh64_intdigest(doc_id.encode("utf-8"), seed=seed) % 1_000_000 < fraction * 1_000_000
    )


def train_linear(texts: list[str], labels: list[int], config: QualityTrainConfig) -> QualityModel:
    from sklearn.linear_model import LogisticRegression

    x = features(texts, config.n_features, config.ngram_max, config.max_chars)
    clf = LogisticRegression(C=config.c, max_iter=2000, random_state=config.seed)
    clf.fit(x, np.asarray(labels))
    settings = {
        "backend": "linear",
        "n_features": config.n_features,
        "ngram_max": config.ngram_max,
        "max_chars": config.max_chars,
        "c": config.c,
    }
    return QualityModel(clf.coef_, clf.intercept_, clf.classes_, settings)


def train_fasttext(
    texts: list[str], labels: list[int], config: QualityTrainConfig, path: Path
) -> FastTextQualityModel:
    import tempfile

    import fasttext

    if not hasattr(fasttext, "train_supervised"):
        raise RuntimeError(
            "the installed `fasttext` module cannot train (it is fasttext-predict); "
            "use backend 'linear', or an environment with fasttext-numpy2-wheel"
        )
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        for t, y in zip(texts, labels, strict=True):
            f.write(f"__label__{y} {' '.join(t[: config.max_chars].split())}\n")
    model = fasttext.train_supervised(
        f.name, wordNgrams=config.ngram_max, epoch=25, lr=0.5, seed=config.seed, thread=1, verbose=0
    )
    Path(f.name).unlink()
    from pipelines.io import atomic_path

    with atomic_path(path) as tmp:
        model.save_model(str(tmp))
    return FastTextQualityModel(path, config.max_chars)


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, threshold: float) -> dict:
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_score,
        recall_score,
    )

    labels = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    bt, bp = y_true >= threshold, y_pred >= threshold
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "labels": labels,
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "binary": {
            "threshold": threshold,
            "accuracy": float(accuracy_score(bt, bp)),
            "f1": float(f1_score(bt, bp, zero_division=0)),
            "precision": float(precision_score(bt, bp, zero_division=0)),
            "recall": float(recall_score(bt, bp, zero_division=0)),
        },
    }


def plot_confusion(report: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.array(report["confusion"])
    fig, ax = plt.subplots(figsize=(4.5, 4), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ticks = range(len(report["labels"]))
    ax.set_xticks(ticks, [str(x) for x in report["labels"]])
    ax.set_yticks(ticks, [str(x) for x in report["labels"]])
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                color="white" if cm[i, j] > cm.max() / 2 else "black",
            )
    ax.set_xlabel("predicted score")
    ax.set_ylabel("label")
    ax.set_title(f"{title}\naccuracy {report['accuracy']:.3f}, macro F1 {report['macro_f1']:.3f}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)


def train(rows: list[dict], output: str | Path, config: QualityTrainConfig | None = None) -> dict:
    """Train on labelled rows (``id``, ``text``, ``score`` 0-5), hold out a share by id hash,
    write the model, ``<model>.report.json`` and ``<model>.confusion.png``; returns the report."""
    config = config or QualityTrainConfig()
    out = Path(output)
    usable = [r for r in rows if r.get("score") is not None and r.get("text")]
    skipped = len(rows) - len(usable)
    for r in usable:
        s = r["score"]
        if not float(s).is_integer() or not 0 <= s <= 5:
            raise ValueError(f"label of {r.get('id')!r} is {s!r}: scores are integers 0-5")
    held = [is_heldout(str(r["id"]), config.heldout_fraction, config.seed) for r in usable]
    tr = [r for r, h in zip(usable, held, strict=True) if not h]
    te = [r for r, h in zip(usable, held, strict=True) if h]
    if len({int(r["score"]) for r in tr}) < 2 or not te:
        raise ValueError(
            f"need labels of at least 2 scores to train and some held out; got "
            f"{len(tr)} training / {len(te)} held-out rows ({skipped} unusable)"
        )
    t0 = time.perf_counter()
    texts, ys = [r["text"] for r in tr], [int(r["score"]) for r in tr]
    if config.backend == "fasttext":
        model = train_fasttext(texts, ys, config, out)
    else:
        model = train_linear(texts, ys, config)
        model.save(out)
    seconds = time.perf_counter() - t0
    pred = model.predict([r["text"] for r in te])
    report = {
        "model": str(out),
        "config": config.model_dump(),
        "train_rows": len(tr),
        "heldout_rows": len(te),
        "unusable_rows": skipped,
        "train_seconds": round(seconds, 3),
        "label_counts": dict(sorted(Counter(int(r["score"]) for r in usable).items())),
        "heldout": evaluate(np.array([int(r["score"]) for r in te]), pred, config.threshold),
    }
    plot_confusion(
        report["heldout"], out.with_suffix(".confusion.png"), f"{config.backend} held-out"
    )
    atomic_write_text(out.with_suffix(".report.json"), json.dumps(report, indent=2))
    return report


# ---------------------------------------------------------------------------- the stage

SCORE_BINS = np.arange(0.0, 5.5, 0.5)


def apply(table: pa.Table, model, config: ClassifyConfig) -> ss.ShardResult:
    """Score one shard and split it at the threshold (shared by both engines)."""
    scores = model.scores(table.column("text").to_pylist())
    table = (
        table.append_column("quality_score", pa.array(scores, pa.float32()))
        if "quality_score" not in table.column_names
        else table.set_column(
            table.schema.get_field_index("quality_score"),
            "quality_score",
            pa.array(scores, pa.float32()),
        )
    )
    low = pa.array(scores < config.threshold, pa.bool_())
    gone = table.filter(low)
    hist = np.histogram(np.clip(scores, 0, 5), bins=SCORE_BINS)[0]
    counts = Counter(
        {
            f"score_{lo:.1f}-{lo + 0.5:.1f}": int(n)
            for lo, n in zip(SCORE_BINS[:-1], hist, strict=True)
            if n
        }
    )
    return ss.ShardResult(
        table.filter(pc.invert(low)), ss.removed_rows(gone, STAGE, [REASON] * len(gone)), counts
    )


@functools.lru_cache(maxsize=2)
def _cached_model(path: str, sha256: str):
    del sha256  # part of the cache key: a rewritten model file is loaded again
    return load_model(path)


def prepare(
    inputs: str | Path, output: str | Path, config: ClassifyConfig, overwrite: bool = False
) -> tuple[list[ss.Shard], dict]:
    shards = ss.plan(inputs)
    model = load_model(config.model)
    settings = ss.settings_payload(
        STAGE,
        config.model_dump(),
        shards,
        {"model_sha256": file_sha256(config.model), "model_settings": model.settings},
    )
    ss.check_settings(Path(output), settings, overwrite)
    return shards, settings


def filter_step(shard: ss.Shard, output: str | Path, config: ClassifyConfig, sha256: str) -> tuple:
    """One shard (a picklable unit of work; the model loads once per process)."""
    model = _cached_model(config.model, sha256)
    return ss.filter_shard(STAGE, shard, Path(output), lambda t, _s: apply(t, model, config))


def finish(output: str | Path, parts: list, seconds: float, settings: dict) -> dict:
    return ss.finish(
        STAGE, Path(output), parts, seconds, settings, {"model": settings["model_settings"]}
    )


def run_classify(
    inputs: str | Path, output: str | Path, config: ClassifyConfig, overwrite: bool = False
) -> dict:
    """The whole stage locally; resumable; returns stats.json (score histogram in ``counts``)."""
    t0 = time.perf_counter()
    shards, settings = prepare(inputs, output, config, overwrite)
    parts = [filter_step(s, output, config, settings["model_sha256"]) for s in shards]
    return finish(output, parts, time.perf_counter() - t0, settings)
