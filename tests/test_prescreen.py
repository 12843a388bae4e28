"""The language pre-screen before extraction (issue 13), per-language langid thresholds and the
per-language output partitions, on the real pages of ../shared/data/web."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pipelines.fineweb import build_stage_steps, process_shard
from pipelines.prescreen import PrescreenStep
from schemas.config import FinewebConfig, LangIdConfig

LANGUAGE_SETS = [
    ["en"],
    ["de"],
    ["fr"],
    ["es"],
    ["zh"],
    ["an"],
    ["de", "fr", "es", "zh"],
    ["en", "de"],
]


@pytest.fixture(scope="module")
def pages(web_warcs) -> list[dict]:
    """Every HTML page past the URL filter: the pre-screen's guess and the full path's scores."""
    from pipelines.extract import ExtractStep
    from pipelines.langid import LangIdStep
    from pipelines.read import read_warc
    from pipelines.urlfilter import URLFilterStep

    uf, ex, li, pre = (
        URLFilterStep(),
        ExtractStep(),
        LangIdStep(LangIdConfig(threshold=0.3)),
        PrescreenStep(),
    )
    for step in (uf, ex, li, pre):
        step.setup()
    li.k = 3
    out = []
    for path in web_warcs:
        for doc, why in read_warc(str(path)):
            if why is not None or uf.process(doc) is not None:
                continue
            quick = pre.predict(doc["text"])
            status, text = ex.extract(doc["text"])
            out.append(
                {"url": doc["url"], "quick": quick, "full": li.predict(text) if text else {}}
            )
    return out


def test_prescreen_changes_kept_set_for_under_half_a_percent(pages):
    """For each requested-language set: pages the pre-screen removes that the full path's langid
    (threshold 0.65) would keep must be < 0.5% of the input; and it must remove most of the pages
    the full path removes for their language (the point: no trafilatura for them)."""
    threshold = LangIdConfig().prescreen_threshold
    assert len(pages) > 140
    saved = full_removed = 0
    for wanted in LANGUAGE_SETS:
        changed = 0
        for p in pages:
            full_keep = any(p["full"].get(lang, 0) > 0.65 for lang in wanted)
            pre_remove = (
                p["quick"] is not None
                and p["quick"][0] not in wanted
                and p["quick"][1] >= threshold
            )
            changed += pre_remove and full_keep
            full_removed += not full_keep
            saved += pre_remove and not full_keep
        assert changed / len(pages) < 0.005, (wanted, changed)
    assert saved >= 0.8 * full_removed, (saved, full_removed)


def test_prescreen_only_with_langid_and_languages():
    def steps(cfg, stages=None):
        return [type(s).__name__ for _, group in build_stage_steps(cfg, stages) for s in group]

    assert steps(FinewebConfig())[:3] == ["URLFilterStep", "PrescreenStep", "ExtractStep"]
    assert "PrescreenStep" not in steps(FinewebConfig(langid=LangIdConfig(prescreen=False)))
    assert "PrescreenStep" not in steps(FinewebConfig(langid=LangIdConfig(languages=[])))
    assert "PrescreenStep" not in steps(FinewebConfig(), ["read", "extract"])


@pytest.fixture(scope="module")
def en_runs(web_dir, tmp_path_factory):
    """The multilingual WARC with --languages en, pre-screen on and off."""
    path = str(web_dir / "multilingual-news.warc.gz")
    runs = {}
    for on in (True, False):
        out = tmp_path_factory.mktemp(f"pre{on}")
        cfg = FinewebConfig(langid=LangIdConfig(languages=["en"], prescreen=on))
        cfg.extract.timeout_s = 5
        stats = process_shard(path, str(out), cfg)
        kept = pq.read_table(out / "documents").to_pylist()
        removed = pq.read_table(out / "removed").to_pylist()
        runs[on] = (stats, kept, removed, out)
    return runs


def test_prescreen_run_keeps_the_same_documents(en_runs):
    (on_stats, on_kept, on_removed, out), (_, off_kept, _, _) = en_runs[True], en_runs[False]
    assert sorted(d["id"] for d in on_kept) == sorted(d["id"] for d in off_kept)
    assert [d["text"] for d in sorted(on_kept, key=lambda d: d["id"])] == [
        d["text"] for d in sorted(off_kept, key=lambda d: d["id"])
    ]
    pre = [r for r in on_removed if r["reason"] == "langid:prescreen_not_in_languages"]
    assert len(pre) >= 50  # German/French pages never went through trafilatura
    assert all(
        r["stage"] == "langid"
        and r["language"] != "en"
        and r["language_score"] >= 0.8
        and "<html" not in r["text"].lower()
        and r["text"]
        for r in pre
    )
    st = on_stats
    assert st["langid"].removed["langid:prescreen_not_in_languages"] == len(pre)
    assert st["extract"].kept == st["langid"].docs_in  # the stage chain still adds up
    counts = json.loads(next((out / "stats").glob("*.json")).read_text())["step_counts"]
    # pages declaring en skip the pre-screen; every other HTML page past the URL filter is judged
    assert counts["prescreen"]["skipped_declared"] >= 20
    assert counts["prescreen"]["judged"] + counts["prescreen"]["skipped_declared"] == (
        st["urlfilter"].kept
    )
    for s in st.values():
        s.check_conservation()
    step_s = json.loads(next((out / "stats").glob("*.json")).read_text())["step_seconds"]
    off_out = en_runs[False][3]
    off_s = json.loads(next((off_out / "stats").glob("*.json")).read_text())["step_seconds"]
    assert step_s["extract"] < off_s["extract"]  # trafilatura ran on far fewer pages


def test_declared_language_is_read_from_the_html_tag():
    from pipelines.prescreen import declared_language

    assert declared_language('<!doctype html>\n<html lang="en-US" dir="ltr">') == "en"
    assert declared_language("<HTML LANG=de>") == "de"
    assert declared_language("<html class=x lang='fr_FR'>") == "fr"
    assert declared_language('<html xml:lang="zh-Hans">') == "zh"
    assert declared_language('<html data-lang="de" lang="en">') == "en"  # not data-lang
    assert declared_language('<html lang="english">') is None  # not a language subtag
    assert declared_language("<html><body lang=de>") is None  # only the html element
    assert declared_language(" " * 5000 + '<html lang="de">') is None  # looked for near the top


def test_declared_requested_language_skips_the_prescreen(web_warcs):
    """A page declaring a requested language goes to the full path unjudged (never a decision
    the full path would not take); one declaring another language, or none, is judged."""
    from pipelines.read import read_warc

    german = next(
        d
        for path in web_warcs
        for d, why in read_warc(str(path))
        if why is None and '<html lang="de' in d["text"][:4096]
    )
    step = PrescreenStep(LangIdConfig(languages=["en"]))
    step.setup()
    step.start_shard()
    assert step.process(dict(german)) == "langid:prescreen_not_in_languages"
    assert step.counts == {"judged": 1}
    lying = dict(german, text=german["text"].replace('<html lang="de', '<html lang="en', 1))
    assert step.process(lying) is None  # declares en: extracted, langid decides (removes it)
    assert step.counts == {"judged": 1, "skipped_declared": 1}
    assert PrescreenStep(LangIdConfig(languages=["de"])).process(dict(german)) is None
    step.start_shard()
    assert not step.counts


def test_partition_by_language(web_dir, tmp_path):
    cfg = FinewebConfig(langid=LangIdConfig(languages=["de", "fr"]), partition_by_language=True)
    cfg.extract.timeout_s = 5
    stats = process_shard(str(web_dir / "multilingual-news.warc.gz"), str(tmp_path), cfg)
    parts = {
        p.parent.name: pq.read_table(p).to_pylist()
        for p in (tmp_path / "documents").glob("*/*.parquet")
    }
    assert set(parts) == {"de", "fr"}
    for lang, rows in parts.items():
        assert rows and all(r["language"] == lang for r in rows)
    assert sum(map(len, parts.values())) == stats["pii"].kept
    assert not list((tmp_path / "documents").glob("*.parquet"))

    # one language's partition is a corpus of its own: deduplicated, tokenized and carded alone
    from flows.dedup import run_dedup
    from flows.tokenize_flow import run_tokenize
    from pipelines.card import write_card
    from schemas.config import TokenizeConfig

    de = tmp_path / "documents" / "de"
    dedup = run_dedup(str(de), str(tmp_path / "dedup-de"), summary=False)
    assert dedup["stages"]["dedup"]["in"] == len(parts["de"])
    kept = pq.read_table(tmp_path / "dedup-de" / "documents").to_pylist()
    assert kept and {r["language"] for r in kept} == {"de"}
    tok = run_tokenize(
        str(tmp_path / "dedup-de" / "documents"),
        str(tmp_path / "tok-de"),
        TokenizeConfig(shard_tokens=5000),
        summary=False,
    )
    assert tok["stages"]["tokenize"]["in"] == len(kept)
    write_card(tmp_path / "dedup-de", plots=False)
    card = (tmp_path / "dedup-de" / "README.md").read_text()
    assert "language:\n- de\n" in card and "multilinguality: monolingual" in card


def test_per_language_langid_threshold(web_dir):
    from pipelines.extract import ExtractStep
    from pipelines.langid import LangIdStep
    from pipelines.read import read_warc

    doc = next(
        d for d, why in read_warc(str(web_dir / "commoncrawl-whirlwind.warc.gz")) if why is None
    )
    ex = ExtractStep()
    ex.setup()
    assert ex.process(doc) is None
    assert LangIdStep(LangIdConfig(languages=["an"])).process(dict(doc)) == "langid:below_threshold"
    step = LangIdStep(LangIdConfig(languages=["an"], thresholds={"an": 0.2}))
    d = dict(doc)
    assert step.process(d) is None and d["language"] == "an"


def test_cli_options():
    from flows.cli_fineweb import load_config

    cfg = load_config(no_prescreen=True, by_language=True, languages=["all"])
    assert (
        cfg.langid.prescreen is False and cfg.partition_by_language and cfg.langid.languages == []
    )
    assert load_config().langid.prescreen is True


def test_judged_prefix_is_the_collapsed_whole_cut_to_n():
    """fastText reads the first QUICK_CHARS of the whitespace-collapsed rendering; computing it
    from a prefix of the rendering must give exactly that, wherever the prefix cuts (inside a
    word, inside a run of whitespace, at a boundary)."""
    import random

    from pipelines.prescreen import judged_prefix

    rng = random.Random(7)
    pieces = ["word", "Wörter", "字", " ", "  \n\n", "\t", "x" * 50, " " * 300, "\n" * 40]
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 400)))
        for n in (1, 7, 50, 2000):
            assert judged_prefix(text, n) == " ".join(text.split())[:n]
    assert judged_prefix("") == "" and judged_prefix(" \n ") == ""
