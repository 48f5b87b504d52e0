"""Neural-network functions as SymPy objects.

``sigmoid`` is a first-class SymPy function: its derivative is written through itself,
``s * (1 - s)``, so gradients share the forward value and stay finite where the ``exp`` form
overflows. ``relu(x)`` is plain ``Max(0, x)``; the rule table gives it PyTorch's derivative
(0 at 0).

>>> import sympy as sp
>>> x = sp.Symbol("x")
>>> sigmoid(x).diff(x)
(1 - sigmoid(x))*sigmoid(x)
>>> relu(x)
Max(0, x)
"""

from __future__ import annotations

import sympy as sp

from .errors import DomainError, InputTypeError

__all__ = ["relu", "sigmoid"]


def _argument(x: object, fn: str) -> sp.Expr:
    """``x`` as a SymPy expression: an expression, a Python number or an object with
    ``_sympy_`` (e.g. a :class:`symgrad.Value`). Never text: SymPy would parse it."""
    if isinstance(x, sp.Expr):
        return x
    if isinstance(x, int) and not isinstance(x, bool):
        return sp.Integer(x)
    if isinstance(x, float):
        return sp.Float(x)
    convert = getattr(x, "_sympy_", None)
    if callable(convert) and not isinstance(x, type):
        out = convert()
        if isinstance(out, sp.Expr):
            return out
    hint = "; use symgrad.parse to turn text into an expression" if isinstance(x, str) else ""
    raise InputTypeError(
        f"{fn} expects a SymPy expression or a real number, got {type(x).__name__}{hint}"
    )


class sigmoid(sp.Function):  # lower case, like SymPy functions
    r"""The logistic function :math:`\sigma(x) = 1 / (1 + e^{-x})`.

    Prints as ``\sigma`` in LaTeX and compiles to a form that cannot overflow.

    >>> import sympy as sp
    >>> sigmoid(0)
    1/2
    >>> float(sigmoid(sp.Float(2.0)))
    0.8807970779778823
    """

    nargs = 1

    def __new__(cls, *args, **options):
        if len(args) != 1:
            raise InputTypeError(f"sigmoid takes one argument, got {len(args)}")
        return super().__new__(cls, _argument(args[0], "sigmoid"), **options)

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sp.S.Half
        if arg.is_Float:
            return 1 / (1 + sp.exp(-arg))
        return None

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise sp.ArgumentIndexError(self, argindex)
        # sigma' = sigma (1 - sigma): reuses the forward value
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, arg, **kwargs):
        return 1 / (1 + sp.exp(-arg))

    _eval_rewrite_as_tractable = _eval_rewrite_as_exp

    def _eval_rewrite_as_tanh(self, arg, **kwargs):
        return (1 + sp.tanh(arg / 2)) / 2

    def _eval_evalf(self, prec):
        # Evaluate the argument first, then the logistic function of that number: rewriting the
        # whole (possibly nested) argument into exp form is exponential in the nesting and leaves
        # spurious imaginary parts.
        arg = self.args[0]._eval_evalf(prec)
        if arg is None or not arg.is_number:
            return None
        return (1 / (1 + sp.exp(-arg)))._eval_evalf(prec)

    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real

    def _eval_is_positive(self):
        if self.args[0].is_extended_real:
            return True
        return None

    def _latex(self, printer, exp=None):
        inner = printer._print(self.args[0])
        tex = rf"\sigma\left({inner}\right)"
        return tex if exp is None else rf"\sigma^{{{exp}}}\left({inner}\right)"

    def _numpycode(self, printer):
        # exp(-logaddexp(0, -x)) = 1/(1 + exp(-x)) without overflow for large |x|
        np_ = printer._module_format(printer._module + ".exp")
        lae = printer._module_format(printer._module + ".logaddexp")
        return f"{np_}(-{lae}(0, -({printer._print(self.args[0])})))"

    def _pythoncode(self, printer):
        ex = printer._module_format("math.exp")
        arg = printer._print(self.args[0])
        return f"(1/(1 + {ex}(-({arg}))))"


def relu(x: sp.Expr | float) -> sp.Expr:
    """The rectified linear unit ``Max(0, x)``; symgrad differentiates it as PyTorch does.

    Args:
        x: a SymPy expression or a number.

    Returns:
        ``sympy.Max(0, x)``; ``nan`` for ``nan``, as ``numpy.maximum(0, nan)``.

    Raises:
        InputTypeError: ``x`` is not an expression or a real number (text is never parsed).
        DomainError: ``x`` is a number that is not real (``I``, ``zoo``).

    >>> import sympy as sp
    >>> relu(sp.Symbol("t"))
    Max(0, t)
    >>> relu(-3)
    0
    """
    x = _argument(x, "relu")
    if x is sp.nan:
        return x  # IEEE: max(0, nan) is nan, as NumPy's maximum and the compiled code give
    try:
        return sp.Max(sp.S.Zero, x)
    except ValueError:  # SymPy cannot order x against 0: complex (I, zoo) or not real
        raise DomainError(
            f"relu is defined on real numbers, got {x}; give a real expression"
        ) from None
