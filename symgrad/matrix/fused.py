"""Chains of entrywise operations compiled into one C pass (the NumPy target's fused kernels).

NumPy runs every entrywise operation as its own sweep over memory: ``tanh(W x + b)`` is an
addition and a ``tanh``, each reading and writing the whole array, and ``(1 - h ⊙ h) ⊙ g``
three. In a training step these sweeps are what separates the step from its matrix products.
:func:`plan` finds, among the nodes the generator is about to print, maximal trees of
entrywise nodes (sums, Hadamard products and powers, scalar multiples, elementwise functions)
whose inner nodes are read once, by the tree, and :class:`FusedKernel` computes each tree in
one loop over the result's entries (and, when a row or column sum of the result is also
wanted, that sum in the same pass). Operands are arrays of the result's shape, broadcast
columns and rows, and scalars.

A kernel is only planned when a C compiler is on ``PATH``
(:func:`symgrad.codegen.c_build.c_available`) and the result is not known to be small, and
built on its second call (:data:`WARMUP_CALLS`) with at least :data:`FUSED_FROM` entries,
through the C target's private, checked build cache. Below that size the generated code runs
the tree as one NumPy expression itself; every other call the C loop cannot take (another
dtype than float64, a layout other than rows of contiguous entries, a build that failed, the
warm-up) runs the same expression in the kernel's NumPy function, which the generated source
shows next to the function (``_fused0_numpy``). The C loop computes the same operations in
the same order, with NumPy's NaN and infinity semantics (no fast-math);
``tanh``/``exp``/``log``/``sin``/``cos`` call glibc's vector math library (within 4 ulp), and
trees with them run in C only when it links (probed at the first build), since one scalar
libm call per entry is slower than NumPy's own loops.

>>> import numpy as np, sympy as sp
>>> from symgrad.matrix import expr as mx
>>> from symgrad.matrix.codegen import compile_matrix
>>> B = sp.Symbol("B", integer=True, positive=True)
>>> Z, b = sp.MatrixSymbol("Z", 3, B), sp.MatrixSymbol("b", 3, 1)
>>> f = compile_matrix(mx.tanh(mx.add(Z, mx.broadcast(b, (3, B)))), [Z, b])
>>> z, bias = np.zeros((3, 2)), np.ones((3, 1))
>>> bool(np.allclose(f(z, bias), np.tanh(z + bias)))
True
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import sympy as sp
from sympy.matrices.expressions import HadamardPower, HadamardProduct, MatAdd, MatMul, Transpose
from sympy.matrices.expressions.special import OneMatrix

from ..codegen import c_build
from ..codegen.c_float import entry_flags
from ..codegen.c_pack import VECTOR_MATH, tanh_source
from ..codegen.c_printer import PRELUDE, CPrinter
from ..errors import SymgradError
from . import expr as mx
from . import fused_entry
from .expr import Broadcast, LogSumExp, Map, Softmax, SumAll, SumAxis

__all__ = [
    "CTYPES_FROM",
    "FUSED_FROM",
    "WARMUP_CALLS",
    "FusedKernel",
    "Group",
    "Library",
    "entrywise",
    "inner_nodes",
    "numpy_code",
    "plan",
    "reads",
    "total_into",
    "total_of",
    "tree_order",
]

#: Results with fewer entries stay in NumPy: the generated code runs the tree as NumPy
#: statements below this size. A call through the builtin entry (:mod:`.fused_entry`) costs
#: about 0.1 us, so C pays on small arrays too (measured, CPU time per call: a bias add
#: ``Z + b`` over 512 entries 0.11 us in C against 0.97 us in NumPy, 2560 entries 0.39 against
#: 2.5; ``tanh(Z + b)`` 0.6 against 2.1, then 2.5 against 6.7), and where it cannot be built
#: the kernel object passes arrays under :data:`CTYPES_FROM` entries to NumPy
FUSED_FROM = 512
#: ... and without the entry, through ctypes (about 6 us: the operands' checks and pointers in
#: Python), from this many (measured on 64 x c arrays: bias add + tanh 15.5 us in C against
#: 17 us in NumPy at 8192 entries, 25 against 34 at 16384; the tanh derivative 8.5 against 7.9,
#: then 11 against 16)
CTYPES_FROM = 8192
#: Large calls of a kernel that NumPy answers before the library is built: a function called
#: once never pays for the compiler (the first build per machine takes ~1 s, and later ones
#: load from the cache after probing the compiler, ~0.16 s per process, measured on a
#: 2-16-16-1 network's value and gradient); a training loop builds on its second step.
WARMUP_CALLS = 1
#: Functions with a vector version in glibc's libmvec; any other function keeps a tree in NumPy.
_VECTOR = {sp.exp, sp.log, sp.tanh, sp.sin, sp.cos}
#: Scalar heads the C loop computes inline (compare-and-select helpers, hardware square root).
_INLINE = (sp.Add, sp.Mul, sp.Max, sp.Min, sp.Abs)


def _printable(e: sp.Basic, mvec: bool) -> bool:
    """True when every operation of the scalar ``e`` runs inline, or through libmvec."""
    for node in sp.preorder_traversal(e):
        if isinstance(node, (sp.Symbol, sp.Number, sp.NumberSymbol, *_INLINE)):
            continue
        if isinstance(node, sp.Pow):
            p = node.exp
            # squares, reciprocals and square roots: GCC folds pow() into x * x, 1 / x, sqrt
            if p in (2, -1, sp.S.Half):
                continue
            return False
        if mvec and node.func in _VECTOR:
            continue
        return False
    return True


def _constant(a: sp.Basic) -> sp.Basic | None:
    """The scalar ``c`` of an operand ``c * 1`` (a broadcast constant), else None."""
    if isinstance(a, OneMatrix):
        return sp.S.One
    c, base = mx._split(a) if isinstance(a, MatMul) else (None, a)
    return c if isinstance(base, OneMatrix) else None


def entrywise(node: sp.Basic) -> bool:
    """Nodes one loop over the result's entries computes (given their operands' entries).

    >>> X = sp.MatrixSymbol("X", 2, 2)
    >>> entrywise(mx.tanh(X)), entrywise(mx.matmul(X, X))
    (True, False)
    """
    if getattr(node, "shape", None) is None or len(node.shape) != 2:
        return False
    if isinstance(node, MatAdd):
        # X + Y^T walks one operand across rows: _add_transposed blocks it instead
        return not any(isinstance(a, Transpose) for a in node.args)
    if isinstance(node, HadamardPower):
        return node.args[1].is_number
    if isinstance(node, MatMul):  # a scalar multiple c X
        coeff, mats = node.as_coeff_matrices()
        return len(mats) == 1 and coeff != 1
    return isinstance(node, (HadamardProduct, Map)) and _constant(node) is None


class Group:
    """One fused tree: its root, inner nodes, operands and scalar formula.

    Attributes:
        root: the node the tree computes.
        inner: the other nodes of the tree (read by the tree alone).
        leaves: ``(node, kind)`` per operand, in argument order: kind ``"full"`` (an array of
            the root's shape), ``"col"``/``"row"``/``"one"`` (a broadcast ``(r, 1)``,
            ``(1, c)`` or ``(1, 1)`` array: ``node`` is the array broadcast) or ``"scalar"``.
        expr: the formula of one entry over the symbols ``x0, x1, ...`` (one per leaf).
        total: a ``SumAxis`` node of the root computed in the same pass, or None.

    >>> X = sp.MatrixSymbol("X", 2, 3)
    >>> f = mx.exp(mx.scale(2, X))
    >>> (group,) = plan(mx.value_nodes([f]), [f], mvec=True).values()
    >>> group.expr, group.leaves
    (exp(2*x0), [(X, 'full')])
    """

    def __init__(self, root: sp.Basic, inner: set, leaves: list, expr: sp.Expr) -> None:
        self.root, self.inner, self.leaves, self.expr = root, inner, leaves, expr
        self.total: SumAxis | SumAll | None = None

    @property
    def axis(self) -> int | None:
        """The axis ``total`` sums along: 0, 1, -1 for all entries (a ``SumAll``), or None."""
        if self.total is None:
            return None
        return -1 if isinstance(self.total, SumAll) else self.total.axis

    @property
    def total_shape(self) -> tuple[str, str]:
        """The shape of the array receiving ``total``, over the root's ``n`` x ``m``."""
        axis = self.axis
        return ("1", "m") if axis == 0 else ("n", "1") if axis == 1 else ("1", "1")


def _subtracted(term: sp.Basic) -> bool:
    c, _ = mx._split(term) if isinstance(term, MatMul) else (sp.S.One, term)
    return bool(c.is_number and c < 0)


def _ordered(printer: Any) -> Any:
    """A fresh ``printer`` of the same class that prints sums and products in the order built."""
    fresh = type(printer)()
    fresh._settings["order"] = "none"
    return fresh


def _local(node: sp.Basic, operand: Callable[[sp.Basic], sp.Expr]) -> sp.Expr:
    """The formula of one entry of ``node`` over its operands' formulas (as NumPy orders it)."""
    if isinstance(node, MatAdd):
        # subtracted terms last: 1 - h h is one subtraction, as the unfused statements have it
        terms = [operand(a) for a in sorted(node.args, key=_subtracted)]
        out = terms[0]
        for t in terms[1:]:
            out = sp.Add(out, t, evaluate=False)
        return out
    if isinstance(node, HadamardProduct):
        factors = [operand(a) for a in node.args]
        out = factors[0]
        for f in factors[1:]:
            out = sp.Mul(out, f, evaluate=False)
        return out
    if isinstance(node, HadamardPower):
        return sp.Pow(operand(node.args[0]), node.args[1], evaluate=False)
    if isinstance(node, MatMul):
        coeff, (mat,) = node.as_coeff_matrices()
        return sp.Mul(operand(coeff), operand(mat), evaluate=False)
    if isinstance(node, Softmax):  # exp(z - lse), the lse broadcast along the axis
        lse = mx.broadcast(LogSumExp(*node.args), node.shape)
        z, m = operand(node.args[0]), operand(lse)
        return sp.exp(sp.Add(z, sp.Mul(-1, m, evaluate=False), evaluate=False), evaluate=False)
    mats = [operand(a) for a in node.mats]  # a Map
    return node.lam.expr.xreplace(dict(zip(node.lam.variables, mats, strict=True)))


def plan(order: list, outputs: list, mvec: bool) -> dict[sp.Basic, Group]:
    """The fused trees among ``order`` (the generator's nodes, children first), by root.

    Args:
        order: every node the function computes, each after its operands.
        outputs: the nodes the function returns (never inner nodes of a tree).
        mvec: whether the C loops may call libmvec's ``exp``/``log``/``tanh``/``sin``/``cos``.

    A node joins its reader's tree when it is entrywise, of the reader's shape, read exactly
    once in the whole function (by that reader, in one place), and not an output. Trees
    without an operand of the root's full shape (broadcasts only) are left to NumPy.

    >>> import sympy as sp
    >>> X = sp.MatrixSymbol("X", 2, 2)
    >>> f = mx.tanh(mx.hadamard(X, X))
    >>> [str(g.expr) for g in plan(mx.value_nodes([f]), [f], mvec=True).values()]
    ['tanh(x0*x0)']
    """
    fusable = {n for n in order if entrywise(n)}
    # softmax(z) = exp(z - logsumexp(z)) is entrywise once the log-sum-exp is computed before it
    # (a loss's forward value): its entries over z's and a broadcast row or column of the lse
    computed: set = set()
    for n in order:
        if isinstance(n, Softmax) and LogSumExp(*n.args) in computed:
            fusable.add(n)
        computed.add(n)
    inner = inner_nodes(fusable, reads(order, outputs))
    groups: dict[sp.Basic, Group] = {}
    for root in order:
        # columns: the loop runs along rows, one entry long; NumPy's one loop is faster
        if root in fusable and root not in inner and root.shape[1] != 1:
            group = _group(root, inner, mvec)
            if group is not None:
                groups[root] = group
    for node in order:  # a row or column sum of a root, or its sum, computed in the root's pass
        group = groups.get(node.args[0]) if isinstance(node, (SumAxis, SumAll)) else None
        if group is None or group.total is not None:
            continue
        if isinstance(node, SumAll) or group.root.shape[1 - node.axis] != 1:
            group.total = node
    return groups


def reads(order: list, outputs: list) -> dict[sp.Basic, list]:
    """The readers of each node of ``order`` (one entry per read; an output is read by None).

    >>> X = sp.MatrixSymbol("X", 2, 2)
    >>> f = mx.tanh(mx.hadamard(X, X))
    >>> [len(r) for r in reads(mx.value_nodes([f]), [f]).values()]
    [2, 1, 1]
    """
    readers: dict[sp.Basic, list] = {}
    for node in order:
        for a in mx.operands(node):
            readers.setdefault(a, []).append(node)
    for o in outputs:
        readers.setdefault(o, []).append(None)
    return readers


def inner_nodes(fusable: set, readers: dict) -> set:
    """The ``fusable`` nodes a tree computes inline: read once, by a fusable node of their
    shape, and not outputs (``readers`` from :func:`reads`).

    >>> X = sp.MatrixSymbol("X", 2, 2)
    >>> f = mx.tanh(mx.hadamard(X, X))
    >>> order = mx.value_nodes([f])
    >>> inner_nodes({n for n in order if entrywise(n)}, reads(order, [f]))
    {HadamardProduct(X, X)}
    """
    return {
        n
        for n in fusable
        if len(r := readers.get(n, ())) == 1 and r[0] in fusable and r[0].shape == n.shape
    }


def tree_order(root: sp.Basic, inner: set) -> list:
    """The nodes of the tree of ``root`` whose other nodes are ``inner``, children first
    (iterative: trees may be deep chains).

    >>> X = sp.MatrixSymbol("X", 2, 2)
    >>> h = mx.hadamard(X, X)
    >>> tree_order(mx.tanh(h), {h})
    [HadamardProduct(X, X), Map(Lambda(u0, tanh(u0)), HadamardProduct(X, X))]
    """
    stack, seen, post = [root], set(), []
    while stack:
        node = stack.pop()
        if node in seen:
            post.append(node)
            continue
        seen.add(node)
        stack.append(node)
        stack.extend(a for a in mx.operands(node) if a in inner and a not in seen)
    return list(dict.fromkeys(post))


def _group(root: sp.Basic, inner: set, mvec: bool) -> Group | None:
    members: set = set()
    leaves: list = []
    symbols: dict[Any, sp.Symbol] = {}

    def leaf(key: Any, node: sp.Basic, kind: str) -> sp.Symbol:
        if key not in symbols:
            symbols[key] = sp.Symbol(f"x{len(leaves)}", real=True)
            leaves.append((node, kind))
        return symbols[key]

    def operand(a: sp.Basic) -> sp.Expr:
        if a in formulas:
            return formulas[a]
        if getattr(a, "shape", None) is None:  # a scalar: a number, or passed in as a double
            return a if a.is_Number else leaf(("scalar", a), a, "scalar")
        if (c := _constant(a)) is not None:
            return operand(c)
        if isinstance(a, Broadcast) and getattr(a.arg, "shape", None) is None:
            return operand(a.arg)  # a broadcast scalar
        if isinstance(a, Broadcast):
            r, c = a.arg.shape
            kind = "one" if r == c == 1 else "col" if c == 1 else "row"
            return leaf((kind, a.arg), a.arg, kind)
        return leaf(("full", a), a, "full")

    formulas: dict[sp.Basic, sp.Expr] = {}
    for node in tree_order(root, inner):
        formulas[node] = _local(node, operand)
        if node is not root:
            members.add(node)
    expr = formulas[root]
    # transposes are views whose rows are not contiguous: the loop would never take them
    full = [node for node, kind in leaves if kind == "full"]
    if all(isinstance(n, Transpose) for n in full) or not _printable(expr, mvec):
        return None
    return Group(root, members, leaves, expr)


def numpy_source(name: str, group: Group, printer: Any) -> str:
    """The NumPy function computing ``group`` (what runs when the C loop does not).

    Its last operation writes into ``out`` when it is a ufunc (as the unfused statements did
    in place), so small arrays cost what they cost before fusion.
    """
    params = ", ".join(f"x{k}" for k in range(len(group.leaves)))
    body = _with_out(group.expr, _ordered(printer))
    return f"def {name}({params}, out=None):\n    return {body}\n"


def numpy_code(group: Group, operands: list[str], out: str | None, printer: Any) -> str:
    """``group`` as one NumPy expression over the generated code's ``operands`` (one name or
    code per leaf), writing into ``out`` (a dead operand) if given: its last ufunc, and when
    ``out`` is read once, every ufunc on the way from it to the result.

    >>> from symgrad.matrix.codegen import _Printer
    >>> X = sp.MatrixSymbol("X", 2, 3)
    >>> f = mx.tanh(mx.scale(2, X))
    >>> (group,) = plan(mx.value_nodes([f]), [f], mvec=True).values()
    >>> numpy_code(group, ["t1"], "t1", _Printer())
    'numpy.tanh(numpy.multiply(2, t1, out=t1), out=t1)'
    """
    names = {sp.Symbol(f"x{k}", real=True): sp.Symbol(c) for k, c in enumerate(operands)}
    with sp.evaluate(False):  # the same operations in the same order
        expr = group.expr.xreplace(names)
    printer = _ordered(printer)
    if not out:
        return printer.doprint(expr)
    # the dead operand read once: every operation on its way to the result may write into it
    # (each such value is read by its parent alone, and nothing reads the operand afterwards)
    dead = sp.Symbol(out)
    return _with_out(expr, printer, out, dead if expr.count(dead) == 1 else None)


def total_into(result: Any, total: Any, axis: int) -> Any:
    """``result``, after writing its sums along ``axis`` into ``total`` (NumPy's path; axis
    -1: the sum of all entries, into a 1 x 1 ``total``), when both have one dtype (else
    :func:`total_of` sums ``result`` itself).

    >>> import numpy as np
    >>> t = np.empty((2, 1))
    >>> _ = total_into(np.ones((2, 3)), t, 1)
    >>> t.ravel().tolist()
    [3.0, 3.0]
    """
    if result.dtype == total.dtype:
        np.add.reduce(result, None if axis == -1 else axis, None, total, True)
    return result


def total_of(result: Any, total: Any, axis: int) -> Any:
    """The sums of ``result`` along ``axis`` (-1: of all its entries, a scalar) as the unfused
    code computes them: those the call wrote into ``total``, unless ``result`` has another
    dtype (NumPy computed the tree, float32 say), whose own sums keep that dtype.

    >>> import numpy as np
    >>> total_of(np.ones((2, 3), np.float32), np.zeros((1, 1)), -1).dtype
    dtype('float32')
    """
    if result.dtype == total.dtype:
        return total[0, 0] if axis == -1 else total
    return result.sum() if axis == -1 else result.sum(axis=axis, keepdims=True)


def _with_out(e: sp.Expr, printer: Any, out: str = "out", through: Any = None) -> str:
    """``e`` printed for NumPy, its outermost ufunc given ``out=out`` where there is one, and
    so are the ufuncs on the way to the symbol ``through`` (if given)."""
    form = _ufunc(e, printer)
    if form is None:
        return printer.doprint(e)
    name, pair = form
    parts = [
        _with_out(a, printer, out, through)
        if through is not None and a.has(through)
        else printer.doprint(a)
        for a in pair
    ]
    return f"numpy.{name}({', '.join(parts)}, out={out})"


def _ufunc(e: sp.Expr, printer: Any) -> tuple[str, tuple] | None:
    """``(NumPy ufunc, operands)`` when ``e`` is one ufunc call with an ``out`` argument."""
    args = e.args
    if isinstance(e, sp.Add) and len(args) == 2:
        for a, b in (args, args[::-1]):
            if isinstance(b, sp.Mul) and len(b.args) == 2 and b.args[0] == -1:
                pair, ufunc = (a, b.args[1]), "subtract"
                break
        else:
            pair, ufunc = args, "add"
    elif isinstance(e, sp.Mul) and len(args) == 2 and -1 not in args:
        pair, ufunc = args, "multiply"
    elif isinstance(e, sp.Function) and len(args) == 1:
        z = sp.Symbol("z")
        if printer.doprint(e.func(z)) != f"numpy.{e.func.__name__}(z)":
            return None
        pair, ufunc = args, e.func.__name__
    else:
        return None
    return ufunc, pair


def c_source(name: str, group: Group) -> str:
    """The C function computing ``group``: one loop over rows, one over their entries.

    ``out`` may be one of the full operands (the same entries: each is read before it is
    written, so the inner loop carries no dependence, which ``ivdep`` tells the compiler).
    """
    params = ["int64_t n", "int64_t m", "double *out"]
    loads_row, loads_entry = [], []
    for k, (_, kind) in enumerate(group.leaves):
        if kind == "scalar":
            params.append(f"double x{k}")
        elif kind == "full":
            params += [f"const double *p{k}", f"int64_t s{k}"]
            loads_entry.append(f"const double x{k} = p{k}[i * s{k} + j];")
        elif kind == "col":
            params += [f"const double *p{k}", f"int64_t s{k}"]
            loads_row.append(f"const double x{k} = p{k}[i * s{k}];")
        elif kind == "row":
            params.append(f"const double *p{k}")
            loads_entry.append(f"const double x{k} = p{k}[j];")
        else:
            params.append(f"const double *p{k}")
            loads_row.append(f"const double x{k} = p{k}[0];")
    if group.axis is not None:
        params.append("double *total")
    value = _ordered(_CPrinter()).doprint(group.expr)
    body = [f"void {name}({', '.join(params)}) {{"]
    if group.axis == 0:
        body.append("    for (int64_t j = 0; j < m; ++j) total[j] = 0.0;")
    if group.axis == -1:
        body.append("    total[0] = 0.0;")
    body += ["    for (int64_t i = 0; i < n; ++i) {", "        double *o = out + i * m;"]
    body += [f"        {line}" for line in loads_row]
    body += ["#if defined(__clang__)", "#pragma clang loop vectorize(assume_safety)", "#else"]
    body += ["#pragma GCC ivdep", "#endif", "        for (int64_t j = 0; j < m; ++j) {"]
    body += [f"            {line}" for line in loads_entry]
    body.append(f"            o[j] = {value};")
    if group.axis == 0:
        body.append("            total[j] += o[j];")
    body.append("        }")
    if group.axis in (1, -1):
        # eight partial sums (vector lanes; NumPy's pairwise sum also keeps eight); all
        # entries: the rows' sums added in order
        body += [
            "        double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, rest = 0.0;",
            "        int64_t j = 0;",
            "        for (; j + 8 <= m; j += 8)",
            "            for (int k = 0; k < 8; ++k) acc[k] += o[j + k];",
            "        for (; j < m; ++j) rest += o[j];",
            f"        total[{'i' if group.axis == 1 else '0'}] {'=' if group.axis == 1 else '+='} "
            "((acc[0] + acc[1]) + (acc[2] + acc[3])) + "
            "((acc[4] + acc[5]) + (acc[6] + acc[7])) + rest;",
        ]
    body += ["    }", "}"]
    return "\n".join(body) + "\n"


class _CPrinter(CPrinter):
    """The C target's printer, with ``tanh`` through ``expm1`` (``c_pack.tanh_source``)."""

    def _print_tanh(self, expr: sp.Expr) -> str:
        return f"sg_tanh({self._print(expr.args[0])})"


#: GCC's default for AVX-512 CPUs is 256-bit vectors; these loops are short, independent
#: lanes, where 512 bits pay (libmvec's 8-lane tanh: 122 against 201 us on 256 x 256, measured)
_WIDE = """\
#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("prefer-vector-width=512")
#endif"""


class Library:
    """The C kernels of one compiled function: built once, when a kernel first needs them.

    Args:
        groups: ``(C function name, Group)`` per kernel.
        namespace: the generated function's globals. When given and the interpreter's and
            NumPy's headers are found, the library also holds a builtin entry per kernel
            (:mod:`.fused_entry`), and once built the entries replace the kernel objects
            there: later calls reach the C loops without a Python frame.

    >>> Library([]).failed
    False
    """

    def __init__(
        self,
        groups: list[tuple[str, Group]],
        namespace: dict | None = None,
        helpers: tuple[str, ...] = (),
    ) -> None:
        self.groups = groups
        self.helpers = tuple(h for h in helpers if h in fused_entry.HELPERS)
        self._namespace = namespace
        self._lock = threading.Lock()
        self._dll: Any = None
        self.failed = False
        #: builtin entries by kernel name, once built (empty without the headers)
        self.entries: dict[str, Any] = {}
        #: the kernel objects by name (the namespace holds the entries once they are built)
        self.kernels: dict[str, FusedKernel] = {}

    def function(self, name: str) -> Any:
        """The ctypes function ``name``, or None if the library cannot be built or loaded, or
        has builtin entries (:attr:`entries`), which take every call then."""
        if self._dll is None and not self.failed:
            with self._lock:
                if self._dll is None and not self.failed:
                    self._load()
        if self._dll is None or self.entries:
            return None
        return getattr(self._dll, name, None)

    def _load(self) -> None:
        try:
            cc = c_build.compiler()
            if cc is None:
                raise OSError("no C compiler")
            mvec = c_build.target(cc).mvec
            # without libmvec a tree with exp/log/tanh/sin/cos stays in NumPy (one scalar
            # libm call per entry is slower than NumPy's loops)
            self.groups = [(n, g) for n, g in self.groups if mvec or _printable(g.expr, False)]
            if not self.groups:
                raise OSError("no kernel to build")
            source = "\n".join(
                [_WIDE, PRELUDE, *([VECTOR_MATH, tanh_source(True)] if mvec else [])]
                + [c_source(name, group) for name, group in self.groups]
            )
            flags = ["-O3", *(["-lmvec"] if mvec else [])]
            if self._namespace is not None and self._load_entries(cc, source, flags):
                return
            dll = ctypes.CDLL(str(c_build.build_library("sg_fused", [(source, flags)])))
        except (SymgradError, OSError):
            # NumPy computes the same trees: a library that cannot be had only costs speed
            self.failed = True
            return
        for name, group in self.groups:
            fn = getattr(dll, name)
            fn.restype = None
            types = [ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
            for _, kind in group.leaves:
                types += {
                    "scalar": [ctypes.c_double],
                    "full": [ctypes.c_void_p, ctypes.c_int64],
                    "col": [ctypes.c_void_p, ctypes.c_int64],
                }.get(kind, [ctypes.c_void_p])
            if group.axis is not None:
                types.append(ctypes.c_void_p)
            fn.argtypes = types
        self._dll = dll

    def _load_entries(self, cc: tuple[str, ...], source: str, flags: list[str]) -> bool:
        """Build the loops with their builtin entries and install them; False where the
        headers are missing or the build fails (the plain library is built then)."""
        headers = entry_flags(cc)
        if headers is None:
            return False
        # the helpers call exp and log: with libmvec's vector versions only (NumPy's are SIMD)
        helpers = self.helpers if "-lmvec" in flags else ()
        full = source + "\n" + fused_entry.entry_source(self.groups, helpers)
        try:
            path = c_build.build_library("sg_fused_entry", [(full, [*flags, *headers])])
            dll = ctypes.PyDLL(str(path))
            make = dll.sg_make
        except (SymgradError, OSError, AttributeError):
            return False
        make.restype = ctypes.py_object
        make.argtypes = [ctypes.c_int, ctypes.py_object]
        entries = {}
        for k, (name, _) in enumerate(self.groups):
            kernel = self.kernels[name]
            entries[name] = kernel._entry = make(k, kernel.numpy_path)
        for k, name in enumerate(helpers, len(self.groups)):
            entries[name] = make(k, self._namespace[name])
        self._dll, self.entries = dll, entries
        # the generated function looks its kernels up on every call: from now on, the entries
        self._namespace.update(entries)
        return True


_F64 = np.dtype(np.float64)
_NUMBERS = (float, int, np.float64)


class FusedKernel:
    """A fused tree as the generated code calls it: ``_fused0(x0, x1, ..., out=, total=)``.

    ``out`` (optional) is an array the result may be written into (a dead operand, or a
    scratch array); ``total`` an ``(r, 1)`` or ``(1, c)`` array that receives the result's
    row or column sums. The result is ``out`` when the C loop ran, else a new array.

    Attributes:
        name: the C function's name.
        group: the :class:`Group`.
        numpy_fn: the NumPy function computing the same result.

    >>> import numpy as np
    >>> X = sp.MatrixSymbol("X", 2, 3)
    >>> f = mx.tanh(X)
    >>> (group,) = plan(mx.value_nodes([f]), [f], mvec=True).values()
    >>> k = FusedKernel("k", group, np.tanh, Library([("k", group)]))
    >>> k(np.zeros((2, 3))).tolist()  # 6 entries: NumPy's loop (C from FUSED_FROM entries)
    [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """

    def __init__(self, name: str, group: Group, numpy_fn: Any, library: Library) -> None:
        self.name, self.group, self.numpy_fn, self._library = name, group, numpy_fn, library
        self._fn: Any = None  # not looked up yet
        self._entry: Any = None  # the builtin entry, once the library has built it
        self._warm = 0  # large calls answered by NumPy before the library is built
        library.kernels[name] = self
        self._first = next(k for k, (_, kind) in enumerate(group.leaves) if kind == "full")
        self._kinds = [kind for _, kind in group.leaves]

    def __call__(self, *ops: Any, out: Any = None, total: Any = None) -> Any:
        if self._entry is not None:
            return self._entry(*ops, out=out, total=total)
        first = ops[self._first]
        if self._fn is not False and first.__class__ is np.ndarray and first.size >= FUSED_FROM:
            if self._fn is None:  # a large call: build the library (once) after the warm-up
                if self._warm < WARMUP_CALLS:
                    self._warm += 1
                    return self.numpy_path(*ops, out=out, total=total)
                self._fn = self._library.function(self.name) or False
                if self._entry is not None:  # installed by the library
                    return self._entry(*ops, out=out, total=total)
            if (
                self._fn
                and first.size >= CTYPES_FROM
                and (args := self._c_args(ops, out, total)) is not None
            ):
                self._fn(*args[1:])
                return args[0]
        return self.numpy_path(*ops, out=out, total=total)

    def numpy_path(self, *ops: Any, out: Any = None, total: Any = None) -> Any:
        """The tree through NumPy (what the builtin entry passes on when C cannot take it)."""
        result = self.numpy_fn(*ops, out=out)
        return result if total is None else total_into(result, total, self.group.axis)

    @property
    def compiled(self) -> bool:
        """Whether calls run the C loop (through its builtin entry or ctypes)."""
        return bool(self._fn) or self._entry is not None

    def _c_args(self, ops: tuple, out: Any, total: Any) -> list | None:
        """``[result, n, m, pointers and strides...]`` for the C loop, or None if it cannot."""
        n, m = ops[self._first].shape
        if m < 8:  # the inner loop runs along rows: narrow arrays leave NumPy faster
            return None
        if out is None:
            out = np.empty((n, m))
        elif not (
            out.__class__ is np.ndarray
            and out.dtype == _F64
            and out.shape == (n, m)
            and out.flags.c_contiguous
            and out.flags.writeable
        ):
            return None
        args: list = [out, n, m, out.ctypes.data]
        for a, kind in zip(ops, self._kinds, strict=True):
            if kind == "scalar":
                if a.__class__ not in _NUMBERS:
                    return None
                args.append(float(a))
                continue
            if a.__class__ is not np.ndarray or a.dtype != _F64:
                return None
            rs, cs = a.strides
            if rs % 8:
                return None
            if kind == "full":
                if a.shape != (n, m) or (cs != 8 and m > 1):
                    return None
                args += [a.ctypes.data, rs // 8]
            elif kind == "col":
                if a.shape != (n, 1):
                    return None
                args += [a.ctypes.data, rs // 8]
            elif kind == "row":
                if a.shape != (1, m) or (cs != 8 and m > 1):
                    return None
                args.append(a.ctypes.data)
            else:
                if a.shape != (1, 1):
                    return None
                args.append(a.ctypes.data)
        if self.group.axis is not None:
            want = {0: (1, m), 1: (n, 1)}.get(self.group.axis, (1, 1))
            if not (
                total.__class__ is np.ndarray
                and total.dtype == _F64
                and total.shape == want
                and total.flags.c_contiguous
            ):
                return None
            args.append(total.ctypes.data)
        return args
