"""Printing one SymPy node over the names of its arguments, for every target.

:class:`TargetPrinter` is the one mixin holding what every target's printer shares: numbers
printed exactly (the correctly rounded double of a float, a rational with huge parts or a
huge integer; ``inf``/``nan`` in the target's spelling), every SymPy constant (``pi``,
``EulerGamma``, ``Catalan``, ``GoldenRatio``, ...) as its double, ``oo``/``zoo``/``nan``, and
the precedence-aware placeholders that make a node's text a reusable template. Each target
(:class:`NumPyTargetPrinter`, :class:`MathTargetPrinter`, the JavaScript printer in ``js.py``,
...) only says how it spells infinity and the functions it prints differently.

The emitters print each node of a DAG with its arguments replaced by the names (or inlined
texts) that hold them. Nodes of one head over names print alike, so a node is printed once as a
template and filled in with ``str.format``; an inlined argument is parenthesised exactly where
SymPy would parenthesise the expression it stands for.

>>> import sympy as sp
>>> x, y = sp.symbols("x y")
>>> _print_node(NumPyTargetPrinter(), {}, x * y, ["_t0", Inlined.of("_t1 + _t2", x + y)])
'_t0*(_t1 + _t2)'
>>> _doprint(NumPyTargetPrinter(), sp.Rational(2**1100, 3**690) * x + sp.EulerGamma)
'(83.04805656012616)*x + 0.5772156649015329'
"""

from __future__ import annotations

import math

import sympy as sp
from sympy.printing.codeprinter import PrintMethodNotImplementedError
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.pycode import PythonCodePrinter

from ..errors import UnsupportedFunctionError
from ..graph import rebuild

__all__ = ["MathTargetPrinter", "NumPyTargetPrinter", "TargetPrinter", "fold"]

_EXACT = 2**53  # integers up to this size are exact doubles
_MARK = "\x00"  # delimits a placeholder in a template while it is being built
#: Max/Min of more arguments than this print as a balanced tree of binary calls (nesting
#: depth log2 of the width), fewer as a left fold
FOLD_FLAT = 32


def exact_double(p: int, q: int = 1) -> float:
    """``p / q`` correctly rounded to a double (``±inf`` beyond its range)."""
    try:
        return p / q  # Python divides integers exactly, then rounds once
    except OverflowError:
        return math.inf if (p > 0) == (q > 0) else -math.inf


def fold(texts: list[str], pair) -> str:
    """An n-ary max/min as binary calls ``pair(a, b)``: a left fold up to :data:`FOLD_FLAT`
    arguments, a balanced tree of pairs above (nesting depth log2 of the width: Python's parser
    refuses more than 200 nested parentheses, and a C macro that reads its argument twice
    doubles the text at every level).

    >>> fold(["a", "b", "c"], lambda a, b: f"m({a}, {b})")
    'm(m(a, b), c)'
    """
    if len(texts) <= FOLD_FLAT:
        text = texts[0]
        for b in texts[1:]:
            text = pair(text, b)
        return text
    while len(texts) > 1:
        pairs = [pair(texts[k], texts[k + 1]) for k in range(0, len(texts) - 1, 2)]
        texts = pairs + texts[len(texts) - len(texts) % 2 :]
    return texts[0]


class StableReciprocals:
    """Reciprocal hyperbolic functions printed through their stable counterparts.

    SymPy's printers write ``csch``, ``sech``, ``coth`` and their inverses through ``exp`` and
    ``log``: ``csch(1e-8)`` then loses 5 digits to cancellation, ``coth(800)`` is
    ``inf/inf = nan`` and ``acsch(-1e-12)`` is ``log(0)``. ``1/sinh(u)`` and ``asinh(1/u)``
    are accurate everywhere and keep the odd functions odd at ``-0.0``. Each target prints
    the result with its own ``sinh``/``asinh``/reciprocal.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> MathTargetPrinter().doprint(sp.acsch(x)), MathTargetPrinter().doprint(sp.coth(x) ** 2)
    ('math.asinh(x**-1)', '(((math.tanh(x))**-1))**2')
    """

    def _reciprocal_of(self, head, expr):
        # parenthesised: it stands where a function call (an atom) stood, e.g. in csch(x)**2
        return f"({self._print(sp.Pow(head(expr.args[0]), -1, evaluate=False))})"

    def _of_reciprocal(self, head, expr):
        return self._print(head(sp.Pow(expr.args[0], -1, evaluate=False), evaluate=False))

    def _print_csch(self, expr):
        return self._reciprocal_of(sp.sinh, expr)

    def _print_sech(self, expr):
        return self._reciprocal_of(sp.cosh, expr)

    def _print_coth(self, expr):
        return self._reciprocal_of(sp.tanh, expr)

    def _print_acsch(self, expr):
        return self._of_reciprocal(sp.asinh, expr)

    def _print_asech(self, expr):
        return self._of_reciprocal(sp.acosh, expr)

    def _print_acoth(self, expr):
        return self._of_reciprocal(sp.atanh, expr)


class TargetPrinter(StableReciprocals):
    """The overrides every target's printer shares (mix in before a SymPy code printer).

    A target sets :attr:`inf` and :attr:`nan`: how it spells those doubles.

    >>> import sympy as sp
    >>> p = MathTargetPrinter()
    >>> [p.doprint(c) for c in (sp.oo, -sp.oo, sp.zoo, sp.nan, sp.Float("1e400"))]
    ['math.inf', '(-math.inf)', 'math.inf', 'math.nan', 'math.inf']
    >>> p.doprint(sp.Catalan), p.doprint(sp.Integer(2**1100))
    ('0.915965594177219', 'math.inf')
    """

    inf = "inf"
    nan = "nan"

    def number(self, value: float) -> str:
        """A double as a literal of the target."""
        if value != value:
            return self.nan
        if math.isinf(value):
            return self.inf if value > 0 else f"(-{self.inf})"
        return repr(value)  # repr round-trips the double exactly

    def _print_Float(self, expr):
        return self.number(float(expr))

    def _print_Integer(self, expr):
        if abs(expr.p) <= _EXACT:
            return str(expr.p)
        return self.number(exact_double(expr.p))

    def _print_Rational(self, expr):
        if abs(expr.p) <= _EXACT and expr.q <= _EXACT:
            return super()._print_Rational(expr)  # both exact: divided at run time, rounded once
        return self.number(exact_double(expr.p, expr.q))

    def _print_NumberSymbol(self, expr):
        # pi, E, EulerGamma, Catalan, GoldenRatio, TribonacciConstant, ...: the nearest double
        return self.number(float(expr))

    _print_Exp1 = _print_Pi = _print_EulerGamma = _print_Catalan = _print_NumberSymbol
    _print_GoldenRatio = _print_TribonacciConstant = _print_NumberSymbol

    def _print_Infinity(self, expr):
        return self.number(math.inf)

    def _print_NegativeInfinity(self, expr):
        return self.number(-math.inf)

    def _print_ComplexInfinity(self, expr):
        # the real targets have no unsigned infinity: zoo is 1/0 as IEEE gives it, +inf
        return self.number(math.inf)

    def _print_NaN(self, expr):
        return self.number(math.nan)

    @staticmethod
    def is_half(exp: sp.Basic) -> bool:
        """Whether a power's exponent is 1/2 (exact or float): printed as a square root, which
        NumPy arrays use for ``**0.5`` (``sqrt(-inf)`` is nan where ``pow(-inf, 0.5)`` is inf)."""
        return exp is sp.S.Half or (exp.is_Float and float(exp) == 0.5)

    def _print_loggamma(self, expr):
        # SymPy's loggamma is the principal log of gamma: complex (nan) for x < 0 off the poles
        return self._loggamma(self._print(expr.args[0]))

    def _print_TemplateSlot(self, expr):
        return f"{_MARK}{expr.name}{_MARK}"


class ArrayFunctions:
    """Overrides shared by the array targets (NumPy, JAX), printed through module ``_array``.

    Heaviside with its value at 0, a boolean if-then-else that stays boolean (``select`` would
    make it float), max/min of several arguments as nested binary calls (NaN propagates), and
    a power 1/2 as a square root.
    """

    _array = "numpy"

    def _print_Heaviside(self, expr):
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"{self._array}.heaviside({self._print(expr.args[0])}, {self._print(h0)})"

    def _print_ITE(self, expr):
        c, a, b = (self._print(e) for e in expr.args)
        return f"{self._array}.where({c}, {a}, {b})"

    #: how one binary max/min of a fold is printed (a target may wrap it)
    _pair = "{fn}({a}, {b})"

    def _fold(self, fn: str, args) -> str:
        return fold([self._print(a) for a in args], lambda a, b: self._pair.format(fn=fn, a=a, b=b))

    def _print_Max(self, expr):
        return self._fold(f"{self._array}.maximum", expr.args)

    def _print_Pow(self, expr, rational=False):
        # x**0.5 as sqrt: sqrt(-inf) is nan where pow(-inf, 0.5) is inf (C99)
        if self.is_half(expr.exp):
            return f"{self._array}.sqrt({self._print(expr.base)})"
        return super()._print_Pow(expr, rational)

    def _print_Min(self, expr):
        return self._fold(f"{self._array}.minimum", expr.args)


class NumPyTargetPrinter(ArrayFunctions, TargetPrinter, NumPyPrinter):
    """SymPy's NumPy printer with the shared overrides and NaN-propagating max/min.

    Functions NumPy lacks (``erf``, ``gamma``, ...) are printed as ``_vmath.f``: the run-time
    stand-in for ``math`` that also takes arrays and answers poles as IEEE does (see
    :mod:`~symgrad.codegen.runtime`).

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> NumPyTargetPrinter().doprint(sp.erf(x) + sp.oo)
    'numpy.inf + _vmath.erf(x)'
    """

    inf = "numpy.inf"
    nan = "numpy.nan"

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True, "strict": True, "order": "none"})

    def _module_format(self, fqn, register=True):
        if fqn.startswith("math."):
            return "_vmath." + fqn[5:]
        return super()._module_format(fqn, register)

    def _loggamma(self, arg: str) -> str:
        return f"_vmath.loggamma({arg})"


class MathTargetPrinter(TargetPrinter, PythonCodePrinter):
    """Prints the Python-float path: ``math`` functions on Python floats, NumPy's semantics.

    Anything that would differ from NumPy raises instead (``math.sqrt(-1)``, ``0.0 ** -1``,
    ``math.pow(-8, 1/3)``), and the generated code then runs the NumPy statements on NumPy
    scalars, which give NumPy's IEEE answer (``inf``, ``nan``) and its warning.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> MathTargetPrinter().doprint(sp.sign(x) + x**1.5)
    'math.pow(x, 1.5) + _fsign(x)'
    """

    inf = "math.inf"
    nan = "math.nan"

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True, "strict": True, "order": "none"})

    def _module_format(self, fqn, register=True):
        if fqn.startswith("math.") and not hasattr(math, fqn[5:]):
            raise UnsupportedFunctionError(fqn[5:], f"math has no {fqn[5:]}")
        return super()._module_format(fqn, register)

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp == 2 and base.is_Symbol and "precedence" not in vars(type(base)):
            # a name squared: one multiplication (float ** 2 calls C's pow: 3x slower), the
            # same double; parenthesised, as it stands where a power stood (a/x**2)
            name = self._print(base)
            return f"({name}*{name})"
        if exp.is_Integer and abs(exp.p) <= _EXACT:
            return f"{self.parenthesize(base, 100)}**{int(exp)}"
        if self.is_half(exp):
            return f"math.sqrt({self._print(base)})"
        e = sp.Float(exp) if exp.is_Number else exp  # a float exponent: math.pow, never **
        return f"math.pow({self._print(base)}, {self._print(e)})"

    def _print_Integer(self, expr):
        # a float literal: every result of this path is a float, as NumPy's are (an int 0 from
        # Max(0, x) or a constant output would come back as a Python int)
        text = super()._print_Integer(expr)
        return f"{text}.0" if text.lstrip("-").isdigit() else text

    def _print_floor(self, expr):
        # math.floor returns an int: exact and unbounded (floor(1e300)**2 would be an int of
        # 600 digits, never inf), and without -0.0
        return f"_ffloor({self._print(expr.args[0])})"

    def _print_ceiling(self, expr):
        return f"_fceil({self._print(expr.args[0])})"

    def _print_Max(self, expr):
        return f"_fmax({', '.join(self._print(a) for a in expr.args)})"

    def _print_Min(self, expr):
        return f"_fmin({', '.join(self._print(a) for a in expr.args)})"

    def _print_sign(self, expr):
        return f"_fsign({self._print(expr.args[0])})"

    def _loggamma(self, arg: str) -> str:
        return f"_loggamma({arg})"

    def _print_Heaviside(self, expr):
        h0 = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"_heaviside({self._print(expr.args[0])}, {self._print(h0)})"


def node_precedence(node: sp.Basic) -> int:
    """SymPy's ``precedence(node)``, without its assumption queries on products.

    SymPy decides whether a product prints with a leading minus by building ``-node`` and
    comparing (``Mul.could_extract_minus_sign``): an evaluated product and assumption queries
    per call, most of the printing time of a large gradient. A canonical product's sign is its
    leading number's.

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> from sympy.printing.precedence import PRECEDENCE, precedence
    >>> all(node_precedence(e) == precedence(e) for e in (-2 * x * y, x * y, x + y, x**2))
    True
    """
    if node.is_Mul:
        c = node.args[0]
        negative = c.is_Number and c.is_extended_negative and c is not sp.S.ComplexInfinity
        return PRECEDENCE["Add"] if negative else PRECEDENCE["Mul"]
    return precedence(node)


class Inlined(str):
    """The text of a node printed inside its only reader, with the node's precedence."""

    prec: int = 0
    #: the vector-entry names the text reads (marked as read where the text is printed)
    marks: frozenset = frozenset()

    @classmethod
    def of(cls, text: str, node: sp.Basic) -> Inlined:
        """``text`` standing for ``node`` (parenthesised where ``node`` would be)."""
        out = cls(text)
        out.prec = node_precedence(node)
        return out


_SLOTS: dict[int | None, type] = {}


def _slot(i: int, prec: int | None) -> sp.Symbol:
    # a placeholder symbol that prints as a marked index and has the precedence of what it
    # stands for (None: a name, an atom)
    cls = _SLOTS.get(prec)
    if cls is None:
        attrs = {} if prec is None else {"precedence": prec}
        cls = _SLOTS[prec] = type("TemplateSlot", (sp.Symbol,), attrs)
    return cls(f"{i}")


#: A printer class's templates are kept across programs up to this many (then started afresh).
TEMPLATES_MAX = 4096
_TEMPLATES: dict[type, dict] = {}


def shared_templates(printer: TargetPrinter) -> dict:
    """The template cache (see :func:`_print_node`) of ``printer``'s class, shared by every
    program printed with it: a template depends on the printer's class (its settings are the
    class's) and the key alone, and printing one is a SymPy ``doprint``.

    >>> shared_templates(MathTargetPrinter()) is shared_templates(MathTargetPrinter())
    True
    """
    templates = _TEMPLATES.setdefault(type(printer), {})
    if len(templates) > TEMPLATES_MAX:
        templates.clear()
    return templates


def _print_node(printer: TargetPrinter, templates: dict, node: sp.Basic, kids: list) -> str:
    """Print ``node`` with its arguments replaced by ``kids`` (names, inlined texts, literals)."""
    # Nodes of the same head whose args are all names, inlined texts, numbers or negated names
    # print alike: print one template with placeholders and fill in the names and texts with
    # str.format. Other arguments (shadows: tuples, condition pairs) are printed in place.
    negated: list | None = None  # per kid, the name in a negation -name (None: no negation)
    key_parts: list = [type(node)]  # the template's key (see _key)
    for j, k in enumerate(kids):
        tk = type(k)
        if tk is str:  # the commonest kids first: names, then inlined texts
            key_parts.append(str)
        elif tk is Inlined:
            key_parts.append(("i", k.prec))
        else:
            n = _negated_name(k)
            if n:
                if negated is None:
                    negated = [None] * len(kids)
                negated[j] = n
            key_parts.append(_key(k, n))
    key = tuple(key_parts)
    template = templates.get(key)
    if negated is None:
        if template is not None:
            return template.format(*kids)
        negated = [None] * len(kids)
    if template is None:
        tokens = [
            sp.Mul(sp.S.NegativeOne, _slot(i, None), evaluate=False)
            if n
            else _slot(i, k.prec if type(k) is Inlined else None)
            if isinstance(k, str)
            else k
            for i, (k, n) in enumerate(zip(kids, negated, strict=True))
        ]
        parts = _doprint(printer, rebuild(node, tokens)).split(_MARK)
        # even parts are text, odd ones placeholder indices
        template = "".join(
            "{" + p + "}" if j % 2 else p.replace("{", "{{").replace("}", "}}")
            for j, p in enumerate(parts)
        )
        if all(isinstance(k, str) or n or k.is_Number for k, n in zip(kids, negated, strict=True)):
            templates[key] = template
    return template.format(*[n or k for k, n in zip(kids, negated, strict=True)])


_NEGATED = object()  # a negated name in a template key


def _key(kid: object, negated: str | None) -> object:
    # what a template depends on: a name, an inlined text's precedence, or the literal itself
    if negated:
        return _NEGATED
    if type(kid) is Inlined:
        return ("i", kid.prec)
    return str if isinstance(kid, str) else kid


def _negated_name(kid: object) -> str | None:
    # the name in a shadow ``-name`` (a negation of a statement or argument), else None
    if type(kid) is sp.Mul:
        a = kid.args
        if len(a) == 2 and a[0] is sp.S.NegativeOne and a[1].is_Symbol:
            return a[1].name
    return None


def _doprint(printer: TargetPrinter, expr: sp.Basic) -> str:
    try:
        return printer.doprint(expr)
    except PrintMethodNotImplementedError as exc:
        head = type(expr).__name__
        target = getattr(printer, "target", "NumPy")
        raise UnsupportedFunctionError(
            head,
            f"cannot compile {head}: the {target} target has no translation for it; replace "
            "it with functions the target knows, or substitute a value",
        ) from exc
