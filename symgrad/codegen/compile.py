"""Compiling expressions into fast, vectorised NumPy functions.

:func:`lambdify` linearises all outputs into one DAG and computes **each unique node once**,
printed by SymPy's own ``NumPyPrinter`` with the node's arguments replaced by the temporaries
that hold them. A node read by several others (shared between a value and its gradient, or
between the gradients of many parameters) gets a statement; a node read once is printed inside
its reader, up to a bounded depth (Python's ``compile()`` pays per statement). Temporaries are
reused once dead, so a large batch keeps only the live arrays. Compile time grows linearly with
the graph, unlike a tree walk. Argument names in the source are generated, so no user
symbol name can break it; ``.source`` shows the code and tracebacks point into it.

>>> import sympy as sp
>>> x, y = sp.symbols("x y")
>>> f = lambdify([x * y + sp.sin(x), [y + sp.cos(x), x]], [x, y])
>>> value, gradient = f(0.0, 2.0)
>>> float(value), gradient.tolist()
(0.0, [3.0, 0.0])
"""

from __future__ import annotations

import functools
import hashlib
import linecache
import math
import re
import warnings
from typing import Any

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef

from . import runtime as _runtime
from ..autodiff import _sweep
from .c import build_c_kernel, c_available
from .fuse import Fuser, _Pair, _Sum
from .printers import _doprint, _Inlined, _MathPrinter, _print_node, _Printer
from ..errors import (
    ArgumentError,
    BackendUnavailableError,
    InputTypeError,
    MissingSymbolError,
    OptionError,
    ShapeError,
    UnsupportedFunctionError,
)
from ..graph import Linear, free_symbols, linearise, paused_gc, rebuild, split_wide_linear
from ..inputs import as_expr, as_symbols

__all__ = ["BACKENDS", "CompiledFunction", "lambdify", "value_and_grad"]

#: ``"numpy"``: vectorised NumPy statements; ``"c"``: generated C built by the system compiler
#: (raises BackendUnavailableError without one); ``"auto"``: ``"c"`` when a compiler is
#: available, else ``"numpy"`` with a RuntimeWarning.
BACKENDS = ("numpy", "c", "auto")
WIDE = 256  # sums and products wider than this are split before printing
#: Functions up to this many statements also get a pure-Python fast path for float inputs
#: (``math`` functions on Python floats are ~10x cheaper than NumPy ufuncs on them).
SCALAR_PATH_LIMIT = 3000

# Nodes that are printed inside their parent instead of getting a statement of their own.
_INLINE = (sp.Tuple, sp.functions.elementary.piecewise.ExprCondPair)
_UNCOMPILABLE = (sp.Derivative, sp.Subs, sp.Integral, AppliedUndef)
#: How the code generator prints a node (see :func:`_plan`).
_ARGUMENT, _LITERAL, _SHADOW, _INLINED, _STATEMENT = range(5)
#: A node read once is printed inside its reader when it has at most this many arguments and
#: nests at most this many inlined nodes: fewer statements (Python's compile() costs ~4 us per
#: statement) with bounded expression depth.
INLINE_ARGS = 8
INLINE_DEPTH = 4
_TEMP = re.compile(r"\b_t(\d+)\b")
_ELEMENT = re.compile(r"\b_a\d+_\d+\b")
_MATH = re.compile(r"\bmath\.")


class CompiledFunction:
    """A compiled function made by :func:`lambdify`.

    Attributes:
        source: the generated Python source.
        args: the argument specification (a symbol or a list of symbols per argument).
        outputs: the output specification as given (expressions, nested in lists).

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> f = lambdify(x**2, [x])
    >>> f(3.0)
    9.0
    >>> print(f.source.splitlines()[0])
    def symgrad_fn(_a0):
    """

    def __init__(self, fn, source: str, args: list, outputs: Any) -> None:
        self._fn = fn
        self._nargs = len(args)
        self.source = source
        self.args = args
        self.outputs = outputs

    def __call__(self, *values: Any) -> Any:
        if len(values) != self._nargs:
            raise ArgumentError(
                f"compiled function takes {self._nargs} argument(s) "
                f"({_describe_args(self.args)}), got {len(values)}"
            )
        try:
            return self._fn(*values)
        except ValueError as exc:
            if "broadcast" in str(exc):
                shapes = ", ".join(str(np.shape(v)) for v in values)
                raise ShapeError(
                    f"argument shapes do not broadcast together ({shapes}): {exc}"
                ) from exc
            raise

    def __repr__(self) -> str:
        return f"<CompiledFunction of ({_describe_args(self.args)})>"


def _describe_args(args: list) -> str:
    return ", ".join(str(a) if isinstance(a, sp.Symbol) else f"[{len(a)} symbols]" for a in args)


def _normalise_args(args: Any) -> list:
    if isinstance(args, (sp.Symbol, str)) or not isinstance(args, (list, tuple, sp.MatrixBase)):
        args = [args]
    spec: list = []
    seen: dict[sp.Symbol, int] = {}
    for i, item in enumerate(args):
        if isinstance(item, (list, tuple, sp.MatrixBase)):
            syms = as_symbols(list(item), None, f"args[{i}]")[0] if len(item) else []
        else:
            syms, _ = as_symbols(item, None, f"args[{i}]")
        for s in syms:
            if s in seen:
                raise InputTypeError(
                    f"symbol {s} appears twice in args (arguments {seen[s]} and {i}); list each "
                    "symbol once"
                )
            seen[s] = i
        spec.append(syms if isinstance(item, (list, tuple, sp.MatrixBase)) else syms[0])
    return spec


def _normalise_outputs(outputs: Any, leaves: list[sp.Expr], top: bool = True) -> Any:
    """Replace every expression in a nested output structure by its index in ``leaves``."""
    if isinstance(outputs, sp.MatrixBase):
        return [
            [_normalise_outputs(outputs[i, j], leaves, False) for j in range(outputs.cols)]
            for i in range(outputs.rows)
        ]
    if isinstance(outputs, (list, tuple)):
        if not outputs and not top:
            raise InputTypeError("an output list is empty; give at least one expression")
        return [_normalise_outputs(o, leaves, False) for o in outputs]
    leaves.append(as_expr(outputs, "output"))
    return len(leaves) - 1


@paused_gc()
def lambdify(
    outputs: Any,
    args: Any,
    backend: str = "numpy",
    *,
    reduce: str | None = None,
    name: str = "symgrad_fn",
):
    """Compile expressions into one vectorised NumPy function.

    Args:
        outputs: an expression, or a (nested) list/tuple of expressions, or a SymPy matrix. A
            top-level list gives a tuple of results; a nested list gives a NumPy array stacked
            along a new first axis (a matrix gives a 2-D array), batch axes last.
        args: the arguments, in order: each a symbol (passed as a scalar or an array) or a
            sequence of symbols (passed as one array whose first axis indexes the symbols, e.g.
            a parameter vector of shape ``(n,)`` or a batch of shape ``(n, batch)``).
        backend: ``"numpy"`` (default), ``"c"`` (generated C compiled by the system compiler,
            cached; needs a C compiler and real inputs, raises BackendUnavailableError
            without one) or ``"auto"`` (``"c"`` when available, else ``"numpy"`` with a
            RuntimeWarning). Either way, calls whose inputs are all Python floats (and 1-D
            parameter vectors) run a pure-Python ``math`` fast path when the function has
            at most :data:`SCALAR_PATH_LIMIT` statements.
        reduce: ``None`` (default) returns every output for every sample; ``"mean"`` returns
            each output averaged over the batch (the mean loss and mean gradient of a
            training step in one call; the C backend accumulates the sums in its loop and
            never writes per-sample results). A value without batch axes is its own mean.
        name: the name of the generated function (shown in tracebacks).

    Returns:
        A :class:`CompiledFunction`. Every argument accepts a number or an array; arrays
        broadcast, so one call evaluates a whole batch.

    Raises:
        MissingSymbolError: an output uses a symbol that is not in ``args``.
        UnsupportedFunctionError: an output uses a function that has no NumPy translation.
        BackendUnavailableError: an unknown backend was asked for, or ``"c"`` cannot be built.

    >>> import numpy as np
    >>> import sympy as sp
    >>> x, w0, w1 = sp.symbols("x w0 w1")
    >>> f = lambdify(sp.tanh(w0 * x + w1), [x, [w0, w1]])
    >>> f(np.array([0.0, 1.0]), [2.0, 0.5]).round(4)
    array([0.4621, 0.9866])
    >>> mean = lambdify(sp.tanh(w0 * x + w1), [x, [w0, w1]], reduce="mean")
    >>> round(float(mean(np.array([0.0, 1.0]), [2.0, 0.5])), 4)
    0.7244
    """
    return _lambdify(outputs, args, backend, reduce, name)


def _lambdify(
    outputs: Any, args: Any, backend: str, reduce: str | None, name: str, base: Linear | None = None
) -> CompiledFunction:
    # lambdify; ``base``: the linearised DAG the outputs were derived from (not walked again)
    if backend not in BACKENDS:
        raise BackendUnavailableError(
            f"unknown backend {backend!r}; available backends: {', '.join(BACKENDS)}"
        )
    if reduce not in (None, "mean"):
        raise OptionError(f"reduce must be None or 'mean', got {reduce!r}")
    if not name.isidentifier():
        raise InputTypeError(f"name must be a Python identifier, got {name!r}")
    if backend == "auto":
        backend = "c" if c_available() else "numpy"
        if backend == "numpy":
            warnings.warn(
                "backend='auto': no C compiler found, using the NumPy backend (install gcc "
                "or clang for the 'c' backend)",
                RuntimeWarning,
                stacklevel=2,
            )
    arg_spec = _normalise_args(args)
    leaves: list[sp.Expr] = []
    out_spec = _normalise_outputs(outputs, leaves)
    kernel = None
    if backend == "c":
        kernel = build_c_kernel(arg_spec, leaves, f"{name}_kernel", mean=reduce == "mean")
    # a top-level matrix is one 2-D array; a top-level list a tuple of results
    top = not isinstance(outputs, sp.MatrixBase)
    native = kernel is not None
    source = _generate(arg_spec, leaves, (out_spec, top), name, native, reduce == "mean", base)
    filename = f"<symgrad:{name}:{hashlib.sha1(source.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {
        "numpy": np,
        "math": _runtime._VectorMath(),
        "functools": functools,
        **_runtime.HELPERS,
        "_kernel": kernel,
        "_pymath": math,
        "_names": [
            str(a) if isinstance(a, sp.Symbol) else f"a vector of {len(a)}" for a in arg_spec
        ],
    }
    exec(compile(source, filename, "exec"), namespace)  # generated code only, never user text
    return CompiledFunction(namespace[name], source, arg_spec, outputs)


def _generate(
    arg_spec: list,
    leaves: list[sp.Expr],
    spec: tuple[Any, bool],
    name: str,
    native: bool,
    mean: bool,
    base: Linear | None,
) -> str:
    out_spec, top = spec
    params = [f"_a{i}" for i in range(len(arg_spec))]
    lines = [f"def {name}({', '.join(params)}):"]
    var: dict[sp.Basic, str] = {}
    fast_test: list[str] = []  # conditions for the scalar fast path
    unpack: list[str] = []  # vector arguments unpacked into per-symbol names
    vectors: list[tuple[int, list[str]]] = []  # vector argument -> its per-symbol names
    elements: dict[str, tuple[str, int]] = {}  # per-symbol name -> (vector argument, index)
    for i, item in enumerate(arg_spec):
        if isinstance(item, sp.Symbol):
            lines.append(f"    # _a{i}: {item.name!r}")
            lines.append(f"    if type(_a{i}) is not float: _a{i} = _coerce(_a{i}, {i}, _names)")
            var[item] = f"_a{i}"
            fast_test.append(f"type(_a{i}) is float")
        else:
            shown = ", ".join(repr(s.name) for s in item[:8]) + (", ..." if len(item) > 8 else "")
            lines.append(f"    # _a{i}: vector of {len(item)} symbols [{shown}]")
            as_list = "" if not native else ", False"
            lines.append(f"    _a{i} = _coerce_vector(_a{i}, {i}, _names, {len(item)}{as_list})")
            names = [f"_a{i}_{j}" for j in range(len(item))]
            if names:
                tail = "," if len(names) == 1 else ""
                unpack.append(f"{', '.join(names)}{tail} = _a{i}{'.tolist()' if native else ''}")
            fast_test.append(f"_a{i}.ndim == 1" if native else f"type(_a{i}) is list")
            var.update(zip(item, names, strict=True))
            vectors.append((i, names))
            elements.update((nm, (f"_a{i}", j)) for j, nm in enumerate(names))
    unpack_at = len(lines)  # where the NumPy path unpacks vector arguments (non-native)

    dag = linearise(leaves, base)
    if any(len(a) > WIDE for a in dag.args) and any(
        (n.is_Add or n.is_Mul) and len(a) > WIDE for n, a in zip(dag.order, dag.args, strict=True)
    ):
        # bounded statements: Python's own compiler recurses on a + b + ... + z
        leaves, dag = split_wide_linear(leaves, dag, WIDE)
    # From here on nodes are positions in ``order`` (hashing a SymPy node is a Python call)
    order, args_of = dag.order, dag.args
    name: list[str | None] = [None] * len(order)
    bad = [t for t in {type(n) for n in order} if issubclass(t, _UNCOMPILABLE)]
    if bad:
        n = next(n for n in order if isinstance(n, tuple(bad)))
        raise UnsupportedFunctionError(
            type(n).__name__,
            f"cannot compile {sp.sstr(n)[:60]}: it is an undefined function or an "
            "unevaluated derivative/integral; substitute a concrete function first",
        )
    missing = []
    by_id = {id(s): v for s, v in var.items()}  # the argument symbols themselves: no hashing
    for i, n in enumerate(order):
        if args_of[i]:
            continue
        v = by_id.get(id(n))
        if v is None and n.is_Symbol:
            v = var.get(n)  # an equal symbol object of its own
            if v is None:
                missing.append(n)
        name[i] = v
    if missing:
        shown = ", ".join(sorted(str(s) for s in missing)[:10])
        raise MissingSymbolError(
            f"the outputs use symbols that are not arguments: {shown}; add them to args "
            f"(or substitute values for them first)"
        )
    outs = [dag.index[leaf] for leaf in leaves]
    kind, dies = _plan(order, args_of, name, outs)
    read_by_outputs = set(outs)
    printer, math_printer = _Printer(), _MathPrinter()
    templates: dict[tuple, str] = {}
    fuser = Fuser(printer, templates, elements)
    math_templates: dict[tuple, str] = {}
    # what a user prints for node i, for NumPy and for the math fast path: a name, an inlined
    # expression (_Inlined), or a SymPy object (a literal, or a shadow over names / literals)
    kid: list[Any] = name[:]
    math_kid: list[Any] = name[:]
    vector_lines: list[str] = []
    # the fast path only pays on small functions; skip printing it for large ones
    n_ops = sum(1 for k in kind if k >= _INLINED)
    scalar_lines: list[str] | None = [] if fast_test and n_ops <= SCALAR_PATH_LIMIT else None
    free: list[str] = []  # statement names whose values are dead, for reuse
    n_names = 0
    for i, node in enumerate(order):
        k = kind[i]
        if k == _ARGUMENT:
            continue
        if k == _LITERAL:  # numbers and named constants are printed in place
            kid[i] = math_kid[i] = node
            continue
        if k == _SHADOW:  # a Tuple / (expr, cond) pair, or a negation printed as ``-t``
            kid[i] = math_kid[i] = rebuild(node, [_as_symbol(kid[a]) for a in args_of[i]])
            continue
        text = math_text = None
        if not native:
            positions = args_of[i]
            if k == _INLINED and node.is_Mul and len(positions) == 2:
                # a product read once: printed by its reader, which may fuse it (_dot, _gather)
                kid[i] = _Pair(node, [kid[positions[0]], kid[positions[1]]], positions)
                if scalar_lines is None:
                    continue
            elif k == _INLINED and node.is_Add and i in read_by_outputs:
                # a sum read once, by an output: a stacked output may fuse its terms
                kid[i] = _Sum(node, [kid[a] for a in positions])
                if scalar_lines is None:
                    continue
            else:
                kids = [kid[a] for a in positions]
                text = fuser.node(node, kids)
                if fuser.lines:
                    vector_lines += [f"    {ln}" for ln in fuser.lines]
                    fuser.lines.clear()
        if scalar_lines is not None:
            # the same expression over the scalar path's names (_sK), printed for ``math``
            kids = [math_kid[a] for a in args_of[i]]
            try:
                math_text = _print_node(math_printer, math_templates, node, kids)
            except UnsupportedFunctionError:
                scalar_lines = None
        if k == _INLINED:
            if text is not None:
                kid[i] = _Inlined(text)
            math_kid[i] = _Inlined(math_text)
            continue
        # a statement: a name read here for the last time can take the result
        free += [name[d] for d in dies.get(i, ())]
        if free:
            target = free.pop()
        else:
            target, n_names = f"_t{n_names}", n_names + 1
        name[i] = kid[i] = math_kid[i] = target
        if text is not None:
            vector_lines.append(f"    {target} = {text}")
        if scalar_lines is not None:
            scalar_lines.append(f"            {target} = {math_text}")

    def ref(i: int, pr: Any) -> str:
        k = (math_kid if pr is math_printer else kid)[i]
        if pr is printer:
            return fuser.text(k)
        return k if isinstance(k, str) else _doprint(pr, k)

    def build(spec: Any, top: bool, leaf: Any, rows: bool = False) -> str:
        if isinstance(spec, int):
            return leaf(spec)
        if (
            rows
            and not top
            and len(spec) > 1
            and all(isinstance(s, int) for s in spec)
            and list(spec) == list(range(spec[0], spec[0] + len(spec)))
        ):
            return f"_o[{spec[0]}:{spec[0] + len(spec)}]"  # consecutive kernel rows: a view
        if top:
            inner = ", ".join(build(s, False, leaf, rows) for s in spec)
            return f"({inner}{',' if len(spec) == 1 else ''})"
        shape, flat = _rectangular(spec)
        if leaf is vector_leaf:
            return fuser.stacked(shape, [kid[outs[i]] for i in flat])
        return f"_stack({shape}, [{', '.join(leaf(i) for i in flat)}])"

    def averaged(spec: Any, leaf: Any) -> str:
        # each top-level output averaged over its batch axes (the axes after its own)
        def one(s: Any) -> str:
            if isinstance(s, int):
                return f"_batch_mean({leaf(s)}, 0)"
            shape, flat = _rectangular(s)
            return fuser.stacked(shape, [kid[outs[i]] for i in flat], mean=True)

        if isinstance(spec, int) or not top:
            return one(spec)
        return f"({', '.join(one(s) for s in spec)}{',' if len(spec) == 1 else ''})"

    def vector_leaf(i: int) -> str:
        return ref(outs[i], printer)

    if scalar_lines is not None:
        try:
            ret = build(out_spec, top, lambda i: ref(outs[i], math_printer))
        except UnsupportedFunctionError:
            scalar_lines = None
    if scalar_lines is not None:
        # float inputs: plain Python floats and ``math``; anything NumPy would answer with a
        # warning (0**-1, log(0), overflow) raises here and takes the NumPy path instead
        lines.append(f"    if {' and '.join(fast_test)}:")
        lines.append("        try:")
        lines += [f"            {u}" for u in unpack] if native else []
        lines += [_scalar_names(ln) for ln in scalar_lines]
        lines.append("            return " + _scalar_names(ret))
        lines.append("        except (ArithmeticError, ValueError, TypeError):")
        lines.append("            pass")
    if native:
        lines.append(f"    _o = _kernel({', '.join(params)})")
        lines.append(f"    return {build(out_spec, top, lambda i: f'_o[{i}]', True)}")
    else:
        ret = averaged(out_spec, vector_leaf) if mean else build(out_spec, top, vector_leaf)
        body = [*vector_lines, *[f"    {ln}" for ln in fuser.lines], f"    return {ret}"]
        if scalar_lines is not None:
            lines[unpack_at:unpack_at] = [f"    {u}" for u in unpack]
        else:  # unpack only the entries the NumPy statements name (fused ones are sliced)
            used = set(_ELEMENT.findall("\n".join(body)))
            picks, constants = _unpack_used(vectors, used)
            lines[unpack_at:unpack_at] = picks
            fuser.constants += constants
        lines += body
        lines += fuser.constants
    return "\n".join(lines) + "\n"


def _unpack_used(
    vectors: list[tuple[int, list[str]]], used: set[str]
) -> tuple[list[str], list[str]]:
    """Statements unpacking the ``used`` entries of vector arguments, and module constants."""
    lines: list[str] = []
    constants: list[str] = []
    for i, names in vectors:
        keep = [(j, nm) for j, nm in enumerate(names) if nm in used]
        if len(keep) == len(names):
            lines.append(f"    {', '.join(names)}{',' if len(names) == 1 else ''} = _a{i}")
        elif len(keep) == 1:
            lines.append(f"    {keep[0][1]} = _a{i}[{keep[0][0]}]")
        elif keep:
            pick = f"_p{len(constants)}"
            constants.append(f'{pick} = _picker("{",".join(str(j) for j, _ in keep)}")')
            lines.append(f"    {', '.join(nm for _, nm in keep)} = {pick}(_a{i})")
    return lines, constants


def _is_negation(node: sp.Basic) -> bool:
    a = node.args
    return node.is_Mul and len(a) == 2 and a[0] is sp.S.NegativeOne


def _plan(
    order: list[sp.Basic], args_of: list[list[int]], name: list[str | None], outs: list[int]
) -> tuple[list[int], dict[int, list[int]]]:
    """How each node is printed, and after which statement each statement's value is dead.

    Nodes are positions in ``order``; ``name`` holds the argument names (None elsewhere).
    Literals are printed in place; shadows (tuples, condition pairs, negations) inside every
    user; a node read exactly once (and small) is inlined into its reader; everything else is
    a statement. A statement's name is reused once its value has been read for the last time,
    so a large batch keeps only the live temporaries in memory, not one array per node.

    Returns:
        ``(kind, dies)``: the kind of each node, and for each statement the statements whose
        values it reads for the last time.
    """
    n = len(order)
    uses = [0] * n
    pinned = [False] * n  # arguments of shadows: a shadow is printed at every use
    shadowy = [node.is_Mul and _is_negation(node) for node in order]
    inline = tuple(t for t in {type(node) for node in order} if issubclass(t, _INLINE))
    if inline:
        shadowy = [s or isinstance(node, inline) for s, node in zip(shadowy, order, strict=True)]
    for i, positions in enumerate(args_of):
        for a in positions:
            uses[a] += 1
        if shadowy[i]:
            for a in positions:
                pinned[a] = True
    for o in outs:
        uses[o] += 1
    kind = [_ARGUMENT] * n
    depth = [0] * n  # inlined node -> inlined nodes nested in it, itself included
    reads: dict[int, list[int]] = {}  # inlined / shadow node -> the statements it reads
    last: dict[int, int] = {}  # statement -> its last reader (-1: the return)
    for i in range(n):
        if name[i] is not None:
            continue
        if not args_of[i]:
            kind[i] = _LITERAL
            continue
        r: list[int] = []
        d = 1
        for a in args_of[i]:
            k = kind[a]
            if k == _STATEMENT:
                r.append(a)
            elif k in (_INLINED, _SHADOW):
                r += reads[a]
                if depth[a] >= d:
                    d = depth[a] + 1
        if shadowy[i]:
            kind[i], reads[i] = _SHADOW, r
        elif (
            uses[i] == 1 and not pinned[i] and d <= INLINE_DEPTH and len(args_of[i]) <= INLINE_ARGS
        ):
            kind[i], reads[i], depth[i] = _INLINED, r, d
        else:
            kind[i] = _STATEMENT
            for m in r:
                last[m] = i
    for o in outs:
        for m in [o] if kind[o] == _STATEMENT else reads.get(o, ()):
            last[m] = -1
    dies: dict[int, list[int]] = {}
    for m, i in last.items():
        if i >= 0:
            dies.setdefault(i, []).append(m)
    return kind, dies


def _rectangular(spec: list) -> tuple[tuple[int, ...], list[int]]:
    """The shape and flat leaf indices of a nested output list (which must be rectangular)."""
    shape: list[int] = []
    level: list = [spec]
    while isinstance(level[0], list):
        sizes = {len(item) if isinstance(item, list) else -1 for item in level}
        if len(sizes) != 1 or -1 in sizes:
            raise InputTypeError(
                "nested outputs must be rectangular (every inner list of the same length, "
                "expressions only at the deepest level); return ragged results as separate outputs"
            )
        shape.append(sizes.pop())
        level = [child for item in level for child in item]
    return tuple(shape), level


def _scalar_names(line: str) -> str:
    # the fast path's own temporaries (_sK), and the real ``math`` module (not _VectorMath)
    return _MATH.sub("_pymath.", _TEMP.sub(r"_s\1", line))


def _as_symbol(kid: Any) -> sp.Basic:
    return sp.Symbol(kid) if isinstance(kid, str) else kid


@paused_gc()
def value_and_grad(
    expr: Any, wrt: Any, args: Any = None, *, backend: str = "numpy", reduce: str | None = None
):
    """One compiled function returning ``(value, gradient)``, sharing their common work.

    The gradient is derived by one reverse sweep (in its raw, fully shared form) and compiled
    together with the value, so each shared subexpression is computed once.

    Args:
        expr: a scalar expression.
        wrt: a symbol, or a sequence of symbols.
        args: the compiled function's arguments (see :func:`lambdify`). Default: ``wrt``
            itself, as one scalar argument or as one vector argument.
        backend: see :func:`lambdify`.
        reduce: see :func:`lambdify`; ``"mean"`` gives the batch-mean value and gradient.

    Returns:
        A :class:`CompiledFunction` returning ``(value, gradient)``; the gradient is a scalar
        for a single symbol, else an array of shape ``(len(wrt), *batch)``.

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> f = value_and_grad(x**2 * y, [x, y])
    >>> value, g = f([3.0, 2.0])
    >>> value, g.tolist()
    (18.0, [12.0, 9.0])
    """
    e = as_expr(expr)
    syms, single = as_symbols(wrt, e)
    (raw,), dag = _sweep([e], syms)
    gradient = [raw.get(s, sp.S.Zero) for s in syms]
    if args is None:
        args = [syms[0] if single else syms]
        extra = [s for s in free_symbols([e]) if s not in set(syms)]
        if extra:
            raise MissingSymbolError(
                f"the expression also depends on {', '.join(map(str, extra[:10]))}; pass "
                "args=[...] listing every symbol the compiled function should take"
            )
    outputs = [e, gradient[0] if single else gradient]
    return _lambdify(outputs, args, backend, reduce, "symgrad_fn", dag)
