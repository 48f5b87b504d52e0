"""The NumPy target: a :class:`~symgrad.codegen.plan.Program` as one vectorised function.

Each statement of the program is one NumPy statement; single-use products meet in one
``_dot``/``_gather`` (``fuse.py``); only the vector entries the statements name are unpacked.
Calls whose arguments are all Python floats first try the Python-float body (``pyfloat.py``);
arguments are checked (``_coerce``) only on the NumPy path, so the fast path pays one exact type
test per argument. With ``kernel=True`` the body is a call of a native kernel ``_kernel`` (the C
target) instead of NumPy statements.

>>> import sympy as sp
>>> from symgrad.codegen.plan import plan
>>> x = sp.Symbol("x")
>>> print(emit(plan(sp.exp(x) + x, [x]), "f", float_path=False))
def f(_a0=_MISSING, *_extra):
    if _extra: _too_many(_names, _extra)
    # _a0: 'x'
    _a0 = _coerce(_a0, 0, _names)
    try:
        return _a0 + numpy.exp(_a0)
    except ValueError as _e:
        _shape_error(_e, _names, (_a0,))
        raise
_names = ['x']
<BLANKLINE>
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from .fuse import Fuser, constant_name
from .pack import pack, statement_printer
from .plan import Program, rectangular, walk
from .printers import NumPyTargetPrinter, shared_templates
from .pyfloat import EAGER_LIMIT, SCALAR_PATH_LIMIT, arg_names, emit_body

__all__ = ["calls_lazy_float_path", "emit", "float_path_source"]


def emit(
    prog: Program,
    name: str,
    *,
    mean: bool = False,
    kernel: bool = False,
    float_path: bool = True,
    float_outputs: str = "array",
    lazy: bool = False,
    trusted: bool = False,
) -> str:
    """The source of a function ``name`` computing ``prog`` with NumPy.

    Args:
        prog: the program.
        name: the function's name (a safe identifier, checked by the caller).
        mean: return each output's batch mean (``reduce="mean"``).
        kernel: the outputs come from ``_kernel(*args)`` (rows of one array), not NumPy code.
        float_path: embed the Python-float fast path when the program allows it.
        float_outputs: how the fast path returns stacked outputs: ``"array"`` (NumPy arrays,
            as every other call) or ``"tuple"`` (tuples of floats, as ``sympy.lambdify`` with
            ``modules="math"`` returns lists: no NumPy array is built per call).
        trusted: the caller passes NumPy arrays only (symgrad's own pieces, e.g. a lifted
            network's head): no argument coercion and no Python-float path are printed.
        lazy: for programs of more than :data:`~.pyfloat.EAGER_LIMIT` operations, the fast
            path calls ``_float_path(...)``, a function built on the first call on floats
            (:func:`float_path_source`), instead of holding the body: a network's setup does
            not print and compile a body only calls on Python floats use.

    >>> import sympy as sp
    >>> from symgrad.codegen.plan import plan
    >>> x = sp.Symbol("x")
    >>> emit(plan(sp.sin(x), [x]), "f").splitlines()[0]
    'def f(_a0=_MISSING, *_extra):'
    """
    params = [f"_a{i}" for i in range(len(prog.args))]
    lines = [f"def {name}({''.join(p + '=_MISSING, ' for p in params)}*_extra):"]
    lines.append("    if _extra: _too_many(_names, _extra)")
    read = prog.entries_read()
    if float_path and lazy and calls_lazy_float_path(prog):
        lines += _guarded(_float_tests(prog), [f"return _float_path({', '.join(params)})"])
    elif float_path and prog.args:
        fast = emit_body(prog, stacked=float_outputs)  # None above SCALAR_PATH_LIMIT
        if fast is not None:
            tests, unpack = _float_tests(prog), _float_unpack(prog, read)
            lines += _guarded(tests, [*unpack, *fast.lines, f"return {fast.ret}"])
    for i, item in enumerate([] if trusted else prog.args):
        if isinstance(item, list):
            shown = ", ".join(repr(s.name) for s in item[:8]) + (", ..." if len(item) > 8 else "")
            lines.append(f"    # _a{i}: vector of {len(item)} symbols [{shown}]")
            lines.append(f"    _a{i} = _coerce_vector(_a{i}, {i}, _names, {len(item)})")
        else:
            lines.append(f"    # _a{i}: {item.name!r}")
            lines.append(f"    _a{i} = _coerce(_a{i}, {i}, _names)")
    constants: list[str] = []
    if kernel:
        lines.append(f"    _o = _kernel({', '.join(params)})")
        lines.append(f"    return {_build(prog.spec, prog.top, lambda j: f'_o[{j}]', rows=True)}")
    else:
        body, used = _numpy_body(pack(prog), mean, constants)
        # NumPy's broadcast failure, anywhere in the body, is a ShapeError naming the shapes
        lines.append("    try:")
        lines += [f"    {ln}" for ln in [*_unpack(prog, constants, used), *body]]
        lines.append("    except ValueError as _e:")
        values = f"({', '.join(params)}{',' if len(params) == 1 else ''})"
        lines.append(f"        _shape_error(_e, _names, {values})")
        lines.append("        raise")
    names = [
        a.name if type(a) is sp.Symbol else str(a) if not isinstance(a, list) else
        f"a vector of {len(a)}" for a in prog.args
    ]  # fmt: skip
    constants.append(f"_names = {names!r}")
    return "\n".join([*lines, *constants]) + "\n"


def _float_tests(prog: Program) -> list[str]:
    # exact types: ints, bools and NumPy scalars take the NumPy path (IEEE answers, checks)
    tests = []
    for i, item in enumerate(prog.args):
        if not isinstance(item, list):
            tests.append(f"type(_a{i}) is float")
            continue
        # a 1-D float64 array (other dtypes take the NumPy path: float32 stays float32)
        tests.append(
            f"(type(_a{i}) is list or type(_a{i}) is _ndarray and _a{i}.ndim == 1 "
            f"and _a{i}.dtype is _f64)"
        )
    return tests


def _float_unpack(prog: Program, read: dict[int, list[int]]) -> list[str]:
    unpack = []
    for i, item in enumerate(prog.args):
        if not isinstance(item, list) or not item:
            continue
        entries = read[i]
        values = f"(_a{i} if type(_a{i}) is list else _a{i}.tolist())"
        if len(entries) == len(item) or len(entries) > len(item) // 2:
            # all entries (also checks the length: a wrong one is a ValueError, the NumPy path
            # then names the argument)
            wanted = set(entries)  # built once: a set per entry made this quadratic
            names = [f"_a{i}_{j}" if j in wanted else "_" for j in range(len(item))]
            unpack.append(f"{', '.join(names)}{',' if len(names) == 1 else ''} = {values}")
        else:
            unpack.append(f"_v = {values}")
            unpack.append(f"if len(_v) != {len(item)}: raise ValueError")
            unpack += [f"_a{i}_{j} = _v[{j}]" for j in entries]
    return unpack


def _guarded(tests: list[str], body: list[str]) -> list[str]:
    out = [f"    if {' and '.join(tests)}:", "        try:"]
    out += [f"            {ln}" for ln in body]
    out += ["        except (ArithmeticError, ValueError, TypeError):", "            pass"]
    return out


def calls_lazy_float_path(prog: Program) -> bool:
    """Whether :func:`emit` with ``lazy=True`` prints a call of ``_float_path`` for ``prog``.

    >>> import sympy as sp
    >>> from symgrad.codegen.plan import plan
    >>> x = sp.Symbol("x")
    >>> calls_lazy_float_path(plan(sp.sin(x), [x]))  # small: the body is printed inline
    False
    """
    return bool(prog.args) and EAGER_LIMIT < prog.n_operations <= SCALAR_PATH_LIMIT


def float_path_source(prog: Program, stacked: str = "array") -> str | None:
    """The lazily built fast path of :func:`emit` (``lazy=True``): ``_float_path(*args)``.

    None when ``math`` cannot print the program. The function raises ``ValueError`` (a vector
    of the wrong length) or what ``math`` raises; the caller then runs the NumPy statements.

    >>> import sympy as sp
    >>> from symgrad.codegen.plan import plan
    >>> x, y = sp.symbols("x y")
    >>> print(float_path_source(plan([x * y, [y, x]], [x, [y]]), "tuple"))
    def _float_path(_a0, _a1):
        _a1_0, = (_a1 if type(_a1) is list else _a1.tolist())
        return (_a0*_a1_0, (_a1_0, _a0))
    <BLANKLINE>
    """
    fast = emit_body(prog, stacked=stacked)
    if fast is None:
        return None
    params = ", ".join(f"_a{i}" for i in range(len(prog.args)))
    body = [*_float_unpack(prog, prog.entries_read()), *fast.lines, f"return {fast.ret}"]
    return f"def _float_path({params}):\n" + "".join(f"    {ln}\n" for ln in body)


def _numpy_body(prog: Program, mean: bool, constants: list[str]) -> tuple[list[str], set[str]]:
    # the NumPy statements and return, and the vector-entry names they read
    printer = NumPyTargetPrinter()
    elements = {
        f"_a{s[0]}_{s[1]}": (f"_a{s[0]}", s[1]) for s in prog.source if s is not None and s[1] >= 0
    }
    fuser = Fuser(printer, shared_templates(printer), elements)
    text_of, kid, skip = statement_printer(prog, fuser, mean, constants)

    slots = [f"_t{k}" for k in range(prog.n_slots)]
    body, kid = walk(prog, arg_names(prog), slots, text_of, kid, skip)
    out = [f"    {ln}" if t is None else f"    {t} = {ln}" for t, ln in body]

    def leaf(j: int) -> str:
        return fuser.text(kid[prog.outs[j]])

    def stacked(s: list, m: bool = False) -> str:
        shape, flat = rectangular(s)
        at = [prog.outs[j] for j in flat]
        return fuser.stacked(shape, [kid[a] for a in at], mean=m, positions=at)

    if mean:
        ret = _averaged(prog, leaf, stacked)
    else:
        ret = _build(prog.spec, prog.top, leaf, stacked=stacked)
    out += [f"    {ln}" for ln in fuser.lines]
    out.append(f"    return {ret}")
    constants += fuser.constants
    return out, fuser.used


def _unpack(prog: Program, constants: list[str], used: set[str]) -> list[str]:
    """Statements unpacking the entries of vector arguments that the NumPy statements name."""
    lines: list[str] = []
    for i, item in enumerate(prog.args):
        if not isinstance(item, list) or not item:
            continue
        names = [f"_a{i}_{j}" for j in range(len(item))]
        keep = [(j, nm) for j, nm in enumerate(names) if nm in used]
        if len(keep) == len(names):
            lines.append(f"    {', '.join(names)}{',' if len(names) == 1 else ''} = _a{i}")
        elif len(keep) == 1:
            lines.append(f"    {keep[0][1]} = _a{i}[{keep[0][0]}]")
        elif keep:
            pick = constant_name(constants, "_p")
            constants.append(f'{pick} = _picker("{",".join(str(j) for j, _ in keep)}")')
            lines.append(f"    {', '.join(nm for _, nm in keep)} = {pick}(_a{i})")
    return lines


def _averaged(prog: Program, leaf, stacked) -> str:
    # each top-level output averaged over its batch axes (the axes after its own)
    def one(s: Any) -> str:
        if isinstance(s, int):
            return f"_batch_mean({leaf(s)}, 0)"
        return stacked(s, True)

    spec = prog.spec
    if isinstance(spec, int) or not prog.top:
        return one(spec)
    return f"({', '.join(one(s) for s in spec)}{',' if len(spec) == 1 else ''})"


def _build(spec: Any, top: bool, leaf, rows: bool = False, stacked=None) -> str:
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
        inner = ", ".join(_build(s, False, leaf, rows, stacked) for s in spec)
        return f"({inner}{',' if len(spec) == 1 else ''})"
    if stacked is not None:
        return stacked(spec)
    shape, flat = rectangular(spec)
    return f"_stack({shape}, [{', '.join(leaf(i) for i in flat)}])"
