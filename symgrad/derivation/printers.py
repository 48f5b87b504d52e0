r"""SymPy printers for derivations: named nodes, partials, chains.

Every piece of mathematics in a derivation is printed here, by subclasses of SymPy's
:class:`LatexPrinter` and :class:`StrPrinter` that print a named node (``e = a*b``, ``u_3``) as
its name, round numbers to :data:`DIGITS` significant digits, and know three display-only
expressions: :class:`Partial` (``dL/de``), :class:`Chain` (an incoming gradient times a local
partial, factors in order) and :class:`Terms` (contributions added, in order).

This module imports no other symgrad module; :mod:`symgrad.derivation.views` builds the views
from it.

>>> import sympy as sp
>>> a, b = sp.symbols("a b")
>>> printer = TextPrinter({a * b: sp.Symbol("e")})
>>> printer.show(Chain(Partial(sp.Symbol("L"), sp.Symbol("e")), b))
'dL/de * b'
>>> printer.show(sp.sin(a * b) + 1)
'sin(e) + 1'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

__all__ = [
    "DIGITS",
    "Chain",
    "LatexNamePrinter",
    "Partial",
    "Terms",
    "TextPrinter",
    "md_code",
    "md_text",
    "tex_name",
    "tex_text",
]

#: Significant digits of the numbers shown.
DIGITS = 6


class Partial(sp.Expr):
    r"""Display-only ``d top / d var`` (both are symbols standing for named nodes).

    >>> import sympy as sp
    >>> print(LatexNamePrinter({}).show(Partial(sp.Symbol("L"), sp.Symbol("u_1"))))
    \frac{\partial L}{\partial u_{1}}
    """

    is_commutative = True


class Chain(sp.Expr):
    """Display-only product ``incoming gradient * local partial``, factors kept in order.

    >>> import sympy as sp
    >>> TextPrinter({}).show(Chain(sp.Symbol("g"), sp.Integer(1)))
    'g * 1'
    """

    is_commutative = True


class Terms(sp.Expr):
    """Display-only sum whose terms stay in the given order (the contributions as added).

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> TextPrinter({}).show(Terms(y, x))
    'y + x'
    """

    is_commutative = True


class _Names:
    """Printer mixin: nodes found in ``display`` print as their display symbol."""

    def __init__(self, display: Mapping[sp.Basic, sp.Symbol], settings: dict | None = None):
        super().__init__(settings)  # type: ignore[call-arg]
        self._display = dict(display)

    def show(self, expr: sp.Basic, root: bool = False) -> str:
        """Print ``expr``; with ``root=True`` its own name is not used (to print a definition)."""
        if root and expr.args:
            args = [self._named(a) for a in expr.args]
            try:
                canonical = expr.func(*args)
            except (TypeError, ValueError):  # a head that rejects a symbol for an argument
                return self.doprint(expr)  # type: ignore[attr-defined]
            try:
                expr = expr.func(*args, evaluate=False)
            except TypeError:
                expr = canonical
            if expr == canonical:
                return self.doprint(expr)  # type: ignore[attr-defined]
            # built unevaluated (a Value graph): keep its own order, d = e + c not c + e
            settings = self._settings  # type: ignore[attr-defined]
            old, settings["order"] = settings["order"], "none"
            try:
                return self.doprint(expr)  # type: ignore[attr-defined]
            finally:
                settings["order"] = old
        return self.doprint(self._named(expr))  # type: ignore[attr-defined]

    def _named(self, expr: sp.Basic) -> sp.Basic:
        # xreplace stops at the first named node on each path, so the work is bounded by the
        # printed size (callers check it against PRINT_BUDGET first).
        return expr.xreplace(self._display) if self._display and expr.args else expr


# Names SymPy's LaTeX printer shows well: x, x1, x_1, alpha, w_{12}', ...
_PLAIN_NAME = re.compile(r"[A-Za-z]+[0-9]*(_[A-Za-z0-9]+)?'*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.']*")


class LatexNamePrinter(_Names, LatexPrinter):
    r"""SymPy's LaTeX printer with named nodes, partials, chains and rounded numbers.

    >>> import sympy as sp
    >>> o, n = sp.Symbol("o"), sp.Symbol("n")
    >>> LatexNamePrinter({}).show(1 - sp.tanh(n) ** 2)
    '1 - \\tanh^{2}{\\left(n \\right)}'
    >>> LatexNamePrinter({sp.tanh(n): o}).show(1 - sp.tanh(n) ** 2)
    '1 - o^{2}'
    """

    def _print_Partial(self, expr):
        top, var = (self._print(a) for a in expr.args)
        return rf"\frac{{\partial {top}}}{{\partial {var}}}"

    def _print_Chain(self, expr):
        return r" \cdot ".join(self.parenthesize(f, PRECEDENCE["Mul"]) for f in expr.args)

    def _print_Terms(self, expr):
        return " + ".join(self.parenthesize(t, PRECEDENCE["Add"]) for t in expr.args)

    def _print_Float(self, expr):
        # the text view's numbers (-8, 0.707107, 1e-07), written as TeX: one format everywhere
        x = float(expr)
        if not math.isfinite(x):
            return super()._print_Float(expr)
        mantissa, _, exponent = f"{x:.{DIGITS}g}".partition("e")
        return rf"{mantissa} \cdot 10^{{{int(exponent)}}}" if exponent else mantissa

    def _print_Symbol(self, expr, style="plain"):
        # a label such as "x1*w1" or "loss 1" is text
        return tex_name(expr.name) or super()._print_Symbol(expr, style)

    def _print_Function(self, expr, exp=None):
        name = getattr(expr.func, "__name__", "")
        if not isinstance(expr, AppliedUndef) or _PLAIN_NAME.fullmatch(name):
            return super()._print_Function(expr, exp)
        # a user's function name is text: "g}\input{...}" must not reach TeX as commands
        args = ", ".join(self._print(a) for a in expr.args)
        head = rf"\operatorname{{{tex_name(name)}}}"
        return rf"{head}^{{{exp}}}\left({args}\right)" if exp else rf"{head}\left({args}\right)"


class TextPrinter(_Names, StrPrinter):
    """SymPy's str printer with named nodes, ``dL/dx`` partials and rounded numbers.

    >>> import sympy as sp
    >>> TextPrinter({}).show(sp.Float(2) / 3)
    '0.666667'
    """

    def _print_Partial(self, expr):
        top, var = (self._print(a) for a in expr.args)
        return f"d{top}/d{var}"

    def _print_Chain(self, expr):
        return " * ".join(self.parenthesize(f, PRECEDENCE["Mul"]) for f in expr.args)

    def _print_Terms(self, expr):
        return " + ".join(self.parenthesize(t, PRECEDENCE["Add"]) for t in expr.args)

    def _print_Float(self, expr):
        return f"{float(expr):.{DIGITS}g}"

    def _print_Symbol(self, expr):
        # a label such as "x1*w1 + x2*w2" is bracketed so "do/d(x1*w1 + x2*w2) * 1" reads right
        name = expr.name
        return name if _IDENTIFIER.fullmatch(name) else f"({name})"


_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "^": r"\^{}",
    "~": r"\~{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "`": "{`}",
    "'": "{'}",
    "[": "{[}",
    "]": "{]}",
}
# line and paragraph breaks, other control characters: a blank line would end \text{...}
_BREAKS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def tex_text(text: str) -> str:
    r"""``text`` escaped for LaTeX text mode (labels and notes are plain text, never maths).

    The ten characters TeX gives a meaning, and ``<``/``>`` (they also reach Markdown and HTML
    renderers), become commands that print them; quotes and brackets are braced; line breaks
    and control characters become one space. This is the one escaping place for LaTeX:
    symbol, function and matrix names that are not plain identifiers go through it.

    >>> print(tex_text("a_b & 100%"))
    a\_b \& 100\%
    >>> print(tex_text("}\\input{x}\n\n<b>"))
    \}\textbackslash{}input\{x\} \textless{}b\textgreater{}
    """
    text = _BREAKS.sub(" ", text)
    # braces around quotes stop the `` and '' ligatures (one quote mark per character); around
    # brackets they keep "](" apart, so a Markdown renderer never sees a link in the maths
    return re.sub(r"[_#%&$^{}~\\<>`'\[\]]", lambda m: _TEX_SPECIAL.get(m[0], "\\" + m[0]), text)


def tex_name(name: str) -> str | None:
    r"""``\text{name}`` for a name SymPy's LaTeX printer would not show safely, else None.

    >>> tex_name("x_1") is None, tex_name("loss 1")
    (True, '\\text{loss 1}')
    """
    return None if _PLAIN_NAME.fullmatch(name) else rf"\text{{{tex_text(name)}}}"


def md_text(text: str) -> str:
    r"""``text`` escaped for Markdown prose: the characters that start markup backslash-escaped.

    CommonMark shows a backslash-escaped punctuation character literally, so no name can open
    an HTML tag (``<``), an entity (``&``), a link, emphasis, a code span, a table cell or maths
    (``$``); line breaks become spaces (a blank line would end the paragraph). This and
    :func:`md_code` are the one escaping place for Markdown.

    >>> print(md_text("<img src=x> *a*"))
    \<img src=x\> \*a\*
    """
    text = _BREAKS.sub(" ", text)
    return re.sub(r"([\\`*_\[\]<>&~|#$])", r"\\\1", text)


def md_code(text: str) -> str:
    r"""``text`` as a Markdown code span (its content is literal), fenced by enough backticks.

    >>> print(md_code("a`b"))
    ``a`b``
    """
    text = _BREAKS.sub(" ", text)
    fence = "`" * (1 + max((len(r) for r in re.findall(r"`+", text)), default=0))
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"
