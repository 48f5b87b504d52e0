r"""What ``symgrad diff|derive|compile --matrix`` print: matrix formulas from text to text.

The command line reads the formula with :func:`symgrad.matrix.parse.parse` and shapes given as
``--shape A=n,n --shape x=n``; these functions turn that into the printed answer.

>>> print(diff("x'*A*x", ["A=n,n", "x=n"], "x"))
(A + A')*x
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from typing import Any

import sympy as sp
from sympy.matrices.expressions import MatrixSymbol

from ..errors import OptionError
from . import codegen
from .codegen import compile_matrix
from .derive import derive as _derive
from .latex import latex
from .parse import parse
from .text import text
from .vjp import grad

__all__ = ["compile_source", "derive", "diff", "parse_shapes"]


def parse_shapes(items: Sequence[str] | None) -> dict[str, tuple[str, ...]]:
    """``["A=n,n", "x=n", "c="]`` as ``{"A": ("n", "n"), "x": ("n",), "c": ()}``.

    Raises:
        OptionError: an item is not ``NAME=DIM[,DIM]``.

    >>> parse_shapes(["A=n,n", "x=3"])
    {'A': ('n', 'n'), 'x': ('3',)}
    """
    out: dict[str, tuple[str, ...]] = {}
    for item in items or []:
        name, sep, dims = item.partition("=")
        parts = tuple(d.strip() for d in dims.split(",")) if dims.strip() else ()
        if not sep or not name.strip() or len(parts) > 2 or any(not d for d in parts):
            raise OptionError(
                f"--shape {item!r}: write NAME=ROWS,COLS for a matrix, NAME=ROWS for a column "
                f"vector or NAME= for a scalar (e.g. --shape A=n,n --shape x=n)"
            )
        out[name.strip()] = parts
    return out


def _setup(expr: str, shapes: Sequence[str] | None, wrt: str | None) -> tuple[Any, list]:
    table = parse_shapes(shapes)
    f = parse(expr, table)
    found = {s.name: s for s in _symbols(f)}
    if wrt:
        names = [n.strip() for n in wrt.split(",") if n.strip()]
    else:
        names = sorted(n for n in found if isinstance(found[n], MatrixSymbol))
    missing = [n for n in names if n not in found]
    if missing or not names:
        raise OptionError(
            f"--wrt: {', '.join(missing) or 'nothing'} is not a matrix or vector of the formula; "
            f"declare it with --shape (e.g. --shape x=n)"
        )
    scalars = [n for n in names if not isinstance(found[n], MatrixSymbol)]
    if scalars:
        raise OptionError(
            f"--wrt {', '.join(scalars)}: only matrices and vectors (declared with --shape)"
        )
    return f, [found[n] for n in names]


def _symbols(f: Any) -> list:
    from .expr import value_nodes

    return [n for n in value_nodes([f]) if isinstance(n, (MatrixSymbol, sp.Symbol))]


def _partial(w: MatrixSymbol) -> str:
    return rf"\frac{{\partial f}}{{\partial {latex(w)}}}"


def diff(expr: str, shapes: Sequence[str] | None, wrt: str | None, fmt: str = "text") -> str:
    """The gradient of a matrix formula as ``text``, ``latex``, ``markdown`` or ``json``.

    >>> print(diff("norm2(X*w - y)^2", ["X=m,n", "w=n", "y=m"], "w", "latex"))
    2 X^{T} \\left(X w - y\\right)
    """
    f, params = _setup(expr, shapes, wrt)
    grads = grad(f, params)
    if fmt == "json":
        return json.dumps(
            {
                "expression": text(f),
                "wrt": [w.name for w in params],
                "gradient": {w.name: text(g) for w, g in zip(params, grads, strict=True)},
                "latex": {w.name: latex(g) for w, g in zip(params, grads, strict=True)},
            },
            sort_keys=True,
            indent=2,
        )
    if fmt == "markdown":
        lines = [f"**Gradient of** $f = {latex(f)}$\n"]
        lines += [f"$$ {_partial(w)} = {latex(g)} $$\n" for w, g in zip(params, grads, strict=True)]
        return "\n".join(lines).rstrip()
    show = text if fmt == "text" else latex
    if len(params) == 1:
        return show(grads[0])
    if fmt == "text":
        return "\n".join(f"df/d{w.name} = {text(g)}" for w, g in zip(params, grads, strict=True))
    return "\n".join(f"{_partial(w)} = {latex(g)}" for w, g in zip(params, grads, strict=True))


def derive(expr: str, shapes: Sequence[str] | None, wrt: str | None, fmt: str = "text") -> str:
    """The matrix chain rule step by step (``text``, ``latex``, ``markdown`` or ``json``).

    >>> print(derive("sum(exp(X*w))", ["X=m,n", "w=n"], "w").splitlines()[-1])
      df/dw = X'*exp(X*w)
    """
    f, params = _setup(expr, shapes, wrt)
    d = _derive(f, params)
    if fmt == "json":

        def rows(eqs: Sequence) -> list[dict[str, str]]:
            return [{"name": text(e.lhs), "value": text(e.rhs), "latex": latex(e.rhs)} for e in eqs]

        data = {
            "expression": text(f),
            "wrt": [w.name for w in params],
            "forward": rows(d.forward),
            "backward": rows(d.backward),
            "gradient": {w.name: text(e.rhs) for w, e in zip(params, d.gradients, strict=True)},
        }
        return json.dumps(data, sort_keys=True, indent=2)
    if fmt == "text":
        return d.text()
    if fmt == "latex":
        return d.latex()
    return f"**Backward pass of** $f = {latex(f)}$\n\n$$\n{d.latex()}\n$$"


# Helpers the generated code calls, written out so the printed module runs on NumPy alone.
_HELPERS = (
    "_softmax",
    "_logsumexp",
    "_slogdet",
    "_shape_error",
    "_gram",
    "_add_transposed",
    "_kron_identity",
    "_scratch",
    "_arity",
)
_ALWAYS = ("_shape_error", "_arity")


def compile_source(expr: str, shapes: Sequence[str] | None, wrt: str | None) -> str:
    """A standalone NumPy module computing ``f`` and its gradients (no symgrad needed to run it).

    >>> src = compile_source("sum(exp(X*w))", ["X=m,n", "w=n"], "w")
    >>> src.splitlines()[0]
    '# value and gradient of f = sum(exp(X*w)) with respect to w'
    """
    f, params = _setup(expr, shapes, wrt)
    others = sorted(
        (s for s in _symbols(f) if s not in set(params)), key=lambda s: getattr(s, "name", "")
    )
    fn = compile_matrix(
        [f, list(grad(f, params))], [*params, *others], name="value_and_grad", fuse=False
    )
    if "_vmath" in fn.source:
        raise OptionError(
            "the standalone matrix module supports NumPy's functions only (not erf, gamma, ...)"
        )
    names = ", ".join(w.name for w in params)
    header = [
        f"# value and gradient of f = {text(f)} with respect to {names}",
        f"# call: value_and_grad({', '.join(str(a) for a in fn.args)}) -> (f, [{names}])",
        "# arrays are 2-D: a column vector of length n has shape (n, 1)",
        "from __future__ import annotations",
        "",
        "import numpy",
        "import numpy as np",
        "",
        "_ndarray, _asarray, _f64 = numpy.ndarray, numpy.asarray, numpy.float64",
        "",
        "",
        "class ShapeError(ValueError):",
        '    """An argument has the wrong shape."""',
        "",
        "",
        "class ArgumentError(TypeError):",
        '    """The function was called with the wrong number of arguments."""',
        "",
        "",
        "_MISSING = object()  # the default of every parameter: too few arguments are an error",
        "",
    ]
    if "_gram(" in fn.source:
        header += ["", f"GRAM_SYRK_FROM = {codegen.GRAM_SYRK_FROM}", ""]
    for name in (h for h in _HELPERS if h in _ALWAYS or f"{h}(" in fn.source):
        source = inspect.getsource(getattr(codegen, name))
        header += ["", source.rstrip(), ""]
    if "_scratch(" in fn.source:  # the scratch arrays' home (one set per thread)
        header += ["", "import threading", "", "_local = threading.local()", ""]
    return "\n".join(header) + "\n\n" + fn.source
