"""Pictures of expression graphs and backward passes, drawn with Graphviz.

:func:`draw_dot` draws micrograd's picture: every value as a record ``{ label | data | grad }``
and every operation as a small node between its operands and its result. It takes

* a ``Value`` (recognised by its attributes ``_prev``, ``_op``, ``data``, ``grad``, ``label``:
  this module does not import :mod:`symgrad.value`), drawn from its own graph with the numbers
  it holds (call ``backward()`` first to see gradients);
* a SymPy expression, drawn as a DAG (a shared subexpression appears once, with one edge per
  use), with values and gradients when a point is given (``at={...}``): the gradients come from
  the one reverse sweep, :func:`symgrad.autodiff.sweep`;
* a :class:`symgrad.Derivation` (recognised by its ``target``, ``steps`` and ``names``).

With ``backward=True`` (the default for a Derivation) the adjoint flow is drawn too: a red
dashed edge from each node to each argument, labelled with the local derivative and its value.
Nodes carry the names a :class:`~symgrad.Derivation` uses (:func:`symgrad.graph.node_names`),
so the picture matches the derivation's steps.

The result is a ``graphviz.Digraph``: ``.source`` is the DOT text (no ``dot`` program needed),
a notebook shows it inline, and :func:`render` (or ``.render()``) writes SVG, PNG or PDF,
raising :class:`~symgrad.errors.BackendUnavailableError` when ``dot`` is not installed.

>>> import sympy as sp
>>> x, y = sp.symbols("x y")
>>> g = draw_dot(sp.sin(x * y) + x, at={x: 2, y: 0.5})
>>> print(g.source.splitlines()[4])
    n0 [label="{ x | data 2.0000 | grad 1.2702 }" fillcolor="#dbeafe"]
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sympy as sp

from .autodiff import Step, sweep
from .errors import (
    BackendUnavailableError,
    GraphTooLargeError,
    InputTypeError,
    OptionError,
)
from .graph import free_symbols, node_names, numeric_values, post_order, topo_order
from .inputs import as_expr, as_symbols, describe, point_values

__all__ = ["DEFAULT_MAX_NODES", "draw_dot", "render"]

#: Graphs with more drawn nodes than this raise GraphTooLargeError (``dot`` would take too long).
DEFAULT_MAX_NODES = 3000

RANKDIRS = ("LR", "RL", "TB", "BT")

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
    "node": ("#ffffff", "intermediate"),
    "output": ("#bbf7d0", "output"),
    "collapsed": ("#f3f4f6", "hidden nodes (depth=)"),
}
_BACKWARD_COLOR = "#dc2626"

_OP_SYMBOLS = {sp.Add: "+", sp.Mul: "*", sp.Pow: "**"}


# ---------------------------------------------------------------------- graphviz (optional)
def _graphviz():
    try:
        import graphviz
    except ImportError as exc:
        raise BackendUnavailableError(
            "drawing graphs needs the Python package 'graphviz': pip install symgrad[viz] "
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


@functools.cache
def _digraph_class() -> type:
    graphviz = _graphviz()

    class Digraph(graphviz.Digraph):
        """A ``graphviz.Digraph`` whose rendering says how to install ``dot`` when it is missing."""

        def pipe(self, *args: Any, **kwargs: Any) -> Any:  # used by notebooks' inline display
            with _dot_errors():
                return super().pipe(*args, **kwargs)

        def render(self, *args: Any, **kwargs: Any) -> Any:
            with _dot_errors():
                return super().render(*args, **kwargs)

    return Digraph


def render(graph: Any, path: str | Path, format: str | None = None) -> Path:
    """Write ``graph`` (from :func:`draw_dot`) to ``path`` with the Graphviz ``dot`` program.

    Args:
        graph: a ``graphviz.Digraph`` (or ``Graph``).
        path: the output file; its suffix gives the format unless ``format`` is given.
        format: ``"svg"``, ``"png"``, ``"pdf"`` or any format Graphviz knows.

    Returns:
        The path written.

    Raises:
        BackendUnavailableError: the ``graphviz`` package or the ``dot`` program is missing
            (the message names the system package to install).
        OptionError: no format (``path`` has no suffix and ``format`` is None) or an unknown one.

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
    with _dot_errors():
        out = graph.render(outfile=path, format=fmt, cleanup=True)
    return Path(out)


# ---------------------------------------------------------------------- the picture as data
@dataclass
class _Picture:
    """Nodes and edges to draw, built before any graphviz object (so size checks are cheap)."""

    nodes: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    edges: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)
    backward: bool = False

    def value_node(self, nid: str, cells: list[str], kind: str, tooltip: str = "") -> None:
        fill = _KINDS[kind][0]
        label = "{ " + " | ".join(cells) + " }"
        attrs = {"label": label, "fillcolor": fill}
        if kind == "output":
            attrs["penwidth"] = "2"
        if tooltip:
            attrs["tooltip"] = tooltip
        self.kinds.add(kind)
        self.nodes.append((nid, attrs))

    def op_node(self, nid: str, op: str) -> None:
        self.nodes.append((nid, {"label": _escape(op), "shape": "ellipse", "style": "solid"}))

    def constant(self, nid: str, text: str) -> None:
        self.kinds.add("constant")
        self.nodes.append(
            (nid, {"label": _escape(text), "shape": "box", "fillcolor": _KINDS["constant"][0]})
        )

    def hidden(self, nid: str, count: int) -> None:
        self.kinds.add("collapsed")
        text = f"... {count} node{'s' if count != 1 else ''} below"
        attrs = {"label": text, "shape": "note", "fillcolor": _KINDS["collapsed"][0]}
        self.nodes.append((nid, attrs))


def _escape(text: str) -> str:
    # record labels treat these characters as structure
    for ch in "\\{}|<>":
        text = text.replace(ch, "\\" + ch)
    return text


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def _cells(name: str, data: float | None, grad: float | None) -> list[str]:
    cells = [_escape(name)]
    if data is not None:
        cells.append(f"data {_num(data)}")
    if grad is not None:
        cells.append(f"grad {_num(grad)}")
    return cells


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------- traversal helpers
def _limit_depth(
    root: Any,
    order: list[Any],
    operands: Callable[[Any], list[Any]],
    key: Callable[[Any], Any],
    depth: int | None,
) -> tuple[set, dict]:
    """Keys of the nodes within ``depth`` levels of ``root``, and hidden counts at the frontier."""
    if depth is None:
        return {key(n) for n in order}, {}
    level = {key(root): 0}
    queue = [root]
    for node in queue:  # breadth first: the shortest distance from the output
        d = level[key(node)]
        if d == depth:
            continue
        for child in operands(node):
            if key(child) not in level:
                level[key(child)] = d + 1
                queue.append(child)
    shown = set(level)
    hidden: dict = {}
    for node in queue:
        children = [c for c in operands(node) if key(c) not in shown]
        if not children:
            continue
        below: set = set()
        stack = list(children)
        while stack:
            c = stack.pop()
            if key(c) in below or key(c) in shown:
                continue
            below.add(key(c))
            stack.extend(operands(c))
        hidden[key(node)] = len(below)
    return shown, hidden


def _check_size(count: int, max_nodes: int | None, what: str) -> None:
    if max_nodes is not None and count > max_nodes:
        raise GraphTooLargeError(
            f"the graph of {what} has {count} nodes to draw, more than max_nodes={max_nodes}; "
            "Graphviz would take long to lay it out. Draw less with collapse=True (sums as one "
            "node, results inside their operations) or depth=... (only the levels nearest the "
            "output), or raise "
            "max_nodes (max_nodes=None: no limit)"
        )


# ---------------------------------------------------------------------- Values (duck typed)
def _is_value(obj: object) -> bool:
    return all(hasattr(obj, a) for a in ("_prev", "_op", "data", "grad")) and not isinstance(
        obj, (sp.Basic, type)
    )


def _children(v: Any) -> list[Any]:
    ch = getattr(v, "_children", None)  # symgrad's Value keeps operands in order
    return list(ch) if ch is not None else list(v._prev)


def _value_picture(
    root: Any, params: Iterable, collapse: bool, depth: int | None, max_nodes: int | None
) -> _Picture:
    param_ids = {id(p) for p in params if _is_value(p)}
    param_names = {p for p in params if isinstance(p, str)}

    def merges(child: Any, op: str) -> bool:
        return (
            collapse
            and op in ("+", "*")
            and child._op == op
            and not getattr(child, "label", "")
            and uses.get(id(child), 0) == 1
        )

    uses: dict[int, int] = {}  # how many times each node is an operand (collapse only)
    if collapse:
        for node in post_order([root], _children):
            for c in _children(node):
                uses[id(c)] = uses.get(id(c), 0) + 1

    @functools.cache
    def operands_of(node_id: int) -> list[Any]:
        node = objects[node_id]
        out: list[Any] = []
        stack = list(reversed(_children(node)))
        while stack:  # flatten chains of one associative op into an n-ary node
            c = stack.pop()
            if merges(c, node._op):
                stack.extend(reversed(_children(c)))
            else:
                out.append(c)
        return out

    objects: dict[int, Any] = {}

    def operands(node: Any) -> list[Any]:
        objects[id(node)] = node
        return operands_of(id(node))

    order = post_order([root], operands)
    shown, hidden = _limit_depth(root, order, operands, id, depth)
    nodes = [n for n in order if id(n) in shown]

    def merged(node: Any) -> bool:
        # collapse: an unlabelled result is drawn inside its operation's node
        return collapse and bool(node._op) and not getattr(node, "label", "") and node is not root

    ops = sum(1 for n in nodes if n._op and not merged(n))
    _check_size(len(nodes) + ops + len(hidden), max_nodes, "this Value")
    ids = {id(n): f"n{i}" for i, n in enumerate(nodes)}
    pic = _Picture()
    for node in nodes:
        nid = ids[id(node)]
        label = str(getattr(node, "label", "") or "")
        if node is root:
            kind = "output"
        elif node._op or _children(node):
            kind = "node"
        elif id(node) in param_ids or (label and label in param_names):
            kind = "parameter"
        elif getattr(node, "_const", None) is not None:
            kind = "constant"
        else:
            kind = "input"
        first = _escape(str(node._op)) if merged(node) else _escape(label)
        pic.value_node(nid, [first, f"data {_num(node.data)}", f"grad {_num(node.grad)}"], kind)
        into = nid if merged(node) or not node._op else nid + "_op"
        if node._op and not merged(node):
            pic.op_node(into, str(node._op))
            pic.edges.append((into, nid, {}))
        for c in operands(node) if node._op else ():
            if id(c) in ids:
                pic.edges.append((ids[id(c)], into, {}))
        if id(node) in hidden:
            pic.hidden(nid + "_more", hidden[id(node)])
            pic.edges.append((nid + "_more", into, {"style": "dotted"}))
    return pic


# ---------------------------------------------------------------------- SymPy expressions
def _leaf_values(expr: sp.Expr, at: object) -> dict[sp.Symbol, float] | None:
    return point_values(at, expr, None, "or leave at=None to draw without numbers")


@dataclass
class _Pass:
    """What a drawing of a SymPy graph needs: a Derivation, or the same data computed here."""

    target: sp.Expr
    names: Mapping[sp.Basic, str]
    steps: tuple[Step, ...]
    values: Mapping[sp.Basic, float]
    adjoint_values: Mapping[sp.Basic, float]


def _is_derivation(obj: object) -> bool:
    return all(hasattr(obj, a) for a in ("target", "steps", "names", "adjoint_values"))


def _sympy_pass(expr: sp.Expr, labels: Mapping, at: dict | None, wrt: object) -> _Pass:
    syms = free_symbols([expr]) if wrt is None else as_symbols(wrt, expr)[0]
    steps: list[Step] = []
    if at is not None or syms:
        sweep([expr], syms, on_step=lambda _k, s: steps.append(s))
    values: dict = {}
    adjoints: dict = {}
    if at is not None:
        exprs: list[sp.Basic] = [expr, *(s.adjoint for s in steps)]
        for s in steps:
            exprs.extend(local for _, local, _ in s.outgoing)
        values = numeric_values(exprs, at)
        adjoints = {s.node: values[s.adjoint] for s in steps if s.adjoint in values}
    return _Pass(expr, node_names(expr, labels), tuple(steps), values, adjoints)


def _op_label(node: sp.Basic) -> str:
    for head, text in _OP_SYMBOLS.items():
        if isinstance(node, head):
            return text
    return getattr(node.func, "__name__", type(node).__name__)


def _named_text(expr: sp.Expr, names: Mapping[sp.Basic, str]) -> str:
    # print a local partial in terms of node names (u_1 rather than the subtree it stands for)
    subs = {n: sp.Symbol(names[n]) for n in topo_order([expr]) if n in names and not n.is_Symbol}
    return _short(sp.sstr(expr.xreplace(subs)))


def _wrap(name: str) -> str:
    # "d(x1*w1)/dx1": parenthesise names that are not plain identifiers
    return name if name.replace("_", "a").replace(".", "a").isalnum() else f"({name})"


def _local_text(data: _Pass, node: sp.Basic, arg: sp.Basic, local: sp.Expr, numbers: bool) -> str:
    """``d<node>/d<arg> = <local partial> [= value]``, with the derivation's names."""
    text = f"d{_wrap(data.names.get(node, '?'))}/d{_wrap(data.names.get(arg, '?'))} = "
    text += _named_text(local, data.names)
    if numbers and not local.is_Number and local in data.values:
        text += f" = {_num(data.values[local])}"
    return text


def _sympy_picture(
    data: _Pass,
    params: Iterable,
    backward: bool,
    depth: int | None,
    max_nodes: int | None,
    show_numbers: bool,
    collapse: bool = False,
) -> _Picture:
    root = data.target
    param_syms = {p for p in params if isinstance(p, sp.Symbol)}
    param_names = {p for p in params if isinstance(p, str)}

    def operands(node: sp.Basic) -> list[sp.Basic]:
        return [a for a in node.args if not a.is_Number]

    order = post_order([root], operands, key=lambda n: n)
    shown, hidden = _limit_depth(root, order, operands, lambda n: n, depth)
    nodes = [n for n in order if n in shown]
    ops = 0 if collapse else sum(1 for n in nodes if n.args)
    numbers_ = sum(1 for n in nodes for a in n.args if a.is_Number)
    _check_size(len(nodes) + ops + numbers_ + len(hidden), max_nodes, "this expression")
    ids = {n: f"n{i}" for i, n in enumerate(nodes)}
    pic = _Picture(backward=backward)
    # (node, argument) -> the local partials of its uses, in argument order (as the sweep sent)
    local_partials: dict[tuple, list] = {}
    senders = {step.node for step in data.steps if step.outgoing} if backward else set()
    if backward:
        for step in data.steps:
            for child, local, _ in step.outgoing:
                local_partials.setdefault((step.node, child), []).append(local)
    # Edge labels make dot place a label node per edge; external labels are much cheaper.
    label_key = "label" if len(nodes) <= 300 else "xlabel"
    for node in nodes:
        nid = ids[node]
        name = data.names.get(node) or _short(sp.sstr(node), 30)
        if node is root or node == root:
            kind = "output"
        elif node.args:
            kind = "node"
        elif node in param_syms or (isinstance(node, sp.Symbol) and node.name in param_names):
            kind = "parameter"
        else:
            kind = "input"
        value = data.values.get(node) if show_numbers else None
        grad = data.adjoint_values.get(node) if show_numbers else None
        # collapse: the operation is written in the result's node ("u_3 = tanh")
        title = f"{name} = {_op_label(node)}" if collapse and node.args else name
        pic.value_node(nid, _cells(title, value, grad), kind)
        into = nid if collapse or not node.args else nid + "_op"
        if node.args and not collapse:
            pic.op_node(into, _op_label(node))
            flows = node in senders
            pic.edges.append((into, nid, {"color": f"black:{_BACKWARD_COLOR}"} if flows else {}))
        if node.args:
            for i, arg in enumerate(node.args):  # one edge per use, in argument order
                if arg.is_Number:
                    pic.constant(f"{nid}_c{i}", sp.sstr(arg))
                    pic.edges.append((f"{nid}_c{i}", into, {}))
                elif arg in ids:
                    pending = local_partials.get((node, arg))
                    attrs = {}
                    if pending:  # the adjoint flows back along this edge, times the local partial
                        local = pending.pop(0)
                        attrs = {
                            label_key: _local_text(data, node, arg, local, show_numbers),
                            "color": f"black:{_BACKWARD_COLOR}",
                            "fontcolor": _BACKWARD_COLOR,
                        }
                    pic.edges.append((ids[arg], into, attrs))
        if node in hidden:
            pic.hidden(nid + "_more", hidden[node])
            pic.edges.append((nid + "_more", into, {"style": "dotted"}))
    return pic


# ---------------------------------------------------------------------- the public function
def _check_options(format: object, rankdir: object, depth: object, max_nodes: object) -> None:
    graphviz = _graphviz()
    if not isinstance(format, str) or format not in graphviz.FORMATS:
        raise OptionError(
            f"format must be a Graphviz output format such as 'svg', 'png' or 'pdf', got {format!r}"
        )
    if rankdir not in RANKDIRS:
        raise OptionError(f"rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
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
) -> Any:
    """Draw a ``Value``, a SymPy expression or a ``Derivation`` as a Graphviz graph.

    Args:
        target: a ``Value`` (its ``data`` and ``grad`` are shown as they are), a scalar SymPy
            expression, or a :class:`symgrad.Derivation`.
        format: the output format used by ``.render()`` and notebooks (``"svg"``, ``"png"``,
            ``"pdf"``, ...).
        rankdir: the layout direction: ``"LR"`` (left to right, as micrograd), ``"TB"``, ...
        at: ``{symbol or name: number}`` for a SymPy expression: shows the value of every node
            and its gradient ``d target / d node`` (computed by :func:`symgrad.autodiff.sweep`).
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

    Returns:
        A ``graphviz.Digraph``; ``.source`` is the DOT text, :func:`render` writes a file.

    Raises:
        BackendUnavailableError: the Python package ``graphviz`` is missing
            (``pip install symgrad[viz]``).
        InputTypeError: ``target`` is not a Value, an expression or a Derivation; ``at`` is
            not a dict of numbers.
        MissingSymbolError: ``at`` misses a symbol of the expression.
        OptionError: a bad ``format``, ``rankdir``, ``depth``, ``max_nodes`` or ``legend``, or
            ``at`` given with a Value or a Derivation.
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
    graphviz = _graphviz()
    _check_options(format, rankdir, depth, max_nodes)
    if legend not in (True, False, "auto"):
        raise OptionError(f"legend must be True, False or 'auto', got {legend!r}")
    if not isinstance(collapse, bool):
        raise OptionError(f"collapse must be True or False, got {collapse!r}")
    if isinstance(params, (str, sp.Basic)) or not isinstance(params, Iterable):
        params = [params]
    params = list(params)
    if _is_derivation(target):
        if at is not None or wrt is not None:
            raise OptionError(
                "a Derivation already holds its point and wrt symbols; give at=/wrt= to derive()"
            )
        backward = True if backward is None else backward
        data = _Pass(
            target.target, target.names, tuple(target.steps), target.values, target.adjoint_values
        )
        pic = _sympy_picture(data, params, backward, depth, max_nodes, True, collapse)
    elif _is_value(target) and not backward:
        if at is not None or wrt is not None:
            raise OptionError(
                "a Value carries its own numbers; draw value.expr for at=/wrt=, or set .data"
            )
        pic = _value_picture(target, params, collapse, depth, max_nodes)
    else:
        value_labels: dict = {}
        if _is_value(target):
            if at is not None:
                raise OptionError("a Value carries its own numbers; draw value.expr for at=")
            if not callable(getattr(target, "_symgrad_graph", None)):
                raise OptionError(
                    f"backward=True draws through the SymPy expression of a symgrad.Value; "
                    f"this {type(target).__name__} has no _symgrad_graph(): call its "
                    "backward() and draw it without backward=True to see the gradients"
                )
            expr, value_labels, at = target._symgrad_graph()
            params = [getattr(p, "label", p) if _is_value(p) else p for p in params]
        else:
            expr = as_expr(target, "target")
        if labels is not None and not isinstance(labels, Mapping):
            raise InputTypeError(f"labels must be a dict {{node: name}}, got {describe(labels)}")
        if depth is None and max_nodes is not None:  # fail before the sweep on huge graphs
            count = sum(1 for n in topo_order([expr]) if not n.is_Number)
            _check_size(count, max_nodes, "this expression")
        leaves = _leaf_values(expr, at)
        data = _sympy_pass(expr, {**value_labels, **(labels or {})}, leaves, wrt)
        pic = _sympy_picture(
            data, params, bool(backward), depth, max_nodes, leaves is not None, collapse
        )
    return _to_graphviz(graphviz, pic, format, rankdir, legend)


def _to_graphviz(
    graphviz: Any, pic: _Picture, format: str, rankdir: str, legend: bool | str
) -> Any:
    g = _digraph_class()(format=format, graph_attr={"rankdir": rankdir})
    g.attr("node", shape="record", style="filled", fontname="Helvetica", fontsize="11")
    g.attr("edge", fontname="Helvetica", fontsize="9")
    g.body.extend(_lines(pic))
    if legend is True or (legend == "auto" and (pic.backward or "parameter" in pic.kinds)):
        g.node("legend", _legend_html(pic), shape="plaintext", style="")
    return g


def _legend_html(pic: _Picture) -> str:
    # one compact HTML-like table: a coloured cell per kind of node drawn
    cells = "".join(
        f'<td bgcolor="{fill}">{text}</td>'
        for kind, (fill, text) in _KINDS.items()
        if kind in pic.kinds
    )
    rows = f"<tr>{cells}</tr>"
    if pic.backward:
        span = max(1, len(pic.kinds))
        rows += (
            f'<tr><td colspan="{span}"><font color="{_BACKWARD_COLOR}">red line, dA/dB: the '
            "local derivative; the gradient of B is the sum over its uses of "
            "(grad of A) * dA/dB</font></td></tr>"
        )
    return f'<<table border="0" cellborder="1" cellspacing="0" cellpadding="4">{rows}</table>>'


def _lines(pic: _Picture) -> list[str]:
    # Build the DOT statements with graphviz's own quoting, in one pass (fast for big graphs).
    from graphviz import quoting

    def attrs(a: Mapping[str, str]) -> str:
        return "".join(f" {k}={quoting.quote(v)}" for k, v in a.items())

    out = [f"\t{nid} [{attrs(a).strip()}]\n" for nid, a in pic.nodes]
    for tail, head, a in pic.edges:
        out.append(f"\t{tail} -> {head}" + (f" [{attrs(a).strip()}]" if a else "") + "\n")
    return out
