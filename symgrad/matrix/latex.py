r"""LaTeX for matrix expressions: SymPy's ``LatexPrinter`` with ``\odot``, ``\mathbf{1}`` and names.

>>> import sympy as sp
>>> from symgrad.matrix import expr as mx
>>> H = sp.MatrixSymbol("h", 3, 1)
>>> latex(mx.hadamard(mx.sub(sp.OneMatrix(3, 1), mx.hadamard(H, H)), H))
'\\left(\\mathbf{1} - h \\odot h\\right) \\odot h'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sympy as sp
from sympy.matrices.expressions import (
    HadamardProduct,
    Inverse,
    MatAdd,
    MatMul,
    MatrixSymbol,
    Transpose,
)
from sympy.printing.latex import LatexPrinter

from ..derivation.printers import tex_name
from . import expr as mx
from .expr import Broadcast, LogDet, LogSumExp, Map, Softmax, SumAll, SumAxis, _split, _squared

__all__ = ["MatrixLatexPrinter", "latex", "reciprocal", "term_order"]


class MatrixLatexPrinter(LatexPrinter):
    r"""LaTeX printer for symgrad matrix nodes (``⊙`` for entrywise products, ``1`` for ones).

    >>> MatrixLatexPrinter().doprint(sp.MatrixSymbol("W", 2, 2).T)
    'W^{T}'
    """

    def __init__(self, settings: dict | None = None) -> None:
        super().__init__(settings)
        self._vars: dict[sp.Basic, str] = {}

    def _wrap(self, e: sp.Basic) -> str:
        text = self._print(e)
        if isinstance(e, (MatAdd, HadamardProduct)) or (
            isinstance(e, MatMul) and _split(e)[0] != 1
        ):
            return rf"\left({text}\right)"
        return text

    def _print_Symbol(self, expr, style="plain"):
        if expr in self._vars:
            return self._vars[expr]
        # a name that is not a plain identifier is text (escaped once, in tex_name)
        return tex_name(expr.name) or super()._print_Symbol(expr, style)

    def _print_DiagMatrix(self, expr):
        return rf"\operatorname{{diag}}\left({self._print(expr.args[0])}\right)"

    def _print_OneMatrix(self, expr):
        return r"\mathbf{1}"

    def _print_HadamardProduct(self, expr):
        # a product inside ⊙ is parenthesised: (1 - h ⊙ h) ⊙ (W^T δ); 1 ./ B factors print as ⊘ B
        num = [a for a in expr.args if reciprocal(a) is None]
        den = [reciprocal(a) for a in expr.args if reciprocal(a) is not None]
        text = r" \odot ".join(self._factor(a) for a in num) if num else r"\mathbf{1}"
        return "".join([text, *(rf" \oslash {self._factor(d)}" for d in den)])

    def _factor(self, a: sp.Basic) -> str:
        return rf"\left({self._print(a)}\right)" if isinstance(a, MatMul) else self._wrap(a)

    def _print_MatMul(self, expr):
        c, base = _split(expr)
        mats = base.args if isinstance(base, MatMul) else (base,)
        wrapped = (MatAdd, HadamardProduct) if len(mats) > 1 else (MatAdd,)
        body = " ".join(
            rf"\left({self._print(m)}\right)" if isinstance(m, wrapped) else self._print(m)
            for m in mats
        )
        if c == 1:
            return body
        if c.could_extract_minus_sign():
            return f"- {body}" if c == -1 else f"- {self._print(-c)} {body}"
        coeff = self._print(c)
        return f"{coeff} {body}" if not c.is_Add else rf"\left({coeff}\right) {body}"

    def _print_Transpose(self, expr):
        if isinstance(expr.arg, Inverse):  # (A^{-1})^T = A^{-T}
            return rf"{self._wrap(expr.arg.arg)}^{{-T}}"
        return super()._print_Transpose(expr)

    def _print_Inverse(self, expr):
        arg = expr.arg
        if isinstance(arg, MatrixSymbol):
            return rf"{self._print(arg)}^{{-1}}"
        return rf"\left({self._print(arg)}\right)^{{-1}}"

    def _print_KroneckerProduct(self, expr):
        return r" \otimes ".join(
            rf"\left({self._print(a)}\right)" if isinstance(a, (MatMul, MatAdd)) else self._print(a)
            for a in expr.args
        )

    def _print_Identity(self, expr):
        return "I"

    def _print_HadamardPower(self, expr):
        return rf"{self._wrap(expr.args[0])}^{{\odot {self._print(expr.args[1])}}}"

    def _print_MatAdd(self, expr):
        terms = sorted(expr.args, key=term_order)
        out = ""
        for i, t in enumerate(terms):
            c, base = _split(t)
            if c.could_extract_minus_sign():
                body = self._print(base if c == -1 else sp.MatMul(-c, base))
                out += f" - {body}" if i else f"-{body}"
            else:
                out += f" + {self._print(t)}" if i else self._print(t)
        return out

    def _print_Map(self, expr: Map):
        saved = self._vars
        self._vars = {v: self._wrap(a) for v, a in zip(expr.lam.variables, expr.mats, strict=True)}
        try:
            return self._print(expr.lam.expr)
        finally:
            self._vars = saved

    def _print_Mul(self, expr):
        # inside an entrywise function, a product of matrix entries is a Hadamard product
        if self._vars and sum(1 for a in expr.args if a.free_symbols & set(self._vars)) > 1:
            coeff, factors = expr.as_coeff_mul()
            body = r" \odot ".join(
                rf"\left({self._print(f)}\right)" if f.is_Add else self._print(f) for f in factors
            )
            if coeff == -1:
                return f"- {body}"
            return body if coeff == 1 else f"{self._print(coeff)} {body}"
        return super()._print_Mul(expr)

    def _print_Pow(self, expr):
        if self._vars and expr.base in self._vars and expr.exp.is_Integer and expr.exp > 0:
            return rf"{self._vars[expr.base]}^{{\odot {expr.exp}}}"
        return super()._print_Pow(expr)

    def _print_SumAll(self, expr: SumAll):
        arg = expr.arg
        if (base := _squared(arg)) is not None:
            return rf"\left\|{self._print(base)}\right\|^{{2}}"
        return rf"\operatorname{{sum}}\left({self._print(expr.arg)}\right)"

    def _print_SumAxis(self, expr: SumAxis):
        inner = self._wrap(expr.args[0])
        return rf"{inner} \mathbf{{1}}" if expr.axis == 1 else rf"\mathbf{{1}}^{{T}} {inner}"

    def _print_Broadcast(self, expr: Broadcast):
        inner = expr.arg
        if isinstance(inner, sp.MatrixExpr) and inner.shape[1] == 1:
            return rf"{self._wrap(inner)} \mathbf{{1}}^{{T}}"
        if isinstance(inner, sp.MatrixExpr):
            return rf"\mathbf{{1}} {self._wrap(inner)}"
        return r"\mathbf{1}" if inner == 1 else rf"{self._print(inner)} \mathbf{{1}}"

    def _print_Softmax(self, expr: Softmax):
        return rf"\operatorname{{softmax}}\left({self._print(expr.args[0])}\right)"

    def _print_LogSumExp(self, expr: LogSumExp):
        return rf"\operatorname{{logsumexp}}\left({self._print(expr.args[0])}\right)"

    def _print_LogDet(self, expr: LogDet):
        return rf"\log\det {self._wrap(expr.arg)}"


def term_order(t: sp.Basic) -> tuple[bool, bool]:
    """Sort key of sum terms: positive first ("1 - h ⊙ h"), transposes last ("A + A^T").

    >>> A = sp.MatrixSymbol("A", 2, 2)
    >>> term_order(A.T), term_order(-A)
    ((False, True), (True, False))
    """
    c, base = _split(t)
    return c.could_extract_minus_sign(), isinstance(base, Transpose)


def reciprocal(a: sp.Basic) -> sp.Basic | None:
    """``B`` when ``a`` is the entrywise reciprocal ``1 ./ B`` (printed as a quotient), else None.

    >>> B = sp.MatrixSymbol("B", 2, 2)
    >>> reciprocal(Map(sp.Lambda(sp.Symbol("u0"), 1 / sp.Symbol("u0")), B))
    B
    """
    """``B`` when ``a`` is the entrywise reciprocal ``1 ./ B``."""
    if isinstance(a, Map) and len(a.mats) == 1 and a.lam.expr == 1 / a.lam.variables[0]:
        return a.mats[0]
    return None


def latex(expr: Any, names: Mapping[sp.Basic, sp.Basic] | None = None) -> str:
    r"""LaTeX of a matrix (or scalar) expression, with named subexpressions shown by name.

    Args:
        expr: the expression.
        names: subexpression -> symbol to print instead (e.g. ``tanh(W x + b) -> h``).

    Returns:
        The LaTeX string.

    >>> import sympy as sp
    >>> from symgrad.matrix import expr as mx
    >>> W, x = sp.MatrixSymbol("W", 2, 3), sp.MatrixSymbol("x", 3, 1)
    >>> h = mx.tanh(mx.matmul(W, x))
    >>> latex(h)
    '\\tanh{\\left(W x \\right)}'
    >>> latex(mx.hadamard(h, h), {h: sp.MatrixSymbol("h", 2, 1)})
    'h \\odot h'
    """
    expr = mx._operand(expr, "latex")
    names = mx._names(names, "names")
    if names:
        expr = expr.xreplace(names)
    return MatrixLatexPrinter().doprint(expr)
