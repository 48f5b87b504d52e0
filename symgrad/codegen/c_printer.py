"""Printing one SymPy node as a C99 expression with NumPy's numbers (the C target's printer).

Every literal is a correctly rounded ``double`` (integers, rationals with parts of any size, named
constants such as ``EulerGamma``); ``nan`` and infinities are ``NAN`` and ``INFINITY``. Functions
whose C library version differs from NumPy's ufunc are ``sg_`` helpers defined in
:data:`PRELUDE`: ``Mod`` takes the sign of the divisor (``numpy.mod``, not ``fmod``), ``sign``
and ``Max``/``Min``/``Heaviside`` propagate NaN. Reciprocal functions are printed as one
division (``sech(x)`` is ``1.0/cosh(x)``: no overflow of ``exp`` to ``inf/inf``).

>>> import sympy as sp
>>> x, y = sp.symbols("x y")
>>> print(CPrinter().doprint(1 / (x + y) + sp.Mod(x, 2) + sp.EulerGamma))
sg_mod(x, 2.0) + 0.5772156649015329 + (1.0/(x + y))
"""

from __future__ import annotations

import math

import sympy as sp
from sympy.printing.c import C99CodePrinter
from sympy.printing.codeprinter import PrintMethodNotImplementedError
from sympy.printing.precedence import PRECEDENCE

from ..errors import UnsupportedFunctionError
from .printers import StableReciprocals, fold

__all__ = ["PRELUDE", "CPrinter", "c_double", "print_c"]

#: Helpers every generated translation unit starts with: NumPy's semantics where C's differ.
PRELUDE = """\
#include <math.h>
#include <stdint.h>
/* NumPy semantics: NaN propagates through max/min/sign; heaviside(0) = h0, heaviside(NaN) = NaN;
   mod takes the sign of the divisor (numpy.mod, ported from npy_remainder). */
static inline double sg_max(double a, double b) { return (a > b || a != a) ? a : b; }
static inline double sg_min(double a, double b) { return (a < b || a != a) ? a : b; }
static inline double sg_heaviside(double x, double h0) {
    return x > 0 ? 1.0 : (x < 0 ? 0.0 : (x == 0 ? h0 : x));
}
static inline double sg_sign(double x) {
    return x > 0 ? 1.0 : (x < 0 ? -1.0 : (x == 0 ? 0.0 : x));
}
static inline double sg_mod(double a, double b) {
    double m = fmod(a, b);
    if (b == 0) return m;
    if (m != 0) { if ((b < 0) != (m < 0)) m += b; }
    else m = copysign(0.0, b);
    return m;
}
/* SymPy's loggamma is the principal log of gamma: complex (NaN here) for x < 0 off the poles */
static inline double sg_loggamma(double x) {
    if (x < 0) return (x == floor(x) && x != -INFINITY) ? INFINITY : NAN;
    return lgamma(x);
}
static inline double sg_sigmoid(double x) {
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}
"""


def c_double(value: float) -> str:
    """A C literal for a double: ``repr`` round-trips exactly; ``NAN``/``INFINITY`` otherwise.

    >>> c_double(0.1), c_double(float("-inf")), c_double(float("nan"))
    ('0.1', '(-(double)INFINITY)', '((double)NAN)')
    """
    if value != value:
        return "((double)NAN)"
    if value in (float("inf"), float("-inf")):
        return "((double)INFINITY)" if value > 0 else "(-(double)INFINITY)"
    text = repr(value)
    return f"({text})" if value < 0 else text


def _exact_double(p: int, q: int = 1) -> str:
    # Python's int / int is correctly rounded for integers of any size (0 or inf at the ends)
    try:
        return c_double(p / q)
    except OverflowError:
        return c_double(math.inf if (p > 0) == (q > 0) else -math.inf)


class CPrinter(StableReciprocals, C99CodePrinter):
    """SymPy's C99 printer with NumPy's semantics and correctly rounded double literals.

    >>> import sympy as sp
    >>> print(CPrinter().doprint(sp.sign(sp.Symbol("x")) + sp.Rational(1, 3)))
    sg_sign(x) + 0.3333333333333333
    """

    def __init__(self) -> None:
        super().__init__({"strict": True})
        self.math_macros = {}  # M_PI etc. are not C99: constants print as double literals

    def _print_Float(self, expr):
        return c_double(float(expr))

    def _print_Integer(self, expr):
        # doubles throughout: no integer division or overflow in generated C
        return _exact_double(int(expr))

    def _print_Rational(self, expr):
        return _exact_double(int(expr.p), int(expr.q))

    def _print_NumberSymbol(self, expr):
        return c_double(float(expr.evalf(30)))

    _print_Exp1 = _print_Pi = _print_NumberSymbol
    _print_EulerGamma = _print_Catalan = _print_GoldenRatio = _print_NumberSymbol

    def _print_NaN(self, expr):
        return c_double(math.nan)

    def _print_Infinity(self, expr):
        return c_double(math.inf)

    def _print_NegativeInfinity(self, expr):
        return c_double(-math.inf)

    def _print_ComplexInfinity(self, expr):
        raise UnsupportedFunctionError(
            "zoo",
            "cannot compile zoo (complex infinity) to C: the C target is real-valued; use "
            "oo or -oo, or backend='numpy'",
        )

    def _paren(self, base) -> str:
        # the operand of a product or a quotient: parenthesised unless atomic
        return self.parenthesize(base, PRECEDENCE["Mul"], strict=False)

    def _print_Pow(self, expr):
        base, exp = expr.args
        if exp == -1:
            return f"(1.0/{self._paren(base)})"
        if exp == sp.S.Half or (exp.is_Float and float(exp) == 0.5):
            # NumPy's power takes sqrt for an exponent of 0.5: sqrt(-inf) is nan, sqrt(-0.0) -0.0
            return f"sqrt({self._print(base)})"
        if exp == -sp.S.Half:
            return f"(1.0/sqrt({self._print(base)}))"
        if exp == 2:
            b = self._paren(base)
            return f"({b}*{b})"
        # never cbrt: NumPy gives NaN for a negative base to a fractional power, so does pow
        return f"pow({self._print(base)}, {self._print(exp)})"

    def _reciprocal(self, func: str, expr) -> str:
        return f"(1.0/{func}({self._print(expr.args[0])}))"

    def _print_sech(self, expr):
        return self._reciprocal("cosh", expr)

    def _print_csch(self, expr):
        return self._reciprocal("sinh", expr)

    def _print_coth(self, expr):
        return self._reciprocal("tanh", expr)

    def _print_sec(self, expr):
        return self._reciprocal("cos", expr)

    def _print_csc(self, expr):
        return self._reciprocal("sin", expr)

    def _print_cot(self, expr):
        return self._reciprocal("tan", expr)

    def _print_Max(self, expr):
        return fold([self._print(a) for a in expr.args], lambda a, b: f"sg_max({a}, {b})")

    def _print_Min(self, expr):
        return fold([self._print(a) for a in expr.args], lambda a, b: f"sg_min({a}, {b})")

    def _print_Heaviside(self, expr):
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"sg_heaviside({self._print(expr.args[0])}, {self._print(h0)})"

    def _print_sign(self, expr):
        return f"sg_sign({self._print(expr.args[0])})"

    def _print_Mod(self, expr):
        a, b = expr.args
        return f"sg_mod({self._print(a)}, {self._print(b)})"

    def _print_frac(self, expr):
        return f"sg_mod({self._print(expr.args[0])}, 1.0)"  # numpy.mod(x, 1), as NumPy prints it

    def _print_loggamma(self, expr):
        return f"sg_loggamma({self._print(expr.args[0])})"

    def _print_sigmoid(self, expr):
        return f"sg_sigmoid({self._print(expr.args[0])})"

    # real inputs only (the kernel takes float64): the real part is the value itself
    def _print_re(self, expr):
        return self._print(expr.args[0])

    _print_conjugate = _print_transpose = _print_adjoint = _print_re

    def _print_im(self, expr):
        return "0.0"

    def _print_arg(self, expr):
        return f"atan2(0.0, {self._print(expr.args[0])})"  # numpy.angle of a real number

    def _print_Piecewise(self, expr):
        # numpy.select: the first true condition's value, NaN when none holds
        out = c_double(math.nan)
        for value, cond in reversed(expr.args):
            if cond == sp.true:
                out = self._print(value)
            else:
                out = f"(({self._print(cond)}) ? ({self._print(value)}) : ({out}))"
        return out

    def _print_BooleanTrue(self, expr):
        return "1"

    def _print_BooleanFalse(self, expr):
        return "0"

    def _print_Symbol(self, expr):
        return expr.name


def print_c(printer: CPrinter, expr: sp.Basic) -> str:
    """``expr`` as one line of C, or :class:`UnsupportedFunctionError` naming the head.

    >>> import sympy as sp
    >>> print(print_c(CPrinter(), sp.sech(sp.Symbol("x"))))
    (1.0/cosh(x))
    """
    try:
        text = printer.doprint(expr)
    except UnsupportedFunctionError:
        raise
    except (PrintMethodNotImplementedError, ValueError, TypeError, NotImplementedError) as exc:
        head = type(expr).__name__
        raise UnsupportedFunctionError(
            head,
            f"cannot compile {head} to C: SymPy's C printer has no translation for it; use "
            "backend='numpy', or replace it with elementary functions",
        ) from exc
    return " ".join(text.split())  # a Piecewise may print over several lines
