"""The Python-float target: a :class:`~symgrad.codegen.plan.Program` as ``math`` on floats.

Python floats through ``math`` are ~10x cheaper than NumPy ufuncs on scalars, so the NumPy
target embeds this body as a fast path for calls whose arguments are all Python floats. Where
``math`` would answer differently from NumPy it raises instead (``ZeroDivisionError``,
``ValueError: math domain error``, ``OverflowError``), and the caller falls back to the NumPy
statements on NumPy scalars, which give NumPy's IEEE answer and warning. The same body,
wrapped on its own, is the ``math``-only module :meth:`CompiledFunction.export` writes for
``target="python"``.

>>> import sympy as sp
>>> from symgrad.codegen.plan import plan
>>> x, y = sp.symbols("x y")
>>> body = emit_body(plan([sp.exp(x) * y, sp.exp(x), [y, x]], [x, y]))
>>> body.lines, body.ret
(['_s0 = math.exp(_a0)'], '(_a1*_s0, _s0, _array([_a1, _a0], float))')
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import UnsupportedFunctionError
from .plan import Program, rectangular, walk
from .printers import MathTargetPrinter, _doprint, _print_node, shared_templates

__all__ = ["EAGER_LIMIT", "SCALAR_PATH_LIMIT", "FloatBody", "emit_body"]

#: Programs up to this many operations get the Python-float path (it pays on small ones).
SCALAR_PATH_LIMIT = 3000
#: Above this many operations the NumPy target builds the float path on the first call on
#: Python floats, not at setup (printing and compiling it was ~40% of a small network's setup).
EAGER_LIMIT = 200


class FloatBody(NamedTuple):
    """The float path of a program: its statements and its return expression.

    >>> FloatBody(["_s0 = math.exp(_a0)"], "_s0").ret
    '_s0'
    """

    lines: list[str]
    ret: str


def arg_names(prog: Program) -> list:
    """The Python targets' name of each node that is an argument (None elsewhere)."""
    names: list = [None] * len(prog.order)
    for i, src in enumerate(prog.source):
        if src is not None:
            names[i] = f"_a{src[0]}" if src[1] < 0 else f"_a{src[0]}_{src[1]}"
    return names


def emit_body(prog: Program, limit: int | None = None, stacked: str = "array") -> FloatBody | None:
    """The program over Python floats, or None when ``math`` cannot print it (or it is large).

    Vector arguments are read as the names ``_a{i}_{j}`` the caller unpacks. Stacked outputs
    are NumPy arrays (``stacked="array"``), or nested lists or tuples of floats (``"list"``,
    ``"tuple"``: no NumPy array per call, or a module without NumPy).

    >>> import sympy as sp
    >>> from symgrad.codegen.plan import plan
    >>> x = sp.Symbol("x")
    >>> emit_body(plan(1 / x, [x]))
    FloatBody(lines=[], ret='_a0**-1')
    """
    if prog.n_operations > (SCALAR_PATH_LIMIT if limit is None else limit):
        return None
    printer = MathTargetPrinter()
    templates = shared_templates(printer)

    def text_of(i, node, kids):
        return _print_node(printer, templates, node, kids), ()

    try:
        slots = [f"_s{k}" for k in range(prog.n_slots)]
        body, kid = walk(prog, arg_names(prog), slots, text_of)
        lines = [f"{target} = {text}" for target, text in body]

        def leaf(j: int) -> str:
            k = kid[prog.outs[j]]
            return k if isinstance(k, str) else _doprint(printer, k)

        ret = _build(prog.spec, prog.top, leaf, stacked)
    except UnsupportedFunctionError:
        return None
    return FloatBody(lines, ret)


def _build(spec, top: bool, leaf, stacked: str = "array") -> str:
    if isinstance(spec, int):
        return leaf(spec)
    if top:
        inner = ", ".join(_build(s, False, leaf, stacked) for s in spec)
        return f"({inner}{',' if len(spec) == 1 else ''})"
    shape, flat = rectangular(spec)
    if stacked != "array":
        inner = ", ".join(_build(s, False, leaf, stacked) for s in spec)
        if stacked == "list":
            return f"[{inner}]"
        return f"({inner}{',' if len(spec) == 1 else ''})"
    items = f"_array([{', '.join(leaf(i) for i in flat)}], float)"
    return items if len(shape) == 1 else f"{items}.reshape({shape})"


def emit_module_function(prog: Program, name: str) -> str:
    """A function ``name`` over Python floats (and lists of them) that needs only ``math``.

    Raises:
        UnsupportedFunctionError: ``math`` cannot compute an output.

    >>> import sympy as sp
    >>> from symgrad.codegen.plan import plan
    >>> x, y = sp.symbols("x y")
    >>> print(emit_module_function(plan([x * y, [y, x]], [[x, y]]), "f"))
    def f(_a0):
        _a0_0, _a0_1 = _a0
        return (_a0_0*_a0_1, [_a0_1, _a0_0])
    <BLANKLINE>
    """
    body = emit_body(prog, limit=10**9, stacked="list")
    if body is None:
        raise UnsupportedFunctionError(
            "math",
            "the Python-float target cannot print these outputs with math alone; "
            "export with target='numpy'",
        )
    params = [f"_a{i}" for i in range(len(prog.args))]
    lines = [f"def {name}({', '.join(params)}):"]
    for i, item in enumerate(prog.args):
        if isinstance(item, list) and item:
            names = [f"_a{i}_{j}" for j in range(len(item))]
            lines.append(f"    {', '.join(names)}{',' if len(names) == 1 else ''} = _a{i}")
    lines += [f"    {ln}" for ln in body.lines]
    lines.append(f"    return {body.ret}")
    return "\n".join(lines) + "\n"
