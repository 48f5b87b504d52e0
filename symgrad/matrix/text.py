r"""Plain-text matrix formulas in the notation :func:`symgrad.matrix.parse` reads.

``A'`` for transposes, ``*`` for products, ``.*`` and ``./`` for entrywise products and
quotients, ``tr``, ``det``, ``logdet``, ``inv``, ``sum``, ``diag``, ``vector(1)`` for a column of
ones. Most results print back into text that parses to the same expression.

>>> import sympy as sp
>>> from symgrad.matrix import expr as mx
>>> A, x = sp.MatrixSymbol("A", 3, 3), sp.MatrixSymbol("x", 3, 1)
>>> text(mx.matmul(mx.add(A, A.T), x))
"(A + A')*x"
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.matrices.expressions import (
    HadamardProduct,
    Inverse,
    MatAdd,
    MatMul,
    MatrixExpr,
    Transpose,
)
from sympy.printing.str import StrPrinter

from .expr import Broadcast, LogDet, LogSumExp, Map, Softmax, SumAll, SumAxis, _split, _squared
from .latex import reciprocal, term_order

__all__ = ["text"]

_ATOMIC = (sp.Symbol, sp.MatrixSymbol, sp.Number)


class _TextPrinter(StrPrinter):
    def __init__(self) -> None:
        super().__init__({"order": "none"})
        self._vars: dict[sp.Basic, str] = {}
        self._raw: dict[sp.Basic, str] = {}
        self._ones = "matrix"

    def wrap(self, e: sp.Basic) -> str:
        out = self._print(e)
        if isinstance(e, (MatAdd, HadamardProduct, sp.Add)) or (
            isinstance(e, (MatMul, sp.Mul)) and not isinstance(e, _ATOMIC)
        ):
            return f"({out})"
        return out

    def _print_Symbol(self, expr):
        return self._vars.get(expr, expr.name)

    def _print_MatrixSymbol(self, expr):
        return str(expr.name)

    def _print_Transpose(self, expr):
        if isinstance(expr.arg, (sp.MatrixSymbol, Inverse, Transpose)):
            return f"{self._print(expr.arg)}'"
        return f"({self._print(expr.arg)})'"

    def _print_Inverse(self, expr):
        return f"inv({self._print(expr.arg)})"

    def _print_MatMul(self, expr):
        c, base = _split(expr)
        mats = base.args if isinstance(base, MatMul) else (base,)
        body = "*".join(self.wrap(m) if len(mats) > 1 else self._print(m) for m in mats)
        if len(mats) == 1 and isinstance(base, (MatAdd, HadamardProduct)):
            body = f"({body})"
        if c == 1:
            return body
        if c == -1:
            return f"-{body}"
        return f"{self.wrap(c)}*{body}"

    def _print_MatAdd(self, expr):
        out = ""
        for i, t in enumerate(sorted(expr.args, key=term_order)):
            c, base = _split(t)
            if c.could_extract_minus_sign():
                body = self._print(base if c == -1 else sp.MatMul(-c, base))
                out += f" - {body}" if i else f"-{body}"
            else:
                out += f" + {self._print(t)}" if i else self._print(t)
        return out

    def _print_HadamardProduct(self, expr):
        num = [a for a in expr.args if reciprocal(a) is None]
        den = [reciprocal(a) for a in expr.args if reciprocal(a) is not None]
        out = " .* ".join(self.wrap(a) for a in num) if num else "1"
        return out + "".join(f" ./ {self.wrap(d)}" for d in den)

    def _print_HadamardPower(self, expr):
        return f"{self.wrap(expr.args[0])}.^{self.wrap(expr.args[1])}"

    def _print_Map(self, expr: Map):
        saved = self._vars, self._raw
        pairs = list(zip(expr.lam.variables, expr.mats, strict=True))
        self._vars = {v: self.wrap(a) for v, a in pairs}
        self._raw = {v: self._print(a) for v, a in pairs}
        self._ones = "vector" if expr.shape[1] == 1 else "matrix"
        try:
            return self._print(expr.lam.expr)
        finally:
            self._vars, self._raw = saved

    def _print_Function(self, expr):
        if self._vars and len(expr.args) == 1 and expr.args[0] in self._raw:
            return f"{self._print_name(expr)}({self._raw[expr.args[0]]})"
        return super()._print_Function(expr)

    def _print_name(self, expr) -> str:
        name = expr.func.__name__
        return {"Softplus": "softplus", "Abs": "abs"}.get(name, name)

    def _print_Mul(self, expr):
        if not self._vars:
            return super()._print_Mul(expr)
        coeff, factors = expr.as_coeff_mul()
        num = [f for f in factors if not (f.is_Pow and f.exp.is_negative)]
        den = [f.base ** (-f.exp) for f in factors if f.is_Pow and f.exp.is_negative]
        out = " .* ".join(self.wrap(f) for f in num) if num else "1"
        out += "".join(f" ./ {self.wrap(d)}" for d in den)
        if coeff == -1:
            return f"-{out}"
        return out if coeff == 1 else f"{self.wrap(coeff)}*{out}"

    def _print_Pow(self, expr):
        if not self._vars:
            return super()._print_Pow(expr)
        if expr.exp.is_negative:
            return self._print_Mul(sp.Mul(expr, evaluate=False))
        return f"{self.wrap(expr.base)}.^{self.wrap(expr.exp)}"

    def _print_Add(self, expr):
        if not self._vars:
            return super()._print_Add(expr)
        # a constant in an entrywise sum is a constant vector/matrix: exp(x) + vector(1)
        parts = []
        for t in expr.args:
            if t.free_symbols & set(self._vars):
                parts.append(self._print(t))
            else:
                parts.append(f"{self._ones}({self._print(t)})")
        return " + ".join(parts).replace("+ -", "- ")

    def _print_Max(self, expr):
        return f"max({', '.join(self._raw.get(a) or self._print(a) for a in expr.args)})"

    def _print_Heaviside(self, expr):
        if len(expr.args) == 1 or expr.args[1] == 0:  # step(0) = 0, like relu'(0)
            return f"step({self._raw.get(expr.args[0]) or self._print(expr.args[0])})"
        return super()._print_Function(expr)

    def _print_SumAll(self, expr: SumAll):
        arg = expr.arg
        if (base := _squared(arg)) is not None:
            return f"norm2({self._print(base)})^2"
        return f"sum({self._print(arg)})"

    def _print_SumAxis(self, expr: SumAxis):
        inner = self.wrap(expr.args[0])
        return f"{inner}*vector(1)" if expr.axis == 1 else f"vector(1)'*{inner}"

    def _print_Broadcast(self, expr: Broadcast):
        inner = expr.arg
        if isinstance(inner, MatrixExpr) and inner.shape[1] == 1:
            return f"{self.wrap(inner)}*vector(1)'"
        if isinstance(inner, MatrixExpr):
            return f"vector(1)*{self.wrap(inner)}"
        kind = "vector" if expr.shape[1] == 1 else "matrix"
        return f"{kind}({self._print(inner)})"

    def _print_OneMatrix(self, expr):
        return "vector(1)" if expr.shape[1] == 1 else "matrix(1)"

    def _print_Identity(self, expr):
        return "I"

    def _print_ZeroMatrix(self, expr):
        return "matrix(0)"

    def _print_Trace(self, expr):
        return f"tr({self._print(expr.arg)})"

    def _print_Determinant(self, expr):
        return f"det({self._print(expr.arg)})"

    def _print_LogDet(self, expr: LogDet):
        return f"logdet({self._print(expr.arg)})"

    def _print_DiagMatrix(self, expr):
        return f"diag({self._print(expr.args[0])})"

    def _print_KroneckerProduct(self, expr):
        return f"kron({', '.join(self._print(a) for a in expr.args)})"

    def _print_Commutation(self, expr):
        return f"K({expr.args[0]}, {expr.args[1]})"

    def _print_Softmax(self, expr: Softmax):
        return f"softmax({self._print(expr.args[0])})"

    def _print_LogSumExp(self, expr: LogSumExp):
        return f"logsumexp({self._print(expr.args[0])})"

    def _print_BlockMatrix(self, expr):
        rows = expr.blocks.tolist()
        return "[" + "; ".join(", ".join(self._print(b) for b in row) for row in rows) + "]"


def text(expr: Any) -> str:
    """Plain text of a matrix (or scalar) expression in matrixcalculus.org notation.

    >>> from symgrad.matrix import expr as mx
    >>> X, w, y = sp.MatrixSymbol("X", 5, 3), sp.MatrixSymbol("w", 3, 1), sp.MatrixSymbol("y", 5, 1)
    >>> text(mx.scale(2, mx.matmul(X.T, mx.sub(mx.matmul(X, w), y))))
    "2*X'*(X*w - y)"
    """
    return _TextPrinter().doprint(expr)
