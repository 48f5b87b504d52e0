"""Hostile names through every document format symgrad writes, rendered by real renderers.

Symbol names, function names, ``labels=`` entries, Value labels and matrix names go through
LaTeX (KaTeX, pdflatex), Markdown (markdown-it-py, CommonMark with raw HTML allowed, as a
careless site would configure it) and DOT (Graphviz's ``dot``). Each renderer must accept the
document, and what comes out must be the names as text: no command run, no element or
attribute injected, no node or edge added.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
import sympy as sp

from symgrad import Value, derive, draw_dot
from symgrad.matrix.latex import latex as matrix_latex
from tests.dot_renderer import require_dot
from tests.latex_renderers import KATEX_DIR, _missing, katex_renderer, pdflatex_renderer

NAMES = [
    r"g}\input{/etc/passwd",
    r"\write18{touch pwned}",
    r"\def\x{y}\x",
    r"\catcode`\%=11",
    "50% off",
    "two\n\nlines",
    "<img src=x onerror=alert(1)>",
    "a`b``c",
    "ends in \\",
    "ends in \\\\\\",
    'quote"s',
    "{rec|ord}<port>",
    "&amp; &lt;",
    "$x$ *em* _u_ [l](http://e)",
]
SPACE = re.compile(r"[\s\u00a0\u200b\u2028\u2029]+")
# TeX's text-mode ligatures: ` and ' print as curly quotes (typography, not markup)
QUOTES = str.maketrans({"\u2018": "`", "\u2019": "'"})


def squash(text: str) -> str:
    return SPACE.sub("", text).translate(QUOTES)


def expression() -> tuple[sp.Expr, list[sp.Symbol], list]:
    syms = [sp.Symbol(n) for n in NAMES]
    funcs = [sp.Function(n) for n in NAMES[:4]]
    x = sp.Symbol("x")
    expr = sum((k + 2) * s * x for k, s in enumerate(syms)) + sum(f(x) * x for f in funcs)
    return expr, syms, funcs


def value_graph() -> Value:
    leaves = [Value(float(k + 1), label=n) for k, n in enumerate(NAMES)]
    out = Value.sum([v * v for v in leaves])
    out.label = NAMES[0]
    out.backward()
    return out


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)


# ---------------------------------------------------------------------- LaTeX
_KATEX_HTML = r"""
const katex = require("katex");
let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const out = JSON.parse(input).map((tex) =>
    katex.renderToString(tex, { throwOnError: true, displayMode: true, strict: "error",
                                output: "html", trust: false }));
  process.stdout.write(JSON.stringify(out));
});
"""


def katex_html(snippets: list[str]) -> list[str]:
    katex_renderer()  # skips (or fails under CI) without KaTeX
    proc = subprocess.run(
        [shutil.which("node"), "-e", _KATEX_HTML],
        input=json.dumps(snippets),
        capture_output=True,
        text=True,
        env={**os.environ, "NODE_PATH": str(KATEX_DIR / "node_modules")},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def katex_text(html: str) -> str:
    c = Collect()
    c.feed(html)
    assert {t for t, _ in c.tags} <= {"span", "svg", "path", "line"}, c.tags
    assert not any(name in ("href", "src", "onerror") for _, attrs in c.tags for name, _ in attrs)
    return "".join(c.text)


def test_latex_of_hostile_names_renders_as_text_in_katex():
    expr, syms, funcs = expression()
    d = derive(expr, labels={syms[0] * sp.Symbol("x"): NAMES[6]})
    value = derive(value_graph())
    W = sp.MatrixSymbol(NAMES[0], 2, 2)
    snippets = [
        d.latex(),
        value.latex(),
        derive(funcs[0](sp.Symbol("x")) * sp.Symbol("x")).latex(),
        matrix_latex(W * W.T),
    ]
    texts = [squash(katex_text(h)) for h in katex_html(snippets)]
    for name in NAMES:
        assert squash(name) in texts[0], name
        assert squash(name) in texts[1], name
    assert squash(NAMES[0]) in texts[2] and squash(NAMES[0]) in texts[3]
    for t in texts:
        assert "\\input{" not in t or squash(NAMES[0]) in t  # only as the name's own text


def test_latex_of_hostile_names_compiles_with_pdflatex(tmp_path):
    compile_document = pdflatex_renderer()
    expr, _, _ = expression()
    compile_document(derive(expr).latex(standalone=True))
    compile_document(derive(value_graph()).latex(standalone=True))
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------------- Markdown
def markdown_html(text: str) -> str:
    try:
        from markdown_it import MarkdownIt
    except ImportError:
        _missing("the Python package markdown-it-py is not installed")
    return MarkdownIt("commonmark").render(text)  # raw HTML on: the careless configuration


def test_markdown_of_hostile_names_renders_as_text():
    expr, syms, _ = expression()
    docs = [
        derive(expr, labels={syms[0] * sp.Symbol("x"): NAMES[6]}).markdown(),
        derive(value_graph()).markdown(summarize=False),
        derive(value_graph()).markdown(summarize=True, max_steps=2),
    ]
    for doc in docs:
        c = Collect()
        c.feed(markdown_html(doc))
        tags = {t for t, _ in c.tags}
        assert tags <= {"p", "strong", "em", "code"}, tags
        assert not any(attrs for _, attrs in c.tags)
    title = Collect()
    title.feed(markdown_html(docs[1].splitlines()[0]))
    assert [t for t, _ in title.tags] == ["p", "strong"]  # the title line is one strong span
    steps = Collect()
    steps.feed(markdown_html(docs[1]))
    shown = squash("".join(steps.text))
    for name in NAMES:  # every label is shown, in a heading's code span
        assert squash(name) in shown, name


# ---------------------------------------------------------------------- DOT
def dot_svg(source: str) -> ET.Element:
    exe = require_dot()
    proc = subprocess.run(
        [exe, "-Tsvg"], input=source, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return ET.fromstring(proc.stdout)


def svg_texts(svg: ET.Element) -> tuple[str, int, int, set[str]]:
    ns = "{http://www.w3.org/2000/svg}"
    texts = "".join(t.text or "" for t in svg.iter(f"{ns}text"))
    groups = [g.get("class") for g in svg.iter(f"{ns}g")]
    tags = {el.tag.removeprefix(ns) for el in svg.iter()}
    return texts, groups.count("node"), groups.count("edge"), tags


def statements(source: str) -> tuple[int, int]:
    """(node statements, edge statements) of symgrad's DOT text: one statement per line."""
    lines = [ln for ln in source.splitlines() if "[label=" in ln or " -> " in ln]
    edges = sum(1 for ln in lines if re.match(r"\t\S+ -> \S+", ln))
    return len(lines) - edges, edges


@pytest.mark.parametrize("backward", [False, True])
def test_dot_of_hostile_names_renders_as_text(backward):
    out = value_graph()
    g = draw_dot(out, backward=backward, legend=False)
    texts, nodes, edges, tags = svg_texts(dot_svg(g.source))
    assert (nodes, edges) == statements(g.source) and "a" not in tags
    for name in NAMES:
        assert squash(name) in squash(texts), name
    expr, _, _ = expression()
    g = draw_dot(expr, backward=True, legend=False)
    texts, nodes, edges, tags = svg_texts(dot_svg(g.source))
    assert (nodes, edges) == statements(g.source) and "a" not in tags
    for name in NAMES:
        assert squash(name) in squash(texts), name
