"""Printing one SymPy node over the names of its arguments, for generated code.

The code generators print each node of a DAG with its arguments replaced by the names (or
inlined texts) that hold them. Nodes of one head over names print alike, so a node is printed
once as a template and filled in with ``str.format``; an inlined argument is parenthesised only
where it sits inside an operator.

>>> import sympy as sp
>>> x, y = sp.symbols("x y")
>>> _print_node(_Printer(), {}, x * y, ["_t0", _Inlined("_t1 + _t2")])
'_t0*(_t1 + _t2)'
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.codeprinter import PrintMethodNotImplementedError
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import PythonCodePrinter

from ..errors import UnsupportedFunctionError
from ..graph import rebuild

# a placeholder in a template, with the delimiters around it when it is a whole call argument
# or list item
_TOKEN = re.compile(r"([(\[]|, )?_P(\d+)_([)\],])?")


class _Printer(NumPyPrinter):
    """SymPy's NumPy printer with exact float literals and broadcasting-safe max/min."""

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True, "strict": True, "order": "none"})

    def _print_Float(self, expr):
        # repr of the float64 round-trips exactly; SymPy's default may print fewer digits
        return repr(float(expr))

    def _print_Heaviside(self, expr):
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"numpy.heaviside({self._print(expr.args[0])}, {self._print(h0)})"


class _MathPrinter(PythonCodePrinter):
    """Prints the scalar fast path: ``math`` functions on Python floats, NumPy's semantics.

    Anything that would differ from NumPy raises instead (``math.sqrt(-1)``, ``0.0 ** -1``,
    ``math.pow(-8, 1/3)``), and the generated code then falls back to the NumPy statements.
    """

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True, "strict": True, "order": "none"})

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp.is_Integer:
            return f"{self.parenthesize(base, 100)}**{int(exp)}"
        if exp == sp.S.Half:
            return f"math.sqrt({self._print(base)})"
        e = sp.Float(exp) if exp.is_Number else exp  # a float exponent: math.pow, never **
        return f"math.pow({self._print(base)}, {self._print(e)})"

    def _print_Max(self, expr):
        return f"_fmax({', '.join(self._print(a) for a in expr.args)})"

    def _print_Min(self, expr):
        return f"_fmin({', '.join(self._print(a) for a in expr.args)})"

    def _print_Heaviside(self, expr):
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"_heaviside({self._print(expr.args[0])}, {self._print(h0)})"


class _Inlined(str):
    """The text of a node printed inside its only reader (parenthesised there when needed)."""


def _print_node(printer: _Printer, templates: dict, node: sp.Basic, kids: list) -> str:
    """Print ``node`` with its arguments replaced by ``kids`` (names, inlined texts, literals)."""
    # Nodes of the same head whose args are all names, inlined texts, numbers or negated names
    # print alike: print one template with tokens _P0_, _P1_, ... (-_P0_ for a negated name)
    # and fill in the names and texts with str.format. Other arguments (shadows: tuples,
    # condition pairs) are printed in place, uncached.
    negated = [_negated_name(k) for k in kids]
    pairs = list(zip(kids, negated, strict=True))
    key = (type(node), *[type(k) if isinstance(k, str) else _NEGATED if n else k for k, n in pairs])
    template = templates.get(key)
    if template is None:
        tokens = [
            sp.Symbol(f"_P{i}_")
            if isinstance(k, str)
            else sp.Mul(sp.S.NegativeOne, sp.Symbol(f"_P{i}_"), evaluate=False)
            if n
            else k
            for i, (k, n) in enumerate(pairs)
        ]
        text = _doprint(printer, rebuild(node, tokens)).replace("{", "{{").replace("}", "}}")

        def slot(m: re.Match) -> str:
            pre, j, post = m.groups()
            if type(kids[int(j)]) is _Inlined and not (pre and post):
                j = f"({{{j}}})"  # an inlined expression inside an operator: parenthesised
            else:
                j = f"{{{j}}}"  # a name, or a whole argument / list item
            return f"{pre or ''}{j}{post or ''}"

        template = _TOKEN.sub(slot, text)
        if all(isinstance(k, str) or n or k.is_Number for k, n in pairs):
            templates[key] = template
    return template.format(*[n or k for k, n in pairs])


_NEGATED = object()  # a negated name in a template key


def _negated_name(kid: object) -> str | None:
    # the name in a shadow ``-name`` (a negation of a statement or argument), else None
    if type(kid) is sp.Mul:
        a = kid.args
        if len(a) == 2 and a[0] is sp.S.NegativeOne and a[1].is_Symbol:
            return a[1].name
    return None


def _doprint(printer: _Printer, expr: sp.Basic) -> str:
    try:
        return printer.doprint(expr)
    except PrintMethodNotImplementedError as exc:
        head = type(expr).__name__
        raise UnsupportedFunctionError(
            head,
            f"cannot compile {head}: SymPy's NumPy printer has no translation for it; replace "
            "it with functions NumPy knows, or substitute a value",
        ) from exc
