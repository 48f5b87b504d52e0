"""Pictures drawn with Graphviz: a :class:`~symgrad.derivation.picture.Picture` as DOT.

:func:`draw_dot` draws micrograd's picture: every value as a record ``{ label | data | grad }``
and every operation as a small node between its operands and its result. It takes

* a ``Value`` (micrograd's or symgrad's), drawn from its own graph with the numbers it holds
  (call ``backward()`` first to see gradients);
* a SymPy expression, drawn as a DAG (a shared subexpression appears once, with one edge per
  use), with values and gradients when a point is given (``at={...}``): the numbers come from
  :func:`symgrad.derive`, the one reverse sweep;
* a :class:`symgrad.Derivation`.

With ``backward=True`` (the default for a Derivation) the adjoint flow is drawn too: a red
edge from each node to each argument, labelled with the local derivative and its value.

This is the only module that imports ``graphviz``, and every text reaching DOT passes through
:func:`dot_text`. The result is a ``graphviz.Digraph``: ``.source`` is the DOT text (no ``dot``
program needed), a notebook shows it inline (at most :data:`DEFAULT_SIZE` inches wide, a
notebook column), and :func:`render` writes SVG, PNG or PDF to the one file named.

>>> import sympy as sp
>>> x, y = sp.symbols("x y")
>>> g = draw_dot(sp.sin(x * y) + x, at={x: 2, y: 0.5})
>>> print(g.source.splitlines()[4])
    n0 [label="{ x | data 2.0000 | grad 1.2702 }" fillcolor="#dbeafe"]
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sympy as sp

from ..errors import BackendUnavailableError, InputTypeError, OptionError
from ..files import atomic_write
from ..inputs import check_choice, describe
from .derive import Derivation
from .picture import DEFAULT_MAX_NODES, Picture, is_value, picture_of

__all__ = ["DEFAULT_MAX_NODES", "DEFAULT_SIZE", "dot_text", "draw_dot", "render"]

#: Graphviz's ``size`` (inches, shrink only): 9 inches is 864 px, a notebook column.
DEFAULT_SIZE = "9,12"

RANKDIRS = ("LR", "RL", "TB", "BT")
_SIZE = re.compile(r"\d+(\.\d+)?(,\d+(\.\d+)?)?!?")

_INSTALL_DOT = (
    "the Graphviz program 'dot' is not installed; install the system package 'graphviz' "
    "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
    "conda: conda install graphviz). The DOT text is still available as graph.source"
)

# kind -> (fill colour, legend text)
_KINDS = {
    "input": ("#dbeafe", "input"),
    "parameter": ("#fde68a", "parameter"),
    "constant": ("#e5e7eb", "constant"),
    "intermediate": ("#ffffff", "intermediate"),
    "output": ("#bbf7d0", "output"),
    "collapsed": ("#f3f4f6", "hidden nodes (depth=)"),
}
_BACKWARD_COLOR = "#dc2626"


# ---------------------------------------------------------------------- escaping (one place)
_PLAIN_ID = re.compile(r"[A-Za-z_][A-Za-z_0-9]*|-?(\.[0-9]+|[0-9]+(\.[0-9]*)?)")
_KEYWORDS = {"node", "edge", "graph", "digraph", "subgraph", "strict"}
_RECORD_SPECIAL = re.compile(r"([{}|<>])")


def dot_text(text: str, record: bool = False) -> str:
    r"""``text`` as a DOT attribute value that Graphviz shows literally.

    Inside a quoted DOT string a backslash starts an escape (``\n``, ``\N``, ...) and ``\"``
    ends nothing; record labels also give ``{ } | < >`` a meaning, and every label reads HTML
    entities. So: ``&`` as ``&amp;``, backslashes doubled, quotes and (in records) those
    characters backslash-escaped, line breaks as ``\n``. Plain
    identifiers and numbers stay bare, as graphviz's own quoting leaves them; nothing is ever
    passed on as an HTML-like ``<...>`` label.

    Args:
        text: the text to show.
        record: the text is a field of a record label.

    >>> print(dot_text("x"), dot_text("a b"), dot_text("a\\"), dot_text("{x}", record=True))
    x "a b" "a\\" "\{x\}"
    """
    if not record and _PLAIN_ID.fullmatch(text) and text.lower() not in _KEYWORDS:
        return text
    return '"' + _escape(text, record) + '"'


def _escape(text: str, record: bool) -> str:
    # Graphviz also reads HTML entities (&amp;) in every label: & itself must be one
    text = text.replace("&", "&amp;").replace("\\", "\\\\").replace('"', '\\"')
    if record:
        text = _RECORD_SPECIAL.sub(r"\\\1", text)
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def _record(cells: list[str]) -> str:
    return '"{ ' + " | ".join(_escape(c, True) for c in cells) + ' }"'


# ---------------------------------------------------------------------- graphviz (optional)
def _graphviz():
    try:
        import graphviz
    except ImportError as exc:
        raise BackendUnavailableError(
            "drawing graphs needs the Python package 'graphviz': pip install graphviz "
            "(and the Graphviz program 'dot' to render: apt-get install graphviz or "
            "brew install graphviz)"
        ) from exc
    return graphviz


@contextmanager
def _dot_errors():
    graphviz = _graphviz()
    try:
        yield
    except graphviz.ExecutableNotFound as exc:
        raise BackendUnavailableError(_INSTALL_DOT) from exc
    except graphviz.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise BackendUnavailableError(
            "Graphviz's dot could not render the graph" + (f": {detail[-1]}" if detail else "")
        ) from None


def pipe(graph: Any, format: str) -> bytes:
    """``graph`` rendered by Graphviz's ``dot`` in ``format``, as bytes (no file is written).

    Raises:
        BackendUnavailableError: the ``dot`` program is missing or failed.

    >>> import sympy as sp
    >>> pipe(draw_dot(sp.Symbol("x") + 1), "svg")[:5]  # doctest: +SKIP
    b'<?xml'
    """
    with _dot_errors():
        return _graphviz().Digraph.pipe(graph, format=format)


@functools.cache
def _digraph_class() -> type:
    graphviz = _graphviz()

    class Digraph(graphviz.Digraph):
        """A ``graphviz.Digraph`` whose rendering says how to install ``dot`` when it is missing.

        ``render`` writes only the file named, atomically (see :func:`render`).
        """

        def pipe(self, *args: Any, **kwargs: Any) -> Any:  # used by notebooks' inline display
            with _dot_errors():
                return super().pipe(*args, **kwargs)

        def render(self, filename=None, directory=None, view=False, cleanup=False, **kw):
            outfile = kw.pop("outfile", None)
            fmt = kw.pop("format", None)
            if outfile is None or view or kw:  # graphviz's own behaviour, .gv file and all
                with _dot_errors():
                    return super().render(
                        filename, directory, view, cleanup, format=fmt, outfile=outfile, **kw
                    )
            return str(render(self, outfile, fmt))

    return Digraph


def render(graph: Any, path: str | Path, format: str | None = None) -> Path:
    """Write ``graph`` (from :func:`draw_dot`) to ``path`` with the Graphviz ``dot`` program.

    Only ``path`` is written, through a temporary file and an atomic rename: no ``.gv`` source
    file is made next to it, and an existing file is replaced only when the picture is complete.

    Args:
        graph: a ``graphviz.Digraph`` (or ``Graph``).
        path: the output file; its suffix gives the format unless ``format`` is given.
        format: ``"svg"``, ``"png"``, ``"pdf"`` or any format Graphviz knows.

    Returns:
        The path written.

    Raises:
        BackendUnavailableError: the ``graphviz`` package or the ``dot`` program is missing
            (the message names the system package to install).
        OptionError: no format (``path`` has no suffix and ``format`` is None) or an unknown
            one.
        FileAccessError: ``path`` is a folder or cannot be written.

    >>> import sympy as sp, tempfile, os
    >>> g = draw_dot(sp.Symbol("x") + 1)
    >>> # the next example needs the dot program
    >>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +SKIP
    ...     render(g, os.path.join(tmp, "x.svg")).name
    'x.svg'
    >>> render(g, "picture")
    Traceback (most recent call last):
    ...
    symgrad.errors.OptionError: cannot tell the output format of 'picture': give a suffix such \
as .svg, .png or .pdf, or format=... (got None)
    """
    graphviz = _graphviz()
    if not isinstance(graph, (graphviz.Digraph, graphviz.Graph)):
        raise InputTypeError(
            f"graph must be a graphviz Digraph (from draw_dot), got {describe(graph)}"
        )
    path = Path(path)
    fmt = format or path.suffix.lstrip(".")
    if not fmt or fmt not in graphviz.FORMATS:
        raise OptionError(
            f"cannot tell the output format of {str(path)!r}: give a suffix such as .svg, .png "
            f"or .pdf, or format=... (got {format!r})"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, pipe(graph, fmt))


# ---------------------------------------------------------------------- Picture -> DOT
def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def _wrap(name: str) -> str:
    # "d(x1*w1)/dx1": parenthesise names that are not plain identifiers
    return name if name.replace("_", "a").replace(".", "a").isalnum() else f"({name})"


def _statements(pic: Picture, numbers: bool) -> tuple[list[str], set[str]]:
    """The DOT node and edge statements of ``pic``, and the kinds of node drawn."""
    nodes: list[str] = []
    edges: list[str] = []
    kinds: set[str] = set()
    by_id = {n.id: n for n in pic.nodes}
    flows = {e.target for e in pic.edges if e.local}  # results whose adjoint flows back
    label_key = "label" if len(pic.nodes) <= 300 else "xlabel"  # external labels: cheaper
    out_edges: dict[str, list] = {}
    for e in pic.edges:
        out_edges.setdefault(e.target, []).append(e)
    for n in pic.nodes:
        kinds.add(n.kind)
        fill = _KINDS[n.kind][0]
        if n.kind == "constant" and n.expr is not None:  # a number argument of an expression
            label = dot_text(n.name)
            nodes.append(f"\t{n.id} [label={label} shape=box fillcolor={dot_text(fill)}]")
            continue
        title = (f"{n.name} = {n.op}" if n.name else n.op) if n.merged else n.name
        cells = [title]
        if n.value is not None and (numbers or n.expr is None):
            cells.append(f"data {_num(n.value)}")
        if n.gradient is not None and (numbers or n.expr is None):
            cells.append(f"grad {_num(n.gradient)}")
        extra = " penwidth=2" if n.kind == "output" else ""
        nodes.append(f"\t{n.id} [label={_record(cells)} fillcolor={dot_text(fill)}{extra}]")
        into = n.id
        if n.op and not n.merged:
            into = n.id + "_op"
            nodes.append(f"\t{into} [label={dot_text(n.op)} shape=ellipse style=solid]")
            color = f" [color={dot_text('black:' + _BACKWARD_COLOR)}]" if n.id in flows else ""
            edges.append(f"\t{into} -> {n.id}{color}")
        for e in out_edges.get(n.id, ()):
            attrs = ""
            if e.local:
                text = f"d{_wrap(n.name)}/d{_wrap(by_id[e.source].name)} = {e.local}"
                if numbers and e.local_value is not None and not e.partial.is_Number:
                    text += f" = {_num(e.local_value)}"
                color = dot_text(f"black:{_BACKWARD_COLOR}")
                attrs = (
                    f" [{label_key}={dot_text(text)} color={color} "
                    f"fontcolor={dot_text(_BACKWARD_COLOR)}]"
                )
            edges.append(f"\t{e.source} -> {into}{attrs}")
        if n.hidden:
            kinds.add("collapsed")
            more = f"... {n.hidden} node{'s' if n.hidden != 1 else ''} below"
            fill = dot_text(_KINDS["collapsed"][0])
            nodes.append(f"\t{n.id}_more [label={dot_text(more)} shape=note fillcolor={fill}]")
            edges.append(f"\t{n.id}_more -> {into} [style=dotted]")
    return [s + "\n" for s in nodes + edges], kinds


def _legend_html(kinds: set[str], backward: bool) -> str:
    # one compact HTML-like table: a coloured cell per kind of node drawn (our own text only)
    cells = "".join(
        f'<td bgcolor="{fill}">{text}</td>'
        for kind, (fill, text) in _KINDS.items()
        if kind in kinds
    )
    rows = f"<tr>{cells}</tr>"
    if backward:
        span = max(1, len(kinds))
        rows += (
            f'<tr><td colspan="{span}"><font color="{_BACKWARD_COLOR}">red line, dA/dB: the '
            "local derivative; the gradient of B is the sum over its uses of "
            "(grad of A) * dA/dB</font></td></tr>"
        )
    return f'<<table border="0" cellborder="1" cellspacing="0" cellpadding="4">{rows}</table>>'


def to_graphviz(
    pic: Picture,
    format: str = "svg",
    rankdir: str = "LR",
    legend: bool | str = "auto",
    size: str | None = DEFAULT_SIZE,
    numbers: bool = True,
) -> Any:
    """A ``graphviz.Digraph`` of ``pic`` (see :func:`draw_dot` for the options).

    >>> import sympy as sp
    >>> from symgrad import derive
    >>> from symgrad.derivation.picture import Picture
    >>> g = to_graphviz(Picture.from_derivation(derive(sp.Symbol("x") ** 2)), legend=False)
    >>> print(g.source.splitlines()[-1])
    }
    """
    graph_attr = {"rankdir": rankdir}
    if size is not None:
        graph_attr["size"] = size
    g = _digraph_class()(format=format, graph_attr=graph_attr)
    g.attr("node", shape="record", style="filled", fontname="Helvetica", fontsize="11")
    g.attr("edge", fontname="Helvetica", fontsize="9")
    lines, kinds = _statements(pic, numbers)
    g.body.extend(lines)
    if legend is True or (legend == "auto" and (pic.backward or "parameter" in kinds)):
        g.node("legend", _legend_html(kinds, pic.backward), shape="plaintext", style="")
    return g


# ---------------------------------------------------------------------- the public function
def _check_options(format: object, rankdir: object, depth: object, max_nodes: object) -> None:
    graphviz = _graphviz()
    if not isinstance(format, str) or format not in graphviz.FORMATS:
        raise OptionError(
            f"format must be a Graphviz output format such as 'svg', 'png' or 'pdf', got {format!r}"
        )
    check_choice(rankdir, RANKDIRS, "rankdir")
    for name, val in (("depth", depth), ("max_nodes", max_nodes)):
        if val is not None and (isinstance(val, bool) or not isinstance(val, int) or val < 0):
            raise OptionError(f"{name} must be a non-negative integer or None, got {val!r}")


def draw_dot(
    target: object,
    format: str = "svg",
    rankdir: str = "LR",
    *,
    at: Mapping | None = None,
    wrt: object = None,
    backward: bool | None = None,
    params: Iterable = (),
    labels: Mapping[sp.Basic, str] | None = None,
    collapse: bool = False,
    depth: int | None = None,
    max_nodes: int | None = DEFAULT_MAX_NODES,
    legend: bool | str = "auto",
    size: str | None = DEFAULT_SIZE,
) -> Any:
    """Draw a ``Value``, a SymPy expression or a ``Derivation`` as a Graphviz graph.

    Args:
        target: a ``Value`` (its ``data`` and ``grad`` are shown as they are), a scalar SymPy
            expression, or a :class:`symgrad.Derivation`.
        format: the output format used by ``.render()`` and notebooks (``"svg"``, ``"png"``,
            ``"pdf"``, ...).
        rankdir: the layout direction: ``"LR"`` (left to right, as micrograd), ``"TB"``, ...
        at: ``{symbol or name: number}`` for a SymPy expression: shows the value of every node
            and its gradient ``d target / d node`` (computed by :func:`symgrad.derive`).
        wrt: for a SymPy expression, the symbols whose gradients are shown (default all).
        backward: also draw the backward pass: the adjoint flow from each node to its
            arguments, each edge labelled with the local derivative (and its value). Default:
            True for a Derivation, else False. A ``Value`` is then drawn through its SymPy
            expression (``value._symgrad_graph()``), with the names :func:`symgrad.derive` gives.
        params: the parameters (``Value`` objects, symbols or names), drawn in their own colour;
            other leaves are inputs, numbers are constants.
        labels: ``{node: name}`` for nodes of a SymPy expression (as in :func:`symgrad.derive`).
        collapse: draw a smaller picture: for a ``Value``, each chain of ``+`` (or ``*``) over
            unlabelled intermediate results becomes one n-ary operation and every unlabelled
            result is drawn inside its operation's node (``{ * | data | grad }``); for a SymPy
            expression each operation is written into its result's node (``u_3 = tanh``).
        depth: draw only the nodes at most this many levels from the output; each node whose
            arguments are hidden gets a note counting the nodes below it.
        max_nodes: raise :class:`~symgrad.errors.GraphTooLargeError` when more nodes than this
            would be drawn (``None``: no limit).
        legend: ``True``, ``False``, or ``"auto"`` (shown when parameters or the backward pass
            are drawn).
        size: Graphviz's ``size`` in inches (``"width,height"``): larger pictures are scaled
            down to fit; default :data:`DEFAULT_SIZE`, a notebook column. ``None``: natural size.

    Returns:
        A ``graphviz.Digraph``; ``.source`` is the DOT text, :func:`render` writes a file.

    Raises:
        BackendUnavailableError: the Python package ``graphviz`` is missing
            (``pip install graphviz``).
        InputTypeError: ``target`` is not a Value, an expression or a Derivation; ``at`` is
            not a dict of numbers.
        MissingSymbolError: ``at`` misses a symbol of the expression.
        OptionError: a bad ``format``, ``rankdir``, ``depth``, ``max_nodes``, ``legend`` or
            ``size``, or ``at`` given with a Value or a Derivation.
        GraphTooLargeError: more than ``max_nodes`` nodes would be drawn.

    >>> import sympy as sp
    >>> a, b = sp.symbols("a b")
    >>> g = draw_dot(a * b + a, at={a: 2, b: -3}, backward=True, legend=False)
    >>> for line in g.source.splitlines():
    ...     if "data" in line or "/d" in line:
    ...         print(line.strip().split(" fillcolor")[0].split(" color")[0])
    n0 [label="{ a | data 2.0000 | grad -2.0000 }"
    n1 [label="{ b | data -3.0000 | grad 2.0000 }"
    n2 [label="{ u_1 | data -6.0000 | grad 1.0000 }"
    n3 [label="{ f | data -4.0000 | grad 1.0000 }"
    n0 -> n2_op [label="du_1/da = b = -3.0000"
    n1 -> n2_op [label="du_1/db = a = 2.0000"
    n0 -> n3_op [label="df/da = 1"
    n2 -> n3_op [label="df/du_1 = 1"
    """
    _check_options(format, rankdir, depth, max_nodes)
    legend = check_choice(legend, (True, False, "auto"), "legend")
    if size is not None and not (isinstance(size, str) and _SIZE.fullmatch(size)):
        raise OptionError(f"size must be 'width,height' in inches such as '9,12', got {size!r}")
    pic = picture_of(
        target,
        at=at,
        wrt=wrt,
        backward=backward,
        params=params,
        labels=labels,
        collapse=collapse,
        depth=depth,
        max_nodes=max_nodes,
    )
    numbers = isinstance(target, Derivation) or is_value(target) or at is not None
    return to_graphviz(pic, format, rankdir, legend, size, numbers)
