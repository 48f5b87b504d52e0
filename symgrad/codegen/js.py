"""The JavaScript target: a :class:`~symgrad.codegen.plan.Program` as a plain JS function.

The function takes one number per scalar argument and one array (``Array`` or
``Float64Array``) per vector argument, and returns a number, or (nested) arrays of numbers for
list outputs. Its numbers follow NumPy's IEEE semantics for the functions it supports
(``1/0`` is ``Infinity``, ``sqrt(-1)`` and ``(-8)**(1/3)`` are ``NaN``, ``Mod`` takes the
sign of the divisor, ``max``/``min`` propagate ``NaN``); a function JavaScript's ``Math``
lacks (``erf``, ``gamma``, ...) is an :class:`~symgrad.errors.UnsupportedFunctionError`.

>>> import sympy as sp
>>> x, w, b = sp.symbols("x w b")
>>> print(emit([sp.tanh(w * x + b), [x, 1]], [x, [w, b]], "neuron"))
var neuron = (function () {
  "use strict";
  return function neuron(a0, a1) {
    const a1_0 = a1[0], a1_1 = a1[1];
    return [Math.tanh(a1_1 + a1_0*a0), [a0, 1]];
  };
})();
<BLANKLINE>
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.printing.jscode import JavascriptCodePrinter

from ..errors import OptionError, UnsupportedFunctionError
from .plan import Program, plan, rectangular, walk
from .printers import TargetPrinter, _doprint, _print_node

__all__ = ["emit"]

# NumPy's semantics where JavaScript's differ (each defined only when used)
_HELPERS = {
    # numpy.mod: the sign of the divisor, also for a zero result
    "_mod": "function _mod(a, b) { const r = a % b; if (r === 0) return b < 0 ? -0 : 0; "
    "return (r < 0) !== (b < 0) ? r + b : r; }",
    "_pow": "function _pow(a, b) { return (a === 1 || b === 0) ? 1 : "
    "(a === -1 && !isFinite(b) && b === b) ? 1 : Math.pow(a, b); }",
    "_heaviside": "function _heaviside(x, h0) { return x > 0 ? 1 : x < 0 ? 0 : x === 0 ? h0 : x; }",
}


_RESERVED = frozenset(
    [
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "debugger",
        "default",
        "delete",
        "do",
        "else",
        "enum",
        "export",
        "extends",
        "false",
        "finally",
        "for",
        "function",
        "if",
        "implements",
        "import",
        "in",
        "instanceof",
        "interface",
        "let",
        "new",
        "null",
        "package",
        "private",
        "protected",
        "public",
        "return",
        "static",
        "super",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "typeof",
        "var",
        "void",
        "while",
        "with",
        "yield",
        "await",
        "arguments",
        "eval",
        "Math",
        "NaN",
        "Infinity",
        "undefined",
        "globalThis",
        "Float64Array",
        "Array",
        "Number",
        "Object",
        "window",
        "self",
    ]
)


class JSTargetPrinter(TargetPrinter, JavascriptCodePrinter):
    """SymPy's JavaScript printer with the shared overrides and NumPy's semantics.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> JSTargetPrinter().doprint(sp.Mod(x, 2) + x**1.5)
    '_pow(x, 1.5) + _mod(x, 2)'
    """

    inf = "Infinity"
    nan = "NaN"
    target = "JavaScript"

    def __init__(self) -> None:
        super().__init__({"strict": True})
        self.used: set[str] = set()

    def _helper(self, name: str, *args) -> str:
        self.used.add(name)
        return f"{name}({', '.join(self._print(a) for a in args)})"

    def _print_Pow(self, expr):
        base, exp = expr.args
        if exp.is_Integer and abs(exp.p) <= 2**53:
            return f"Math.pow({self._print(base)}, {int(exp)})"
        if self.is_half(exp):
            return f"Math.sqrt({self._print(base)})"
        return self._helper("_pow", base, exp)

    def _print_sigmoid(self, expr):
        # symgrad's sigmoid: exp overflows to Infinity and the quotient to 0, as NumPy's
        # exp(-logaddexp(0, -x)) underflows to 0
        return f"(1/(1 + Math.exp(-({self._print(expr.args[0])}))))"

    def _print_loggamma(self, expr):
        raise UnsupportedFunctionError("loggamma", "JavaScript's Math has no log-gamma")

    def _print_Mod(self, expr):
        return self._helper("_mod", *expr.args)

    def _print_Heaviside(self, expr):
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return self._helper("_heaviside", expr.args[0], h0)

    def _print_Piecewise(self, expr):
        text = "NaN"  # no condition holds: NumPy's select default
        for e, c in reversed(expr.args):
            if c == sp.true:
                text = self._print(e)
            else:
                text = f"(({self._print(c)}) ? ({self._print(e)}) : ({text}))"
        return text

    def _print_ITE(self, expr):
        c, a, b = (self._print(e) for e in expr.args)
        return f"(({c}) ? ({a}) : ({b}))"

    def _print_sign(self, expr):
        return f"Math.sign({self._print(expr.args[0])})"


def emit(outputs: Any, args: Any, name: str = "symgrad_fn") -> str:
    """JavaScript source of a function ``name`` computing ``outputs`` over ``args``.

    Args:
        outputs: an expression or (nested) lists of them (see :func:`symgrad.lambdify`).
        args: symbols and lists of symbols, in call order.
        name: the function's name (a JavaScript identifier: letters, digits, ``_``).

    Returns:
        ``var name = (function () { ... })();``: one global binding, usable from a ``<script>``
        or ``new Function``.

    Raises:
        UnsupportedFunctionError: an output uses a function JavaScript's Math lacks.
        OptionError: ``name`` is not a safe identifier.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> print(emit(1 / x, [x], "f").splitlines()[3])
        return Math.pow(a0, -1);
    """
    if (
        not isinstance(name, str)
        or not name.isidentifier()
        or not name.isascii()
        or name.startswith("_")
        or name in _RESERVED
    ):
        raise OptionError(
            f"name must be an ASCII identifier that is not a JavaScript keyword or global and "
            f"does not start with '_', got {name!r}"
        )
    return emit_program(plan(outputs, args), name)


def emit_program(prog: Program, name: str) -> str:
    """JavaScript source of ``prog`` (see :func:`emit`).

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> "Math.exp(a0)" in emit_program(plan(sp.exp(x), [x]), "f")
    True
    """
    printer = JSTargetPrinter()
    templates: dict = {}
    names: list = [None] * len(prog.order)
    for i, src in enumerate(prog.source):
        if src is not None:
            names[i] = f"a{src[0]}" if src[1] < 0 else f"a{src[0]}_{src[1]}"

    def text_of(i, node, kids):
        return _print_node(printer, templates, node, kids), ()

    slots = [f"t{k}" for k in range(prog.n_slots)]
    body, kid = walk(prog, names, slots, text_of)

    def leaf(j: int) -> str:
        k = kid[prog.outs[j]]
        return k if isinstance(k, str) else _doprint(printer, k)

    ret = _build(prog.spec, prog.top, leaf)
    params = [f"a{i}" for i in range(len(prog.args))]
    lines = ["var NAME = (function () {", '  "use strict";']
    lines += [f"  {_HELPERS[h]}" for h in sorted(printer.used)]
    lines.append(f"  return function {name}({', '.join(params)}) {{")
    read = prog.entries_read()
    for i, entries in read.items():
        if entries:
            lines.append(f"    const {', '.join(f'a{i}_{j} = a{i}[{j}]' for j in entries)};")
    if slots:
        lines.append(f"    let {', '.join(slots)};")
    lines += [f"    {target} = {text};" for target, text in body]
    lines += [f"    return {ret};", "  };", "})();"]
    lines[0] = lines[0].replace("NAME", name)
    return "\n".join(lines) + "\n"


def _build(spec: Any, top: bool, leaf) -> str:
    if isinstance(spec, int):
        return leaf(spec)
    if not top:
        rectangular(spec)  # nested outputs must be rectangular, as for the other targets
    return f"[{', '.join(_build(s, False, leaf) for s in spec)}]"
