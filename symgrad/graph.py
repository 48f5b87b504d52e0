"""Linearising SymPy expressions into a DAG of unique nodes.

SymPy expressions are trees that share structurally equal subexpressions (they hash equal).
Everything in symgrad works on the *DAG* of unique nodes in topological order, computed here
iteratively, so sharing is never lost and depth is limited by SymPy's own objects, not by Python
recursion in symgrad.

>>> import sympy as sp
>>> x, y = sp.symbols("x y")
>>> u = sp.sin(x * y)
>>> [str(n) for n in topo_order([u + u**2])]
['x', 'y', 'x*y', 'sin(x*y)', '2', 'sin(x*y)**2', 'sin(x*y)**2 + sin(x*y)']
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import sympy as sp
from sympy.functions.elementary.miscellaneous import MinMaxBase

__all__ = [
    "Linear",
    "depends_on",
    "free_symbols",
    "heaviside",
    "linearise",
    "paused_gc",
    "post_order",
    "rebuild",
    "split_wide",
    "split_wide_linear",
    "topo_order",
    "tree_size",
    "unevaluated",
]


class Linear(NamedTuple):
    """A DAG as arrays: unique nodes in topological order, and each node's arguments as positions.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> dag = linearise([sp.exp(x) + x])
    >>> dag.order, dag.args, dag.index[x]
    ([x, exp(x), x + exp(x)], [[], [0], [0, 1]], 0)
    """

    order: list[sp.Basic]
    args: list[list[int]]  # positions in order of each node's arguments (repeats kept)
    index: dict[sp.Basic, int]  # node -> its position


def linearise(roots: Iterable[sp.Basic], base: Linear | None = None) -> Linear:
    """The unique nodes reachable from ``roots`` in topological order, with their arguments.

    The walk is iterative and visits objects by identity; each node is hashed only after its
    arguments, so SymPy's cached hashes are filled bottom-up and hashing a deep expression
    never recurses. Structurally equal nodes (equal hashes) appear once. Consumers that walk
    the DAG many times should use the positions in ``args`` (hashing a SymPy node is a Python
    call; indexing a list is not).

    Args:
        roots: SymPy objects (expressions, booleans, ...).
        base: a DAG already linearised (e.g. the forward graph a gradient was derived from):
            its nodes keep their positions and are not walked again. It is not modified.

    Returns:
        A :class:`Linear`: children before parents; roots appear in the order given (when not
        already inside an earlier root or ``base``).

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> linearise([x * y, y]).args
    [[], [], [0, 1]]
    >>> linearise([x * y + 1], base=linearise([x * y])).order
    [x, y, x*y, 1, x*y + 1]
    """
    return _walk(roots, True, base)


def _walk(roots: Iterable[sp.Basic], with_args: bool, base: Linear | None = None) -> Linear:
    order: list[sp.Basic] = [] if base is None else list(base.order)
    args_of: list[list[int]] = [] if base is None else list(base.args)
    index: dict[sp.Basic, int] = {} if base is None else dict(base.index)
    # object id -> position of the node equal to it; an id is entered when its node is done
    # (its arguments can then be found by id, without hashing them again). A node that is
    # started but not done is an ancestor on the stack, never a child: the graph is acyclic.
    at: dict[int, int] = {id(node): i for i, node in enumerate(order)}
    keep_alive: list[sp.Basic] = []  # ids stay valid only while their objects live
    # (a node entered in ``order`` lives as long as it; only the duplicates need keeping)

    for root in roots:
        if id(root) in at:
            continue
        args = root.args
        # Explicit stack of (node, args, iterator): a post-order DFS without recursion.
        stack = [(root, args, iter(args))]
        while stack:
            node, args, it = stack[-1]
            ready = True  # node is done next: the iterator is exhausted or ...
            for child in it:
                if id(child) not in at:
                    child_args = child.args
                    for a in child_args:
                        if id(a) not in at:
                            stack.append((child, child_args, iter(child_args)))
                            ready = False
                            break
                    else:  # ... a child whose arguments are all known: done at once
                        node, args = child, child_args
                    break
            else:
                stack.pop()
            if not ready:
                continue
            position = index.get(node)  # hashes node; its args are already hashed
            if position is None:
                position = index[node] = len(order)
                order.append(node)
                if with_args:
                    args_of.append([at[id(a)] for a in args])
            else:
                keep_alive.append(node)
            at[id(node)] = position
    return Linear(order, args_of, index)


def post_order(
    roots: Iterable[Any],
    children: Callable[[Any], Iterable[Any]],
    key: Callable[[Any], Hashable] = id,
) -> list[Any]:
    """Unique nodes of any DAG reachable from ``roots``, each after its children (iterative).

    For graphs that are not SymPy expressions (``Value`` graphs, matrix operands, drawing
    graphs); :func:`linearise` is the SymPy version (it also merges equal nodes).

    Args:
        roots: the start nodes.
        children: a node's children.
        key: identifies a node (default: object identity).

    >>> edges = {"a": ["b", "c"], "b": ["c"], "c": []}
    >>> post_order(["a"], edges.__getitem__, key=str)
    ['c', 'b', 'a']
    """
    order: list[Any] = []
    seen: set = set()
    for root in roots:
        if key(root) in seen:
            continue
        seen.add(key(root))
        stack = [(root, iter(children(root)))]
        while stack:
            node, it = stack[-1]
            for child in it:
                k = key(child)
                if k not in seen:
                    seen.add(k)
                    stack.append((child, iter(children(child))))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def topo_order(roots: Iterable[sp.Basic]) -> list[sp.Basic]:
    """Unique nodes reachable from ``roots``, each after all of its arguments.

    See :func:`linearise`, which also gives each node's arguments as positions.

    Args:
        roots: SymPy objects (expressions, booleans, ...).

    Returns:
        A list of unique nodes in topological order: children before parents; roots appear in
        the order given (when not already inside an earlier root).

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> topo_order([sp.exp(x) + x])
    [x, exp(x), x + exp(x)]
    """
    return _walk(roots, False).order


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while building a large graph.

    Building a DAG allocates many objects and no reference cycles, but every few hundred
    allocations the collector wakes and, once the graph is large, walks all of it: on a
    4,417-parameter MLP that is 10-15% of derive + compile. Reference counting still frees
    everything; the collector resumes (if it was running) on exit, also after an error.

    >>> import gc
    >>> with paused_gc():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def free_symbols(exprs: Iterable[sp.Basic]) -> list[sp.Symbol]:
    """The symbols in ``exprs`` in order of first appearance (iterative, unlike SymPy's).

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> free_symbols([y * sp.sin(x), x])
    [y, x]
    """
    return [n for n in topo_order(exprs) if isinstance(n, sp.Symbol)]


def depends_on(order: Sequence[sp.Basic], leaves: Iterable[sp.Basic]) -> set[sp.Basic]:
    """The nodes of ``order`` whose value depends on any of ``leaves``.

    Args:
        order: nodes in topological order (from :func:`topo_order`).
        leaves: the symbols of interest.

    Returns:
        The set of nodes on a path from a leaf upward (the leaves included when present).

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> order = topo_order([sp.sin(x) + y])
    >>> sorted(map(str, depends_on(order, [x])))
    ['sin(x)', 'x', 'y + sin(x)']
    """
    dep = set(leaves)
    for node in order:
        if node not in dep and any(arg in dep for arg in node.args):
            dep.add(node)
    return dep & set(order)


def tree_size(expr: sp.Basic, cap: int) -> int:
    """Size of ``expr`` as a tree (shared nodes counted at every use), saturating at ``cap + 1``.

    The walk stops as soon as the count passes ``cap``, so the cost is O(min(size, cap)) however
    large the expression: use it to decide whether an operation whose cost grows with the *tree*
    (flattening, simplifying) is cheap enough.

    Args:
        expr: a SymPy object.
        cap: the largest size of interest; anything larger is reported as ``cap + 1``.

    Returns:
        ``min(number of nodes in the tree, cap + 1)``.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> tree_size(sp.sin(x) * sp.sin(x) + 1, cap=100)
    6
    >>> tree_size(sp.sin(x) * sp.sin(x) + 1, cap=3)
    4
    """
    # Level by level: one list comprehension per level is ~3x cheaper than a pop per node,
    # and this runs for nearly every product the reverse sweep builds.
    count = 0
    level = [expr]
    while level:
        count += len(level)
        if count > cap:
            return cap + 1
        level = [a for e in level for a in e.args]
    return count


def split_wide(roots: Sequence[sp.Basic], width: int = 256) -> list[sp.Basic]:
    """``roots`` with every sum or product of more than ``width`` terms split into a balanced tree.

    Code generators print one statement per node; a statement summing 100,000 terms overflows
    Python's own compiler (it recurses over ``a + b + ...``). Splitting keeps every statement
    bounded. See :func:`split_wide_linear` (this is it, on roots alone).

    Args:
        roots: SymPy expressions.
        width: the largest number of arguments a sum or product keeps.

    Returns:
        Expressions equal to ``roots``; the roots themselves when nothing is wide.

    >>> import sympy as sp
    >>> xs = sp.symbols("x0:5")
    >>> split_wide([sp.Add(*xs)], width=2)[0].args
    ((x0 + x1) + (x2 + x3), x4)
    """
    return split_wide_linear(roots, linearise(roots), width)[0]


def split_wide_linear(
    roots: Sequence[sp.Basic], dag: Linear, width: int = 256
) -> tuple[list[sp.Basic], Linear]:
    """:func:`split_wide` on an already linearised DAG, returning the new roots and their DAG.

    One pass over ``dag`` by position: a node is rebuilt only when it is wide or one of its
    arguments was rebuilt (equal but distinct objects, e.g. the same Float built twice, share a
    position and never count as a change), with its arguments in the order they have (no
    re-sorting), and the new DAG is assembled in the same pass (no second walk).

    Args:
        roots: SymPy expressions.
        dag: ``linearise(roots)``, or a DAG that contains all of them.
        width: the largest number of arguments a sum or product keeps.

    Returns:
        ``(new roots, their Linear)``; ``(roots, dag)`` unchanged when nothing is wide.

    >>> import sympy as sp
    >>> xs = sp.symbols("x0:3")
    >>> roots, dag = split_wide_linear([sp.Add(*xs)], linearise([sp.Add(*xs)]), width=2)
    >>> roots[0].args
    (x0 + x1, x2)
    >>> dag.order[-1] is roots[0], [dag.order[k] for k in dag.args[-1]]
    (True, [x0 + x1, x2])
    """
    order, args_of = dag.order, dag.args
    first = next(
        (
            i
            for i, a in enumerate(args_of)
            if len(a) > width and (order[i].is_Add or order[i].is_Mul)
        ),
        None,
    )
    if first is None:
        return list(roots), dag
    new = list(order)
    pos = [0] * len(order)  # old position -> new position
    order2: list[sp.Basic] = []
    args2: list[list[int]] = []
    # Only the objects built here are hashed: an unchanged node is unique in ``dag`` already.
    # A built object equal to an unchanged node shares its position (found through
    # ``dag.index``): at once when that node came first, else when it is reached (``alias``).
    built: dict[sp.Basic, int] = {}
    alias: dict[int, int] = {}  # old position of an unchanged node -> its built twin's position
    old_index = dag.index

    def emit(obj: sp.Basic, positions: list[int], at: int) -> int:
        p = built.get(obj)
        if p is None:
            j = old_index.get(obj)
            if j is not None and j < at and new[j] is order[j]:
                return pos[j]
            p = built[obj] = len(order2)
            order2.append(obj)
            args2.append(positions)
            if j is not None and j > at:
                alias.setdefault(j, p)
        return p

    changed = [False] * len(order)  # whether node i was rebuilt
    # nodes before the first wide one keep their positions
    order2 += order[:first]
    args2 += args_of[:first]
    pos[:first] = range(first)
    for i in range(first, len(order)):
        a = args_of[i]
        node = order[i]
        if len(a) > width and (node.is_Add or node.is_Mul):
            items = [(new[j], pos[j]) for j in a]
            commutative = node.is_commutative
            while len(items) > width:
                grouped = []
                for k in range(0, len(items), width):
                    chunk = items[k : k + width]
                    if len(chunk) == 1:
                        grouped.append(chunk[0])
                        continue
                    obj = node.func._from_args([c[0] for c in chunk], commutative)
                    grouped.append((obj, emit(obj, [c[1] for c in chunk], i)))
                items = grouped
            new[i] = node.func._from_args([c[0] for c in items], commutative)
            pos[i] = emit(new[i], [c[1] for c in items], i)
            changed[i] = True
            continue
        positions = [pos[j] for j in a]
        for j in a:
            if changed[j]:
                new[i] = rebuild(node, [new[j] for j in a])
                pos[i] = emit(new[i], positions, i)
                changed[i] = True
                break
        else:
            if i in alias:
                pos[i] = alias[i]
            else:
                pos[i] = len(order2)
                order2.append(node)
                args2.append(positions)
    index2 = {node: k for k, node in enumerate(order2)}
    return [new[dag.index[r]] for r in roots], Linear(order2, args2, index2)


#: SymPy's function constructors (1.13+ has DefinedFunction between Function and cos, tanh, ...)
_FUNCTION_BASES = tuple(
    b for b in (getattr(sp.core.function, "DefinedFunction", None), sp.Function) if b is not None
)
_PLAIN: dict[type, tuple | None] = {}  # head -> (nargs, allowed counts or None), None if not plain


def _plain(func: type) -> tuple | None:
    # (nargs, counts) for a head built by Function's constructor alone; None when a class on the
    # way defines its own (Heaviside fills in H0, Max/Min sort, ...)
    if func not in _PLAIN:
        plain = None
        for k in func.__mro__:
            if k in _FUNCTION_BASES:
                nargs = func.nargs
                counts = None if nargs == sp.Naturals0 else set(nargs)
                plain = (nargs, counts)
                break
            if "__new__" in vars(k) or "_new_" in vars(k):
                break
        _PLAIN[func] = plain
    return _PLAIN[func]


def unevaluated(func: type, *args: sp.Basic) -> sp.Basic:
    """``func(*args, evaluate=False)`` without SymPy's per-instance bookkeeping.

    ``Function.__new__`` builds a ``FiniteSet`` of the allowed argument counts for every
    instance, even unevaluated: about 65 us per node, most of the cost of a network's
    activations and of a ReLU network's Heaviside factors. For heads that SymPy builds with
    ``Function``'s constructor alone, the set is made once per head and shared (the argument
    count is still checked); other heads get SymPy's constructor. The arguments must be SymPy
    objects already.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> t = unevaluated(sp.tanh, x + 1)
    >>> t == sp.tanh(x + 1, evaluate=False), t.nargs
    (True, {1})
    """
    plain = _plain(func)
    if plain is None or (plain[1] is not None and len(args) not in plain[1]):
        return func(*args, evaluate=False)
    obj = sp.Basic.__new__(func, *args)
    obj.nargs = plain[0]
    return obj


def heaviside(arg: sp.Expr, h0: sp.Expr) -> sp.Basic:
    """``Heaviside(arg, h0, evaluate=False)`` as :func:`unevaluated` builds it (Heaviside's own
    constructor only fills in a missing ``h0``).

    >>> import sympy as sp
    >>> heaviside(sp.Symbol("x"), sp.S.Half) == sp.Heaviside(sp.Symbol("x"), sp.S.Half)
    True
    """
    obj = sp.Basic.__new__(sp.Heaviside, arg, h0)
    obj.nargs = _HEAVISIDE_NARGS
    return obj


_HEAVISIDE_NARGS = sp.Heaviside.nargs


def rebuild(node: sp.Basic, args: Sequence[sp.Basic]) -> sp.Basic:
    """``node``'s head applied to new ``args``, unevaluated where the head allows it.

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> rebuild(x + y, [x, x])
    x + x
    """
    if node.is_Add or node.is_Mul:
        # the arguments keep their order: SymPy's unevaluated constructors would run the
        # matrix postprocessors and, for printing, sort them later
        return node.func._from_args(list(args), node.is_commutative)
    if isinstance(node, MinMaxBase) and len(set(args)) == len(args) > 1:
        return lattice_from_args(node.func, args)
    try:
        return unevaluated(node.func, *args)
    except TypeError:  # heads without an evaluate option
        return node.func(*args)


def lattice_from_args(cls: type[MinMaxBase], args: Sequence[sp.Expr]) -> sp.Expr:
    """``cls(*args)`` (``Max`` or ``Min``) over distinct ``args``, kept in the order given.

    SymPy's constructor sorts the arguments even with ``evaluate=False``, by a sort key that
    walks each argument's whole subtree; on a network's outputs that is seconds per node.

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> lattice_from_args(sp.Max, [y, x]).args
    (y, x)
    """
    obj = sp.Expr.__new__(cls, *args)
    obj._argset = frozenset(args)  # what MinMaxBase's own constructor records
    return obj
