"""A neutral picture of a computation graph and its backward pass: nodes and edges as data.

:class:`Picture` is what every drawing shows, before any drawing format: the graphviz picture
(:mod:`symgrad.derivation.dot`) and the browser explorer (:mod:`symgrad.derivation.html`) are
thin printers of it. It is built

* from a :class:`~symgrad.derivation.Derivation` (:meth:`Picture.from_derivation`): the nodes of
  the target's DAG with the derivation's names, forward values and gradients, and an edge per use
  of an argument carrying the local partial the sweep sent along it. Nothing is recomputed: the
  numbers are the derivation's;
* from a micrograd-style ``Value`` graph (:meth:`Picture.from_value`), with the ``data`` and
  ``grad`` its nodes hold. A Value is read through micrograd's attributes ``_prev`` (or symgrad's
  ordered ``_children``), ``_op``, ``data``, ``grad`` and ``label``, so Karpathy's own ``Value``
  works too; this layer cannot import :mod:`symgrad.value`.

Nodes are in forward (topological) order, children first; ``Node.step`` is the node's position
in the backward pass (1 is the output), so :meth:`Picture.steps` gives the step order.

>>> import sympy as sp
>>> from symgrad import derive
>>> a, b = sp.symbols("a b")
>>> pic = Picture.from_derivation(derive(a * b + a, at={a: 2, b: -3}))
>>> [(n.name, n.kind, n.value, n.gradient) for n in pic.steps()]
[('f', 'output', -4.0, 1.0), ('u_1', 'intermediate', -6.0, 1.0), ('b', 'input', -3.0, 2.0), \
('a', 'input', 2.0, -2.0)]
>>> [(e.source, e.target, e.local, e.contribution) for e in pic.edges if e.target == "n2"]
[('n0', 'n2', 'b', -3.0), ('n1', 'n2', 'a', 2.0)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from ..errors import GraphTooLargeError, InputTypeError, OptionError
from ..graph import post_order, topo_order
from ..inputs import as_expr, describe
from .derive import Derivation, derive
from .printers import TextPrinter

__all__ = ["DEFAULT_MAX_NODES", "KINDS", "Edge", "Node", "Picture", "picture_of"]

#: Pictures with more drawn nodes than this raise GraphTooLargeError (slow to lay out).
DEFAULT_MAX_NODES = 3000

#: The kinds of node, in the order a legend lists them.
KINDS = ("input", "parameter", "constant", "intermediate", "output")

_OP_SYMBOLS = {sp.Add: "+", sp.Mul: "*", sp.Pow: "**"}
_SHORT = 60


@dataclass(frozen=True)
class Node:
    """One drawn node.

    Attributes:
        id: unique within the picture (``n0``, ``n1``, ...; ``n3_c1`` for a number argument).
        name: the display name (``e``, ``u_1``; ``""`` for an unlabelled Value result).
        kind: one of :data:`KINDS`.
        op: the operation that computes it (``+``, ``*``, ``tanh``); ``""`` for a leaf.
        formula: its definition over its arguments' names, as text (``a*b``); ``""`` for a leaf.
        value: the forward value, or None.
        gradient: ``d output / d node``, or None (not asked for, or no numbers).
        step: its position in the backward pass (1 = the output), None when not on a path.
        merged: ``collapse=True`` draws its operation inside the node, not as a node of its own.
        hidden: how many nodes below it are not drawn (``depth=``).
        expr: the SymPy node (None in a picture of a Value graph).

    >>> import sympy as sp
    >>> from symgrad import derive
    >>> x = sp.Symbol("x")
    >>> Picture.from_derivation(derive(sp.exp(x), at={x: 0})).node("n1")
    Node(id='n1', name='f', kind='output', op='exp', formula='exp(x)', value=1.0, gradient=1.0, \
step=1, merged=False, hidden=0, expr=exp(x))
    """

    id: str
    name: str
    kind: str
    op: str = ""
    formula: str = ""
    value: float | None = None
    gradient: float | None = None
    step: int | None = None
    merged: bool = False
    hidden: int = 0
    expr: sp.Basic | None = None


@dataclass(frozen=True)
class Edge:
    """One use of ``source`` as the ``position``-th argument of ``target``.

    Attributes:
        source: the argument's node id.
        target: the result's node id.
        position: the argument's position in the result's operation.
        local: the local partial ``d target / d source`` over node names, as text; ``""`` when
            the backward pass does not flow along this edge (or is not drawn).
        local_value: the local partial's value, or None.
        contribution: what the target's gradient sends along: ``gradient * local_value``.
        partial: the local partial as a SymPy expression (None in a Value picture).

    >>> import sympy as sp
    >>> from symgrad import derive
    >>> x = sp.Symbol("x")
    >>> edge, = Picture.from_derivation(derive(sp.exp(x), at={x: 0})).edges
    >>> edge.source, edge.target, edge.local, edge.local_value, edge.contribution
    ('n0', 'n1', 'f', 1.0, 1.0)
    """

    source: str
    target: str
    position: int
    local: str = ""
    local_value: float | None = None
    contribution: float | None = None
    partial: sp.Expr | None = None


@dataclass(frozen=True, eq=False)
class Picture:
    """Nodes and edges of a graph and its backward pass, in forward order (see the module).

    Attributes:
        nodes: the drawn nodes, children before parents.
        edges: one per use of an argument, grouped by result in node order, arguments in order.
        backward: the edges carry the local partials of the backward pass.
        names: ``{SymPy node: display name}`` (empty for a picture of a Value graph).
        output: the id of the output node.

    >>> import sympy as sp
    >>> from symgrad import derive
    >>> pic = Picture.from_derivation(derive(sp.Symbol("x") ** 2))
    >>> pic.output, len(pic.nodes), len(pic.edges)
    ('n1', 3, 2)
    """

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    backward: bool
    names: Mapping[sp.Basic, str]
    output: str
    _ids: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._ids.update((n.id, n) for n in self.nodes)

    def node(self, node_id: str) -> Node:
        """The node with this id.

        >>> import sympy as sp
        >>> from symgrad import derive
        >>> Picture.from_derivation(derive(sp.Symbol("x") ** 2)).node("n1").name
        'f'
        """
        return self._ids[node_id]

    def steps(self) -> list[Node]:
        """The nodes of the backward pass in step order (the output first).

        >>> import sympy as sp
        >>> from symgrad import derive
        >>> x = sp.Symbol("x")
        >>> [n.name for n in Picture.from_derivation(derive(sp.exp(2 * x))).steps()]
        ['f', 'u_1', 'x']
        """
        return sorted((n for n in self.nodes if n.step is not None), key=lambda n: n.step)

    @classmethod
    def from_derivation(
        cls,
        d: Derivation,
        *,
        params: Iterable = (),
        backward: bool = True,
        collapse: bool = False,
        depth: int | None = None,
        max_nodes: int | None = None,
    ) -> Picture:
        """The picture of a derivation's target DAG with its names, numbers and local partials.

        Args:
            d: the derivation.
            params: symbols or names drawn as parameters (other leaves are inputs).
            backward: label the edges the adjoint flows along with their local partials.
            collapse: write each operation into its result's node (``u_3 = tanh``).
            depth: draw only the nodes at most this many levels below the output.
            max_nodes: raise :class:`~symgrad.errors.GraphTooLargeError` above this many
                drawn nodes (None: no limit).

        >>> import sympy as sp
        >>> from symgrad import derive
        >>> x = sp.Symbol("x")
        >>> pic = Picture.from_derivation(derive(3 * sp.sin(x)), collapse=True)
        >>> [(n.id, n.name, n.kind) for n in pic.nodes]
        [('n0', 'x', 'input'), ('n1', 'u_1', 'intermediate'), ('n2_c0', '3', 'constant'), \
('n2', 'f', 'output')]
        """
        if not isinstance(d, Derivation):
            raise InputTypeError(f"from_derivation needs a Derivation, got {describe(d)}")
        return _from_derivation(d, _params(params), backward, collapse, depth, max_nodes)

    @classmethod
    def from_value(
        cls,
        root: Any,
        *,
        params: Iterable = (),
        collapse: bool = False,
        depth: int | None = None,
        max_nodes: int | None = None,
    ) -> Picture:
        """The picture of a ``Value`` graph with the ``data`` and ``grad`` its nodes hold.

        Args:
            root: a micrograd-style Value (call ``backward()`` first to see gradients).
            params: the parameter Values (or their labels).
            collapse: merge chains of ``+`` (or ``*``) over unlabelled results into one n-ary
                operation, and draw every unlabelled result inside its operation's node.
            depth: see :meth:`from_derivation`.
            max_nodes: see :meth:`from_derivation`.

        >>> from symgrad import Value
        >>> a, b = Value(2.0, label="a"), Value(-3.0, label="b")
        >>> c = a * b; c.label = "c"; c.backward()
        >>> [(n.name, n.op, n.value, n.gradient) for n in Picture.from_value(c).nodes]
        [('a', '', 2.0, -3.0), ('b', '', -3.0, 2.0), ('c', '*', -6.0, 1.0)]
        """
        return _from_value(root, _params(params), collapse, depth, max_nodes)


def _params(params: Iterable) -> list:
    if isinstance(params, (str, sp.Basic)) or not isinstance(params, Iterable):
        return [params]
    return list(params)


def op_label(node: sp.Basic) -> str:
    """The operation of a SymPy node as drawn: ``+``, ``*``, ``**`` or the function's name.

    >>> import sympy as sp
    >>> op_label(sp.tanh(sp.Symbol("x"))), op_label(sp.Symbol("x") + 1)
    ('tanh', '+')
    """
    for head, text in _OP_SYMBOLS.items():
        if isinstance(node, head):
            return text
    return getattr(node.func, "__name__", type(node).__name__)


def short(text: str, limit: int = _SHORT) -> str:
    """``text`` cut to ``limit`` characters with ``...``.

    >>> short("abcdef", 5)
    'ab...'
    """
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_size(count: int, max_nodes: int | None, what: str) -> None:
    """Raise :class:`GraphTooLargeError` when ``count`` drawn nodes exceed ``max_nodes``.

    >>> check_size(10, None, "this expression")
    """
    if max_nodes is not None and count > max_nodes:
        raise GraphTooLargeError(
            f"the graph of {what} has {count} nodes to draw, more than max_nodes={max_nodes}; "
            "it would take long to lay out. Draw less with collapse=True (sums as one "
            "node, results inside their operations) or depth=... (only the levels nearest the "
            "output), or raise max_nodes (max_nodes=None: no limit)"
        )


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


# ---------------------------------------------------------------------- from a Derivation
def _from_derivation(
    d: Derivation,
    params: list,
    backward: bool,
    collapse: bool,
    depth: int | None,
    max_nodes: int | None,
) -> Picture:
    root = d.target
    param_syms = {p for p in params if isinstance(p, sp.Symbol)}
    param_names = {p for p in params if isinstance(p, str)}

    def operands(node: sp.Basic) -> list[sp.Basic]:
        return [a for a in node.args if not a.is_Number]

    order = post_order([root], operands, key=lambda n: n)
    shown, hidden = _limit_depth(root, order, operands, lambda n: n, depth)
    nodes = [n for n in order if n in shown]
    ops = 0 if collapse else sum(1 for n in nodes if n.args)
    numbers = sum(1 for n in nodes for a in n.args if a.is_Number)
    check_size(len(nodes) + ops + numbers + len(hidden), max_nodes, "this expression")
    ids = {n: f"n{i}" for i, n in enumerate(nodes)}
    step_of = {s.node: i + 1 for i, s in enumerate(d.steps)}
    # (node, argument) -> the local partials of its uses, in argument order (as the sweep sent)
    local_partials: dict[tuple, list] = {}
    if backward:
        for step in d.steps:
            for child, local, _ in step.outgoing:
                local_partials.setdefault((step.node, child), []).append(local)
    display = {n: sp.Symbol(s) for n, s in d.names.items() if n.args}
    printer = TextPrinter(display)
    out_nodes: list[Node] = []
    edges: list[Edge] = []
    for node in nodes:
        nid = ids[node]
        name = d.names.get(node) or short(sp.sstr(node), 30)
        if node is root:
            kind = "output"
        elif node.args:
            kind = "intermediate"
        elif node in param_syms or (isinstance(node, sp.Symbol) and node.name in param_names):
            kind = "parameter"
        else:
            kind = "input"
        for i, arg in enumerate(node.args):
            if arg.is_Number:  # drawn as a constant of its own per use
                out_nodes.append(
                    Node(f"{nid}_c{i}", sp.sstr(arg), "constant", value=_float(arg), expr=arg)
                )
        out_nodes.append(
            Node(
                nid,
                name,
                kind,
                op=op_label(node) if node.args else "",
                formula=short(printer.show(node, root=True)) if node.args else "",
                value=d.values.get(node),
                gradient=d.adjoint_values.get(node),
                step=step_of.get(node),
                merged=collapse and bool(node.args),
                hidden=hidden.get(node, 0),
                expr=node,
            )
        )
        grad = d.adjoint_values.get(node)
        for i, arg in enumerate(node.args):  # one edge per use, in argument order
            if arg.is_Number:
                edges.append(Edge(f"{nid}_c{i}", nid, i))
                continue
            if arg not in ids:
                continue
            pending = local_partials.get((node, arg))
            if not pending:
                edges.append(Edge(ids[arg], nid, i))
                continue
            local = pending.pop(0)  # the adjoint flows back along this edge times this partial
            lv = d.values.get(local)
            if lv is None and local.is_Number:
                lv = _float(local)
            edges.append(
                Edge(
                    ids[arg],
                    nid,
                    i,
                    local=short(printer.show(local)),
                    local_value=lv,
                    contribution=None if lv is None or grad is None else grad * lv,
                    partial=local,
                )
            )
    return Picture(tuple(out_nodes), tuple(edges), backward, dict(d.names), ids[root])


def _float(number: sp.Basic) -> float | None:
    return float(number) if number.is_extended_real else None


def count_nodes(expr: sp.Basic) -> int:
    """The nodes of ``expr``'s DAG that a picture draws (numbers aside): a cheap size check.

    >>> import sympy as sp
    >>> count_nodes(sp.sin(sp.Symbol("x")) + 1)
    3
    """
    return sum(1 for n in topo_order([expr]) if not n.is_Number)


# ---------------------------------------------------------------------- from a Value graph
def _children(v: Any) -> list[Any]:
    ch = getattr(v, "_children", None)  # symgrad's Value keeps operands in order
    return list(ch) if ch is not None else list(v._prev)


def _from_value(
    root: Any, params: list, collapse: bool, depth: int | None, max_nodes: int | None
) -> Picture:
    param_ids = {id(p) for p in params if not isinstance(p, (str, sp.Basic))}
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

    objects: dict[int, Any] = {}
    flat: dict[int, list[Any]] = {}

    def operands(node: Any) -> list[Any]:
        key = id(node)
        if key not in flat:
            objects[key] = node
            out: list[Any] = []
            stack = list(reversed(_children(node)))
            while stack:  # flatten chains of one associative op into an n-ary node
                c = stack.pop()
                if merges(c, node._op):
                    stack.extend(reversed(_children(c)))
                else:
                    out.append(c)
            flat[key] = out
        return flat[key]

    order = post_order([root], operands)
    shown, hidden = _limit_depth(root, order, operands, id, depth)
    nodes = [n for n in order if id(n) in shown]

    def merged(node: Any) -> bool:
        # collapse: an unlabelled result is drawn inside its operation's node
        return collapse and bool(node._op) and not getattr(node, "label", "") and node is not root

    ops = sum(1 for n in nodes if n._op and not merged(n))
    check_size(len(nodes) + ops + len(hidden), max_nodes, "this Value")
    ids = {id(n): f"n{i}" for i, n in enumerate(nodes)}
    out_nodes: list[Node] = []
    edges: list[Edge] = []
    for node in nodes:
        nid = ids[id(node)]
        label = str(getattr(node, "label", "") or "")
        if node is root:
            kind = "output"
        elif node._op or _children(node):
            kind = "intermediate"
        elif id(node) in param_ids or (label and label in param_names):
            kind = "parameter"
        elif getattr(node, "_const", None) is not None:
            kind = "constant"
        else:
            kind = "input"
        out_nodes.append(
            Node(
                nid,
                label,
                kind,
                op=str(node._op or ""),
                value=float(node.data),
                gradient=float(node.grad),
                merged=merged(node),
                hidden=hidden.get(id(node), 0),
            )
        )
        for i, c in enumerate(operands(node) if node._op else ()):
            if id(c) in ids:
                edges.append(Edge(ids[id(c)], nid, i))
    return Picture(tuple(out_nodes), tuple(edges), False, {}, ids[id(root)])


# ---------------------------------------------------------------------- any target
def is_value(obj: object) -> bool:
    """True for a micrograd-style ``Value`` (``_prev``, ``_op``, ``data``, ``grad``).

    >>> is_value(1.0)
    False
    """
    return all(hasattr(obj, a) for a in ("_prev", "_op", "data", "grad")) and not isinstance(
        obj, (sp.Basic, type)
    )


def picture_of(
    target: object,
    *,
    at: Mapping | None = None,
    wrt: object = None,
    backward: bool | None = None,
    params: Iterable = (),
    labels: Mapping[sp.Basic, str] | None = None,
    collapse: bool = False,
    depth: int | None = None,
    max_nodes: int | None = DEFAULT_MAX_NODES,
) -> Picture:
    """The :class:`Picture` of a Value, a SymPy expression or a Derivation.

    The arguments are those of :func:`symgrad.draw_dot` (which draws this picture): a
    Derivation is pictured as it is; a Value without ``backward`` from its own graph and numbers;
    a Value with ``backward``, and an expression, through :func:`symgrad.derive`.

    >>> import sympy as sp
    >>> picture_of(sp.Symbol("x") * 2, at={"x": 3}).node("n1").value
    6.0
    """
    if not isinstance(collapse, bool):
        raise OptionError(f"collapse must be True or False, got {collapse!r}")
    if isinstance(params, (str, sp.Basic)) or not isinstance(params, Iterable):
        params = [params]
    params = list(params)
    options = {"collapse": collapse, "depth": depth, "max_nodes": max_nodes}
    if isinstance(target, Derivation):
        if at is not None or wrt is not None or labels is not None:
            raise OptionError(
                "a Derivation already holds its point, wrt symbols and labels; give "
                "at=/wrt=/labels= to derive()"
            )
        backward = True if backward is None else backward
        return Picture.from_derivation(target, params=params, backward=backward, **options)
    if is_value(target) and not backward:
        if at is not None or wrt is not None:
            raise OptionError(
                "a Value carries its own numbers; draw value.expr for at=/wrt=, or set .data"
            )
        return Picture.from_value(target, params=params, **options)
    if is_value(target):
        if at is not None:
            raise OptionError("a Value carries its own numbers; draw value.expr for at=")
        if not callable(getattr(target, "_symgrad_graph", None)):
            raise OptionError(
                f"backward=True draws through the SymPy expression of a symgrad.Value; "
                f"this {type(target).__name__} has no _symgrad_graph(): call its "
                "backward() and draw it without backward=True to see the gradients"
            )
        params = [getattr(p, "label", p) if is_value(p) else p for p in params]
        if depth is None and max_nodes is not None:
            check_size(count_nodes(target._symgrad_graph()[0]), max_nodes, "this Value")
        d = derive(target, wrt=wrt, labels=labels)
    else:
        expr = as_expr(target, "target")
        if labels is not None and not isinstance(labels, Mapping):
            raise InputTypeError(f"labels must be a dict {{node: name}}, got {describe(labels)}")
        if depth is None and max_nodes is not None:  # fail before the sweep on huge graphs
            check_size(count_nodes(expr), max_nodes, "this expression")
        d = derive(expr, wrt=wrt, at=at, labels=labels)
    return Picture.from_derivation(d, params=params, backward=bool(backward), **options)
