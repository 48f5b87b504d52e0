"""The explorer: a derivation as one self-contained, interactive HTML page.

The page shows the graph (a :class:`~symgrad.derivation.picture.Picture`, laid out here in
layers and drawn as SVG by the page's script) beside the derivation. Buttons and the arrow keys
step through the backward pass: each step highlights its node, the edges its adjoint flows
along, and shows that step's maths (rendered by KaTeX) and numbers. Clicking a node shows its
formula, value, gradient and local partials; editing a leaf's value recomputes every value and
gradient in the page from formulas printed by the compiler's JavaScript target
(:mod:`symgrad.codegen.js`, through :func:`_js_formulas`).

Everything is inlined: KaTeX's script, style and fonts (as base64 data URLs, from the bundled
npm package under ``assets/katex``, MIT licence), the layout, the data. Opening the page makes
no network request. User text (names, labels) reaches the page only as JSON data, escaped for
an HTML ``<script>`` element in :func:`json_for_html`, and is shown through ``textContent``
or KaTeX (whose input the LaTeX printer escapes); it never becomes markup or code.

>>> import sympy as sp
>>> from symgrad import derive
>>> x = sp.Symbol("x")
>>> page = explorer_page(derive(sp.sin(x) * x, at={x: 1.0}))
>>> page.startswith("<!DOCTYPE html>"), "<link" in page, "url(fonts/" in page
(True, False, False)
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
from importlib import resources
from typing import Any

import sympy as sp

from ..codegen.js import emit
from ..errors import InputTypeError, UnsupportedFunctionError
from ..functions import sigmoid
from ..graph import rebuild, topo_order
from ..inputs import check_choice, describe
from ..markup import html_text
from .derive import Derivation
from .picture import Picture
from .printers import LatexNamePrinter
from .views import latex_steps

__all__ = [
    "COLLAPSE_ABOVE",
    "Explorer",
    "explorer_page",
    "json_for_html",
]

#: Above this many nodes the page writes each operation into its result's node (as ``collapse``)
#: and starts with single-use intermediate nodes folded into the node they feed (a neuron).
COLLAPSE_ABOVE = 60
_DX, _DY = 190.0, 78.0
_GENERATED = re.compile(r"u_\d+")

_ASSETS = "symgrad.derivation.assets"
_FONT = re.compile(
    r"src:url\(fonts/(KaTeX_[A-Za-z0-9_-]+)\.woff2\) format\(\"woff2\"\)"
    r"(,url\(fonts/[^)]*\) format\(\"[a-z]+\"\))*"
)


# ---------------------------------------------------------------------- escaping (one place)
def json_for_html(data: Any) -> str:
    """``data`` as JSON that is safe inside an HTML ``<script>`` element.

    ``<``, ``>`` and ``&`` become ``\\u003c``-style escapes (so no ``</script>`` or ``<!--`` can
    end the element early), as do U+2028/U+2029; non-finite numbers are refused (they are
    ``null`` in the page's data).

    >>> json_for_html({"name": "</script><b>"})
    '{"name": "\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e"}'
    """
    text = json.dumps(data, allow_nan=False, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# ---------------------------------------------------------------------- bundled assets
@functools.cache
def _asset(name: str) -> bytes:
    return resources.files(_ASSETS).joinpath(name).read_bytes()


@functools.cache
def _katex_css() -> str:
    """KaTeX's style with each font as a woff2 data URL (every browser KaTeX supports reads it)."""

    def inline(m: re.Match) -> str:
        blob = base64.b64encode(_asset(f"katex/fonts/{m[1]}.woff2")).decode("ascii")
        return f'src:url(data:font/woff2;base64,{blob}) format("woff2")'

    css = _asset("katex/katex.min.css").decode("utf-8")
    out = _FONT.sub(inline, css)
    if "url(fonts/" in out:  # a KaTeX update changed the CSS: fail loudly, never fetch fonts
        raise RuntimeError("katex.min.css refers to fonts the explorer does not inline")
    return out


# ---------------------------------------------------------------------- the layout
def _layout(order: list[str], args: dict[str, list[str]]) -> dict[str, tuple[float, float]]:
    """A layered layout: column = height above the leaves, rows ordered by their arguments.

    ``order`` lists node ids arguments first; ``args`` gives each node's argument ids. Each node
    sits in the column after its highest argument (leaves in column 0, the output last); within
    a column nodes are ordered by the mean row of their arguments (a barycentre sweep, as in
    Sugiyama's method), which keeps most edges short and uncrossed.

    >>> _layout(["a", "b", "c"], {"a": [], "b": [], "c": ["a", "b"]})["c"]
    (210.0, 59.0)
    """
    column: dict[str, int] = {}
    for nid in order:
        column[nid] = 1 + max((column[a] for a in args[nid]), default=-1)
    columns: dict[int, list[str]] = {}
    for nid in order:
        columns.setdefault(column[nid], []).append(nid)
    row: dict[str, float] = {}

    def centre(nid: str) -> float:
        return sum(row[a] for a in args[nid]) / len(args[nid])

    for c in sorted(columns):
        members = columns[c]
        if c:
            members.sort(key=centre)
        wanted = [centre(nid) if c else 0.0 for nid in members]
        for i, nid in enumerate(members):
            row[nid] = float(i)
        if c and members:  # centre the column on its arguments' rows
            shift = sum(wanted) / len(members) - (len(members) - 1) / 2
            for nid in members:
                row[nid] += max(shift, 0.0)
    return {nid: (column[nid] * _DX + 20.0, row[nid] * _DY + 20.0) for nid in order}


def _groups(order: list[str], edges: list, names: dict[str, str]) -> dict[str, str]:
    """Each node's group: a generated intermediate (``u_k``) used exactly once joins its user.

    Single-use chains and trees fold into the node they feed: in a network, the products,
    partial sums and activation of one neuron become one box (the activation feeds many
    neurons, so it is where the group stops); labelled nodes, leaves and the output stay.
    """
    uses: dict[str, list[str]] = {nid: [] for nid in order}
    for e in edges:
        uses[e.source].append(e.target)
    group: dict[str, str] = {}
    for nid in reversed(order):  # users before their arguments
        users = uses[nid]
        own = not users or len(users) > 1 or not _GENERATED.fullmatch(names[nid])
        group[nid] = nid if own else group[users[0]]
    return group


# ---------------------------------------------------------------------- formulas as JavaScript
def _js_formulas(pic: Picture, shown: list[str], edges: list) -> tuple[str | None, str]:
    """JavaScript computing every node's value and every edge's local partial from the leaves.

    The compiler's JavaScript target (:func:`symgrad.codegen.js.emit`) prints one function over
    the leaf symbols whose outputs are ``[values of shown, local partials of edges]``: each DAG
    node is computed once. ``symgradForward(x)`` adapts it to the page: ``x`` holds the leaves'
    numbers at their positions in ``shown``. Returns ``(source, "")``, or ``(None, reason)``
    when a formula has no JavaScript form (the page then shows its numbers without editing).
    """
    exprs = [pic.node(nid).expr for nid in shown]
    leaves = [i for i, e in enumerate(exprs) if isinstance(e, sp.Symbol)]
    partials = [e.partial if e.partial is not None else sp.S.Zero for e in edges]
    outputs = _exp_sigmoid([*exprs, *partials])
    try:
        body = emit(
            [outputs[: len(exprs)], outputs[len(exprs) :]],
            [[exprs[i] for i in leaves]],
            "symgradExplorer",
        )
    except UnsupportedFunctionError as exc:
        return None, f"no JavaScript for {exc.head}"
    picks = ", ".join(f"x[{i}]" for i in leaves)
    return f"{body}function symgradForward(x) {{ return symgradExplorer([{picks}]); }}\n", ""


def _exp_sigmoid(roots: list[sp.Basic]) -> list[sp.Basic]:
    """``roots`` with symgrad's ``sigmoid(a)`` written as ``1/(1 + exp(-a))``.

    The compiler's JavaScript target does not print ``sigmoid`` yet (it prints SymPy's own
    functions); rebuilt bottom-up in one pass over the DAG, unchanged nodes kept.
    """
    order = topo_order(roots)
    if not any(isinstance(n, sigmoid) for n in order):
        return roots
    new: dict[sp.Basic, sp.Basic] = {}
    for node in order:
        args = [new[a] for a in node.args]
        if isinstance(node, sigmoid):
            new[node] = 1 / (1 + sp.exp(-args[0]))
        elif any(a is not b for a, b in zip(args, node.args, strict=True)):
            new[node] = rebuild(node, args)
        else:
            new[node] = node
    return [new[r] for r in roots]


# ---------------------------------------------------------------------- the page
def _number(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _data(d: Derivation, pic: Picture, title: str) -> tuple[dict, list[str], list]:
    shown = [n.id for n in pic.nodes if n.expr is not None and not n.expr.is_Number]
    kept = [e for e in pic.edges if e.source in shown and e.target in shown]
    args: dict[str, list[str]] = {nid: [] for nid in shown}
    for e in kept:  # numbers are part of their node's formula, not boxes of their own
        args[e.target].append(e.source)
    at = _layout(shown, args)
    group = _groups(shown, kept, {nid: pic.node(nid).name for nid in shown})
    roots = [nid for nid in shown if group[nid] == nid]
    root_args = {r: [] for r in roots}
    for e in kept:
        a, b = group[e.source], group[e.target]
        if a != b and a not in root_args[b]:
            root_args[b].append(a)
    folded = _layout(roots, root_args)
    tex = LatexNamePrinter({n: sp.Symbol(s) for n, s in d.names.items() if n.args})
    plain = LatexNamePrinter({})
    symbolic = Derivation(
        d.target, d.wrt, d.steps, d.names, {}, {}, d.gradients, d.simplify
    )  # the maths in names only: the numbers beside it change when a leaf is edited
    blocks, gradients = latex_steps(symbolic)
    index = {nid: i for i, nid in enumerate(shown)}
    nodes = []
    for nid in shown:
        n = pic.node(nid)
        x, y = at[nid]
        nodes.append(
            {
                "id": nid,
                "name": n.name,
                "kind": n.kind,
                "op": n.op,
                "merged": n.merged,
                "tex": tex.show(n.expr, root=True) if n.expr.args else "",
                "nameTex": plain.show(sp.Symbol(n.name)),
                "value": _number(n.value),
                "gradient": _number(n.gradient),
                "step": n.step,
                "x": x,
                "y": y,
                "group": index[group[nid]],
                "gx": folded[group[nid]][0],
                "gy": folded[group[nid]][1],
            }
        )
    edges = []
    for e in kept:
        edges.append(
            {
                "source": index[e.source],
                "target": index[e.target],
                "flows": bool(e.local),
                "tex": tex.show(e.partial) if e.partial is not None else "",
                "local": _number(e.local_value),
            }
        )
    steps = []
    for s, (rule, block) in zip(pic.steps(), blocks, strict=True):
        steps.append({"node": index[s.id], "rule": rule, "tex": block})
    data = {
        "title": title,
        "output": index[pic.output],
        "nodes": nodes,
        "edges": edges,
        "steps": steps,
        "gradientsTex": gradients,
        "folded": len(shown) > COLLAPSE_ABOVE,
    }
    return data, shown, kept


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
script-src 'unsafe-inline'; style-src 'unsafe-inline'; font-src data:; img-src data:">
<title>{title}</title>
<style>{katex_css}</style>
<style>{page_css}</style>
</head>
<body>
<header>
  <h1 id="title"></h1>
  <nav>
    <button id="first" title="Home">start</button>
    <button id="prev" title="left arrow">&#x25C0; back</button>
    <span id="stepinfo"></span>
    <button id="next" title="right arrow">forward &#x25B6;</button>
    <button id="last" title="End">end</button>
    <button id="fold"></button>
  </nav>
</header>
<main>
  <section id="graph"><svg id="svg" xmlns="http://www.w3.org/2000/svg"></svg></section>
  <aside id="side">
    <div id="step" class="panel"></div>
    <div id="details" class="panel"></div>
    <div id="leaves" class="panel"></div>
    <div id="table" class="panel"></div>
  </aside>
</main>
<script id="symgrad-data" type="application/json">{data}</script>
<script>{katex_js}</script>
<script>{formulas}</script>
<script>{page_js}</script>
</body>
</html>
"""


def explorer_page(d: Derivation, *, title: str | None = None, collapse: bool | str = "auto") -> str:
    """The explorer page of ``d``: one self-contained HTML document (see the module).

    Args:
        d: the derivation (with numbers, from ``derive(..., at=...)`` or of a ``Value``; without
            numbers the page shows the steps and formulas only).
        title: the page's heading (default: the derivation's target).
        collapse: write each operation into its result's node; ``"auto"`` does so above
            :data:`COLLAPSE_ABOVE` nodes.

    Returns:
        The HTML text.

    >>> import sympy as sp
    >>> from symgrad import derive
    >>> a, b = sp.symbols("a b")
    >>> page = explorer_page(derive(a * b, at={a: 2, b: 3}), title="<b>product</b>")
    >>> "<title>&lt;b&gt;product&lt;/b&gt;</title>" in page
    True
    """
    if not isinstance(d, Derivation):
        raise InputTypeError(f"the explorer draws a Derivation (from derive()), got {describe(d)}")
    collapse = check_choice(collapse, (True, False, "auto"), "collapse")
    if collapse == "auto":
        collapse = len(d.names) > COLLAPSE_ABOVE
    pic = Picture.from_derivation(d, backward=True, collapse=bool(collapse))
    if title is None:
        title = f"{d.name(d.target)}: the backward pass"
    data, shown, edges = _data(d, pic, title)
    formulas, reason = _js_formulas(pic, shown, edges)
    data["editable"] = formulas is not None
    data["whyNotEditable"] = reason
    return _PAGE.format(
        title=html_text(title),
        katex_css=_katex_css(),
        page_css=_asset("explorer.css").decode("utf-8"),
        data=json_for_html(data),
        katex_js=_asset("katex/katex.min.js").decode("utf-8").replace("</script", "<\\/script"),
        formulas=formulas or "const symgradForward = null;",
        page_js=_asset("explorer.js").decode("utf-8"),
    )


class Explorer:
    """The explorer page for a notebook: shown inline in a sandboxed frame.

    Jupyter renders ``_repr_html_``; the page runs inside an ``<iframe srcdoc=...>`` with
    scripts allowed and nothing else (no network, no access to the notebook).

    >>> import sympy as sp
    >>> from symgrad import derive
    >>> view = Explorer(derive(sp.Symbol("x") ** 2, at={"x": 3}))
    >>> view._repr_html_().startswith('<iframe sandbox="allow-scripts"')
    True
    """

    def __init__(self, d: Derivation, *, height: int = 640, **options: Any) -> None:
        self.html = explorer_page(d, **options)
        self.height = int(height)

    def _repr_html_(self) -> str:
        doc = html_text(self.html)
        return (
            f'<iframe sandbox="allow-scripts" style="width:100%;height:{self.height}px;'
            f'border:1px solid #e5e7eb" srcdoc="{doc}"></iframe>'
        )

    def __repr__(self) -> str:
        return f"<symgrad explorer page, {len(self.html) // 1024} KiB>"
