"""trafilatura's regex XPath expressions compiled to Python: same elements, same order, faster.

Why: profiling ``trafilatura.extract`` on the real pages of ../shared/data/web puts about half
of its time in a handful of XPath expressions (``OVERALL_DISCARD_XPATH`` and friends) that call
EXSLT ``re:test``. lxml runs every ``re:test`` as a Python callback, once per candidate element
and attribute, with the node-set converted to Python objects on each call; libxml2's XPath
engine also evaluates each ``contains``/``translate`` separately. Compiled here into one Python
function per expression (one pass over the descendants, attributes read once, regexes
precompiled), the same expressions cost a fraction; the measurement is
``benchmarks/compiled_xpath.py`` and the record in benchmarks/RESULTS.md.

What is compiled is a small XPath subset: ``.//NAME`` or ``.//*`` followed by predicates made
of ``or``/``and``/``not()``/parentheses over ``self::NAME``, ``@a`` / ``@a|@b`` (existence,
``= 'literal'``), ``contains``, ``starts-with``, ``translate`` and ``re:test`` on attributes, and
``.//NAME`` (has such a descendant). The XPath semantics kept exactly: a union of attributes
as a string is the first one in document (attribute) order; a missing attribute is ``''``;
``re:test`` is Python's ``re.search`` with ``re.IGNORECASE`` when the flags contain ``i`` (what
lxml's EXSLT implementation does); results come in document order. An expression outside the
subset, or one whose compiled form disagrees with lxml on a probe document built from its own
literals, is left to lxml (logged once): the speed-up can be missing, never wrong.
tests/test_compiled_xpath.py checks element-for-element equality on every real page and
byte-identical ``extract`` output.

``install()`` replaces items of trafilatura's expression lists in place (the lists are shared
by every module that imported them); ``uninstall()`` puts lxml's back. ``ExtractConfig.
compiled_xpath`` (default on) switches it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

log = logging.getLogger(__name__)

# the lists of trafilatura.xpaths whose items may be replaced
EXPRESSION_LISTS = (
    "BODY_XPATH",
    "COMMENTS_XPATH",
    "REMOVE_COMMENTS_XPATH",
    "REMOVE_COMMENTS_AND_LISTS_XPATH",
    "RAW_TREE_PRUNE_XPATH",
    "OVERALL_DISCARD_XPATH",
    "TEASER_DISCARD_XPATH",
    "PRECISION_DISCARD_XPATH",
    "DISCARD_IMAGE_ELEMENTS",
    "COMMENTS_DISCARD_XPATH",
)


class Unsupported(ValueError):
    """The expression uses XPath outside the compiled subset (it stays with lxml)."""


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<lit>'[^']*'|"[^"]*")
    | (?P<dslash>\.//)
    | (?P<axis>self::[A-Za-z][\w-]*)
    | (?P<attr>@[A-Za-z_][\w:.-]*)
    | (?P<num>\d+)
    | (?P<punct>[\[\]()|,=*])
    | (?P<name>[A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?)
    )""",
    re.VERBOSE,
)


def _tokens(path: str) -> list[tuple[str, str]]:
    out, pos, path = [], 0, path.strip()
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m or m.end() == pos:
            raise Unsupported(f"cannot read {path[pos : pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
    return out


@dataclass
class _Cond:
    """A compiled boolean: Python source over ``e`` (the element) and ``t`` (its tag), and
    whether it can only hold for an element carrying at least one attribute (then elements
    without any of the named attributes need not even be looked at)."""

    code: str
    needs_attr: bool


@dataclass
class _Branch:
    """One location path: its name test, predicate and which matches it keeps: ``all``,
    ``first`` (``(path)[1]``: the first in document order) or ``first-child`` (``path[1]``:
    the first match among each element's children)."""

    tags: tuple[str, ...] | None
    cond: _Cond
    mode: str


class _Compiler:
    """Recursive descent over the token list."""

    def __init__(self, path: str) -> None:
        self.toks = _tokens(path)
        self.i = 0
        self.consts: dict[str, object] = {}
        self.attr_vars: dict[str, str] = {}

    # -- token helpers
    def peek(self, k: int = 0) -> tuple[str, str] | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self, kind: str, value: str | None = None) -> str:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1] != value):
            raise Unsupported(f"expected {value or kind}, got {tok}")
        self.i += 1
        return tok[1]

    def at(self, kind: str, value: str | None = None, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok is not None and tok[0] == kind and (value is None or tok[1] == value)

    def const(self, value: object) -> str:
        name = f"_c{len(self.consts)}"
        self.consts[name] = value
        return name

    def literal(self) -> str:
        return self.take("lit")[1:-1]

    def first_position(self) -> bool:
        """``[1]`` next?  (another position is outside the subset)"""
        if self.at("punct", "[") and self.at("num", k=1):
            if self.peek(1)[1] != "1" or not self.at("punct", "]", k=2):
                raise Unsupported("position other than 1")
            self.i += 3
            return True
        return False

    # -- grammar
    def union(self) -> list[_Branch]:
        branches = [self.branch()]
        while self.at("punct", "|"):
            self.i += 1
            branches.append(self.branch())
        if self.peek() is not None:
            raise Unsupported(f"trailing {self.peek()}")
        return branches

    def branch(self) -> _Branch:
        if self.at("punct", "("):
            self.i += 1
            inner = self.path()
            self.take("punct", ")")
            if not self.first_position():
                raise Unsupported("parenthesised path without [1]")
            if inner.mode != "all":
                raise Unsupported("nested positions")
            inner.mode = "first"
            return inner
        return self.path()

    def path(self) -> _Branch:
        self.take("dslash")
        if self.at("punct", "*"):
            self.i += 1
            tags = None
        else:
            tag = self.take("name")
            if ":" in tag:
                raise Unsupported("prefixed name")
            tags = (tag,)
        conds, mode = [], "all"
        while self.at("punct", "["):
            if self.first_position():
                mode = "first-child"
                if self.at("punct", "["):
                    raise Unsupported("predicate after a position")
                break
            self.i += 1
            conds.append(self.or_expr())
            self.take("punct", "]")
        # a first predicate that only tests the element's name becomes lxml's C-level filter
        if (
            tags is None
            and conds
            and re.fullmatch(r"\(?\(t == '[\w-]+'\)(?: or \(t == '[\w-]+'\))*\)?", conds[0].code)
        ):
            tags = tuple(re.findall(r"t == '([\w-]+)'", conds[0].code))
            conds = conds[1:]
        if not conds:
            cond = _Cond("True", False)
        else:
            cond = _Cond(" and ".join(c.code for c in conds), any(c.needs_attr for c in conds))
        return _Branch(tags, cond, mode)

    def or_expr(self) -> _Cond:
        # holds only with an attribute when every alternative does
        return self._joined("or", self.and_expr, all)

    def and_expr(self) -> _Cond:
        # holds only with an attribute when any conjunct does
        return self._joined("and", self.unary, any)

    def _joined(self, op: str, operand: Callable[[], _Cond], combine: Callable) -> _Cond:
        parts = [operand()]
        while self.at("name", op):
            self.i += 1
            parts.append(operand())
        if len(parts) == 1:
            return parts[0]
        code = "(" + f" {op} ".join(p.code for p in parts) + ")"
        return _Cond(code, combine(p.needs_attr for p in parts))

    def unary(self) -> _Cond:
        if self.at("name", "not") and self.at("punct", "(", k=1):
            self.i += 2
            inner = self.or_expr()
            self.take("punct", ")")
            return _Cond(f"(not {inner.code})", False)
        if self.at("punct", "("):
            self.i += 1
            inner = self.or_expr()
            self.take("punct", ")")
            return inner
        if self.at("axis"):
            return _Cond(f"(t == {self.take('axis')[6:]!r})", False)
        if self.at("dslash"):
            self.i += 1
            name = self.take("name")
            if ":" in name:
                raise Unsupported("prefixed name")
            return _Cond(f"(next(e.iterdescendants({name!r}), None) is not None)", False)
        if self.at("attr"):
            names = self.attrset()
            if self.at("punct", "="):
                self.i += 1
                value = self.literal()
                code = " or ".join(f"{self.var(n)} == {value!r}" for n in names)
            else:
                code = " or ".join(f"{self.var(n)} is not None" for n in names)
            return _Cond(f"({code})", True)
        return self.function()

    def attrset(self) -> list[str]:
        names = [self.take("attr")[1:]]
        while self.at("punct", "|") and self.at("attr", k=1):
            self.i += 1
            names.append(self.take("attr")[1:])
        if any(":" in n for n in names):
            raise Unsupported("prefixed attribute")
        return names

    def var(self, name: str) -> str:
        """The local variable holding attribute ``name`` (read once per element)."""
        return self.attr_vars.setdefault(name, f"a{len(self.attr_vars)}")

    def string(self) -> tuple[str, str | None]:
        """A string-valued argument: an attribute set (first in document order) or translate();
        returns its code and, for a single attribute, the variable holding it (None if absent)."""
        if self.at("name", "translate"):
            self.i += 1
            self.take("punct", "(")
            inner, _ = self.string()
            self.take("punct", ",")
            src = self.literal()
            self.take("punct", ",")
            dst = self.literal()
            self.take("punct", ")")
            return f"{inner}.translate({self.const(_translate_table(src, dst))})", None
        names = self.attrset()
        if len(names) == 1:
            v = self.var(names[0])
            return f"({v} or '')", v
        if len(names) == 2:
            a, b = names
            return f"_first2(e, {self.var(a)}, {self.var(b)}, {a!r}, {b!r})", None
        return f"_first(e, {tuple(names)!r})", None

    def function(self) -> _Cond:
        name = self.take("name")
        self.take("punct", "(")
        subject, var = self.string()
        self.take("punct", ",")
        arg = self.literal()
        flags = ""
        if self.at("punct", ","):
            self.i += 1
            flags = self.literal()
        self.take("punct", ")")
        # the subject of an element without the attribute is '': does the test hold for ''?
        if name == "contains" and not flags:
            test, on_empty = f"{arg!r} in {{s}}", arg == ""
        elif name == "starts-with" and not flags:
            test, on_empty = f"{{s}}.startswith({arg!r})", arg == ""
        elif name == "re:test":
            rx = re.compile(arg, re.IGNORECASE if "i" in flags else 0)
            test, on_empty = f"{self.const(rx)}.search({{s}}) is not None", bool(rx.search(""))
        else:
            raise Unsupported(f"function {name}")
        if var is not None and not on_empty:  # skip the test when the attribute is absent
            return _Cond(f"({var} is not None and {test.format(s=var)})", True)
        return _Cond(f"({test.format(s=subject)})", not on_empty)


def _translate_table(src: str, dst: str) -> dict[int, int | None]:
    """XPath translate(): a character of src maps to the one at its place in dst (first
    occurrence wins) or is removed when dst is shorter."""
    table: dict[int, int | None] = {}
    for k, ch in enumerate(src):
        if ord(ch) not in table:
            table[ord(ch)] = ord(dst[k]) if k < len(dst) else None
    return table


def _first(e, names: tuple[str, ...]) -> str:
    """String value of ``@a|@b|...``: the first of them in document order, or ''."""
    for key, value in e.items():
        if key in names:
            return value
    return ""


def _first2(e, va: str | None, vb: str | None, a: str, b: str) -> str:
    """``_first`` for two attributes already read: the attribute list is read only when the
    element has both."""
    if va is None:
        return vb or ""
    if vb is None:
        return va
    keys = e.keys()
    return va if keys.index(a) < keys.index(b) else vb


def _generate(branches: list[_Branch], attr_vars: dict[str, str]) -> tuple[str, tuple | None]:
    """Python source of ``match(root)``: one pass over the descendants for all branches, each
    attribute read once per element; elements none of whose named attributes is present are
    passed over when no branch can match them."""
    if any(b.tags is None for b in branches):
        all_tags = None
    else:
        all_tags = tuple(sorted({t for b in branches for t in b.tags}))
    body = ["def match(root):", "    out = []"]
    for k, b in enumerate(branches):
        if b.mode == "first":
            body.append(f"    done{k} = False")
        elif b.mode == "first-child":
            body.append(f"    seen{k} = set()")
    body.append("    for e in root.iterdescendants(*_tags):")
    body += [f"        {v} = e.get({name!r})" for name, v in attr_vars.items()]
    if attr_vars and all(b.cond.needs_attr for b in branches):
        body.append("        if " + " and ".join(f"{v} is None" for v in attr_vars.values()) + ":")
        body.append("            continue")
    per_branch_tags = any(b.tags is not None and b.tags != all_tags for b in branches)
    if per_branch_tags or any("t ==" in b.cond.code for b in branches):
        body.append("        t = e.tag")
    body.append("        hit = False")
    for k, b in enumerate(branches):
        guard = [f"not done{k}"] if b.mode == "first" else []
        if b.tags is not None and b.tags != all_tags:
            guard.append(f"t in {b.tags!r}")
        guard.append(b.cond.code)
        body.append(f"        if {' and '.join(guard)}:")
        if b.mode == "first":
            body += [f"            done{k} = True", "            hit = True"]
        elif b.mode == "first-child":
            body += [
                "            p = e.getparent()",
                f"            if p not in seen{k}:",
                f"                seen{k}.add(p)",
                "                hit = True",
            ]
        else:
            body.append("            hit = True")
    body += ["        if hit:", "            out.append(e)"]
    if all(b.mode == "first" for b in branches):
        done = " and ".join(f"done{k}" for k in range(len(branches)))
        body += [f"            if {done}:", "                break"]
    body.append("    return out")
    return "\n".join(body) + "\n", all_tags


def compile_xpath(path: str) -> Callable[[etree._Element], list]:
    """Compile an XPath of the supported subset; raises Unsupported otherwise."""
    comp = _Compiler(path)
    branches = comp.union()
    source, tags = _generate(branches, comp.attr_vars)
    namespace = dict(comp.consts, _first=_first, _first2=_first2, _tags=tags or (etree.Element,))
    name = f"<compiled xpath {path.strip()[:40]!r}>"
    exec(compile(source, name, "exec"), namespace)  # noqa: S102 - source generated above
    match = namespace["match"]
    match.source = source
    return match


class CompiledXPath:
    """Drop-in for an ``lxml.etree.XPath`` called as ``expression(tree)``; keeps the original
    (``.original``) for anything but an element, and ``.path`` for code that reads it."""

    def __init__(self, original: etree.XPath) -> None:
        self.original = original
        self.path = original.path
        self._match = compile_xpath(original.path)

    def __call__(self, tree, **kwargs):
        if kwargs or not isinstance(tree, etree._Element):
            return self.original(tree, **kwargs)
        return self._match(tree)


def _probe_document(path: str) -> etree._Element:
    """An HTML tree exercising an expression, so that a compiled form that differs from lxml's
    shows up: every literal of the expression (and its words) in every attribute it names, on
    the tags it names; and for a few of them the cases where XPath semantics are subtle: both
    attribute orders (``@a|@b``), upper case, inside other text, nested matches, siblings
    (``[1]``), a descendant ``h1``, a comment."""
    from lxml import html

    tags = sorted(set(re.findall(r"(?:self::|\.//)([A-Za-z][\w-]*)", path)) | {"div", "span"})
    attrs = sorted(set(re.findall(r"@([A-Za-z_][\w-]*)", path)))
    words = set()
    for lit in re.findall(r"'([^']*)'|\"([^\"]*)\"", path):
        text = lit[0] or lit[1]
        words.add(text)
        words.update(w for w in re.split(r"[^A-Za-z0-9_-]+", text) if w)
    words = sorted(words)

    def q(value: str) -> str:
        return value.replace("&", "&amp;").replace('"', "&quot;")

    parts = ["<!-- c -->"]
    for k, word in enumerate(words):
        for j, a in enumerate(attrs):
            tag = tags[(k + j) % len(tags)]
            parts.append(f'<{tag} {a}="{q(word)}">w</{tag}>')
    # @a|@b: which one comes first decides, so both orders, the word in either
    for a, b in set(re.findall(r"@([A-Za-z_][\w-]*)\s*\|\s*@([A-Za-z_][\w-]*)", path)):
        for k, word in enumerate(words):
            tag = tags[k % len(tags)]
            for x, y in ((a, b), (b, a)):
                parts.append(f'<{tag} {x}="{q(word)}" {y}="o">u</{tag}>')
                parts.append(f'<{tag} {x}="o" {y}="{q(word)}">u</{tag}>')
    for k, word in enumerate(words[:: max(1, len(words) // 6)]):
        tag = tags[k % len(tags)]
        for a in attrs:
            other = attrs[(attrs.index(a) + 1) % len(attrs)]
            for v in (word.upper(), f"x {word} y", f"{word}-z"):
                parts.append(f'<{tag} {a}="{q(v)}"><p>t</p></{tag}>')
            parts.append(f'<{tag} {other}="o" {a}="{q(word)}"><h1>h</h1></{tag}>')
            parts.append(
                f'<div><{tag} {a}="{q(word)}" {other}="o"><{tag} {a}="{q(word)}">i</{tag}>'
                f'<!-- c --></{tag}><{tag} {a}="{q(word)}">s</{tag}></div>'
            )
    return html.fromstring("<html><body>" + "".join(parts) + "</body></html>")


_installed: dict[tuple[str, int], etree.XPath] = {}


def install() -> int:
    """Replace trafilatura's compilable expressions; returns how many are compiled."""
    from trafilatura import xpaths

    for list_name in EXPRESSION_LISTS:
        exprs = getattr(xpaths, list_name, None)
        if not isinstance(exprs, list):
            continue
        for k, expr in enumerate(exprs):
            if isinstance(expr, CompiledXPath) or not isinstance(expr, etree.XPath):
                continue
            try:
                fast = CompiledXPath(expr)
            except Unsupported as e:
                log.info("trafilatura %s[%d] left to lxml: %s", list_name, k, e)
                continue
            probe = _probe_document(expr.path)
            if fast(probe) != expr(probe):
                log.warning(
                    "trafilatura %s[%d] left to lxml: compiled form disagrees", list_name, k
                )
                continue
            exprs[k] = fast
            _installed[(list_name, k)] = expr
    return len(_installed)


def uninstall() -> None:
    """Put lxml's expressions back (ExtractConfig.compiled_xpath = false)."""
    from trafilatura import xpaths

    for (list_name, k), expr in _installed.items():
        getattr(xpaths, list_name)[k] = expr
    _installed.clear()


def installed() -> list[str]:
    """Names of the replaced expressions, e.g. ``OVERALL_DISCARD_XPATH[0]``."""
    return [f"{name}[{k}]" for name, k in sorted(_installed)]
