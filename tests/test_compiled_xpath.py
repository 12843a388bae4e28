"""The compiled trafilatura expressions select exactly what lxml selects (pipelines/compiled_xpath.py).

Checked three ways: at every call trafilatura makes while extracting every real page of
../shared/data/web (each compiled call is compared with lxml's on the same tree), on the
extracted text of those pages (byte-identical with and without), and on small documents built
for the XPath rules that are easy to get wrong (attribute order in ``@a|@b``, ``[1]`` per
parent, ``(...)[1]``, unions, ``translate``, ``re:test`` flags, comments).
"""

from __future__ import annotations

import logging

import pytest
from lxml import etree, html

from pipelines import compiled_xpath as cx
from pipelines.read import read_warc
from schemas.config import ReadConfig


@pytest.fixture(scope="module")
def real_pages(web_dir) -> list[str]:
    pages = []
    for path in sorted(web_dir.glob("*.warc.gz")):
        for doc, why in read_warc(str(path), ReadConfig()):
            if why is None and doc.get("text"):
                pages.append(doc["text"])
    assert len(pages) >= 100
    return pages


@pytest.fixture()
def lxml_only():
    """trafilatura's own expressions for the test, whatever an earlier test installed."""
    cx.uninstall()
    yield
    cx.uninstall()


def _extract_all(pages: list[str]) -> list[str | None]:
    from trafilatura import extract
    from trafilatura.deduplication import LRU_TEST

    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    LRU_TEST.clear()
    return [
        extract(h, favor_precision=True, include_comments=False, deduplicate=True) for h in pages
    ]


def test_installs_the_expensive_expressions(lxml_only):
    assert cx.install() >= 10
    names = cx.installed()
    for hot in ("OVERALL_DISCARD_XPATH[0]", "OVERALL_DISCARD_XPATH[1]", "BODY_XPATH[0]"):
        assert hot in names  # the ones the profile found: their absence would be a silent slowdown
    cx.uninstall()
    from trafilatura import xpaths

    assert not cx.installed()
    assert all(isinstance(x, etree.XPath) for x in xpaths.OVERALL_DISCARD_XPATH)


def test_every_call_on_real_pages_selects_what_lxml_selects(real_pages, lxml_only):
    cx.install()
    calls: dict[str, int] = {}
    mismatches: list[str] = []
    originals = {}

    class Checked(cx.CompiledXPath):
        def __call__(self, tree, **kw):
            fast = super().__call__(tree, **kw)
            slow = self.original(tree, **kw)
            calls[self.name] = calls.get(self.name, 0) + 1
            if fast != slow:
                mismatches.append(f"{self.name}: {len(fast)} vs {len(slow)}")
            return fast

    from trafilatura import xpaths

    for key in cx.installed():
        list_name, k = key[:-1].split("[")
        exprs = getattr(xpaths, list_name)
        originals[key] = exprs[int(k)]
        checked = Checked(exprs[int(k)].original)
        checked.name = key
        exprs[int(k)] = checked
    try:
        _extract_all(real_pages)
    finally:
        for key, expr in originals.items():
            list_name, k = key[:-1].split("[")
            getattr(xpaths, list_name)[int(k)] = expr
    assert not mismatches, mismatches[:5]
    # the comparison really ran, on the hot expressions, many times
    assert calls.get("OVERALL_DISCARD_XPATH[0]", 0) >= len(real_pages)
    assert calls.get("BODY_XPATH[0]", 0) >= len(real_pages) // 2
    assert sum(calls.values()) > 10 * len(real_pages)


def test_extracted_text_is_byte_identical(real_pages, lxml_only):
    plain = _extract_all(real_pages)
    cx.install()
    compiled = _extract_all(real_pages)
    assert sum(1 for t in plain if t) > len(real_pages) // 2
    assert compiled == plain


SEMANTICS = [
    # @a|@b as a string is the FIRST of them in attribute order, not any of them
    (
        ".//*[re:test(@id|@class, 'cookie')]",
        '<div id="a" class="cookie"></div><div class="cookie" id="a"></div>',
    ),
    (
        ".//*[starts-with(@id|@class, 'reply-')]",
        '<p class="reply-x" id="z"></p><p id="z" class="reply-x"></p><p id="reply-1"></p>',
    ),
    # missing attribute = '', an empty one is still there
    (".//*[@data-x or re:test(@id, '^$')]", '<i data-x=""></i><i id=""></i><i></i><i id="q"></i>'),
    (".//*[contains(@class, '')]", '<i></i><i class="a"></i>'),
    (".//*[@class='a b']", '<i class="a b"></i><i class="a"></i>'),
    # translate() maps, and drops characters beyond the target's length
    (
        ".//*[contains(translate(@role, 'NX', 'n'), 'nav')]",
        '<i role="NAV"></i><i role="Nav"></i><i role="naXv"></i><i role="na"></i>',
    ),
    # re:test flags: 'i' ignores case, others are ignored
    (".//*[re:test(@class, 'fulltext', 'i')]", '<i class="FullText"></i><i class="full"></i>'),
    (".//*[re:test(@class, 'fulltext', 'g')]", '<i class="FullText"></i><i class="fulltext"></i>'),
    # [1] inside the path: the first match among each element's children
    (
        ".//*[self::div or self::p][re:test(@class, 'x')][1]",
        '<div class="x"><p class="x">1</p><p class="x">2</p></div><div class="x"></div>'
        '<section><p class="y"></p><p class="x">3</p></section>',
    ),
    # (path)[1]: the first in document order; unions come back in document order
    (
        "(.//*[self::div][re:test(@class, 'x')])[1]",
        '<p><div class="y"><div class="x">1</div></div></p><div class="x">2</div>',
    ),
    (
        "(.//*[self::div][starts-with(@class, 'main')])[1]|(.//main)[1]",
        '<main>m</main><div class="main">d</div><main>2</main>',
    ),
    (
        "(.//*[self::div][starts-with(@class, 'main')])[1]|(.//main)[1]",
        '<div class="main"><main>m</main></div>',
    ),
    # not() and a descendant test
    (
        ".//*[self::div][re:test(@class, 'a')][not(.//h1) or re:test(@id, 'keep')]",
        '<div class="a"><h1>t</h1></div><div class="a"></div><div class="a" id="keep"><h1>t</h1></div>',
    ),
    # .//* never returns comments; .//name filters by tag
    (".//*[@style]", '<!-- <i style="x"></i> --><i style="x"><!-- c --></i>'),
    (".//header", "<header>a</header><div><header>b</header></div>"),
    # whitespace inside an attribute value is not normalised
    (
        ".//*[re:test(@class, '(^|\\s)bottom(\\s|$)')]",
        '<i class=" bottom"></i><i class="bottom\tline"></i><i class="xbottom"></i>',
    ),
]


@pytest.mark.parametrize(("path", "body"), SEMANTICS)
def test_xpath_semantics(path, body):
    expr = etree.XPath(path, namespaces={"re": "http://exslt.org/regular-expressions"})
    tree = html.fromstring(f"<html><body>{body}</body></html>")
    want = expr(tree)
    got = cx.CompiledXPath(expr)(tree)
    assert got == want
    # and from an inner context node, as trafilatura calls them on subtrees
    body_el = tree.find("body")
    assert cx.CompiledXPath(expr)(body_el) == expr(body_el)


@pytest.mark.parametrize(
    "path",
    [
        ".//*[position()=2]",
        ".//*[local-name()='annotation']",
        "//div",
        ".//div[2]",
        "(.//div)[2]",
        ".//*[contains(text(), 'x')]",
        ".//a/b",
    ],
)
def test_outside_the_subset_stays_with_lxml(path):
    with pytest.raises(cx.Unsupported):
        cx.compile_xpath(path)


def test_a_compiled_form_that_disagrees_is_not_installed(lxml_only, monkeypatch, caplog):
    """The probe document catches a wrong compilation (here: @a|@b read in the wrong order)."""

    def wrong_first2(e, va, vb, a, b):
        return vb if vb is not None else (va or "")

    monkeypatch.setattr(cx, "_first2", wrong_first2)
    with caplog.at_level(logging.WARNING, logger="pipelines.compiled_xpath"):
        cx.install()
    names = cx.installed()
    # OVERALL_DISCARD_XPATH[0] tests re:test(@id|@class, 'cookie'): it must stay with lxml
    assert "OVERALL_DISCARD_XPATH[0]" not in names
    assert "disagrees" in caplog.text
    assert "BODY_XPATH[0]" in names  # expressions without @a|@b are unaffected


def test_extract_step_switch(lxml_only):
    from pipelines.extract import ExtractStep
    from schemas.config import ExtractConfig

    ExtractStep(ExtractConfig(compiled_xpath=False)).setup()
    assert not cx.installed()
    step = ExtractStep(ExtractConfig())
    step.setup()
    assert "OVERALL_DISCARD_XPATH[0]" in cx.installed()
    doc = {
        "text": "<html><body><article><p>"
        + "A sentence of words. " * 20
        + "</p></article></body></html>"
    }
    assert step.process(doc) is None and doc["text"].startswith("A sentence")
