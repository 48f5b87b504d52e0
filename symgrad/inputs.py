"""Checking and converting what users pass in.

Public functions accept SymPy expressions, Python numbers, objects that convert themselves
(``_sympy_``, e.g. :class:`symgrad.Value`) and, where a symbol is wanted, a symbol's *name*.
Text is never evaluated here: a string given where an expression is expected is an error that
points to :func:`symgrad.parse`.

>>> import sympy as sp
>>> as_expr(3)
3
>>> x = sp.Symbol("x")
>>> as_symbols("x", x**2)
([x], True)
"""

from __future__ import annotations

import keyword
import math
import numbers
from collections.abc import Iterable, Mapping

import sympy as sp

from .errors import InputTypeError, MissingSymbolError, OptionError
from .graph import free_symbols

__all__ = [
    "as_expr",
    "as_exprs",
    "as_symbols",
    "check_choice",
    "describe",
    "float_of",
    "point_values",
]


def describe(obj: object, limit: int = 50) -> str:
    """A short, safe description of ``obj`` for error messages.

    >>> describe("abc")
    "str 'abc'"
    """
    text = repr(obj)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(obj).__name__} {text}"


def check_choice(
    value: object, choices: Iterable[object], what: str, error: type[Exception] = OptionError
) -> object:
    """``value`` if it is one of ``choices``, else ``error`` listing them.

    A string matches a string choice; any other value only a choice of its own type (``1`` is
    not ``True``): ``value in choices`` would compare an array with ``==`` and raise NumPy's
    "truth value of an array is ambiguous" instead of saying what is wrong.

    Args:
        value: what the caller passed.
        choices: the allowed values (strings, booleans, ``None``, integers).
        what: the option's name, as the message shows it.
        error: the :class:`~symgrad.errors.SymgradError` subclass to raise.

    >>> check_choice("LR", ("LR", "TB"), "rankdir")
    'LR'
    >>> check_choice([1], ("LR", "TB"), "rankdir")
    Traceback (most recent call last):
    ...
    symgrad.errors.OptionError: rankdir must be one of 'LR', 'TB'; got list [1]
    """
    choices = tuple(choices)
    for choice in choices:
        kind = str if isinstance(choice, str) else type(choice)
        if (isinstance(value, str) if kind is str else type(value) is kind) and value == choice:
            return choice
    listed = ", ".join(repr(c) for c in choices)
    raise error(f"{what} must be one of {listed}; got {describe(value)}")


def float_of(number: numbers.Real) -> float:
    """A real number as a float; an integer beyond the float range rounds to ``±inf``.

    IEEE 754 rounds an overflowing result to infinity; Python's ``float(10**400)`` raises
    ``OverflowError`` instead.

    >>> float_of(3), float_of(-(10**400))
    (3.0, -inf)
    """
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


# classes of scalar expressions seen by as_expr (isinstance against SymPy's ABCs is slow)
_SCALAR_TYPES: set[type] = set()


def as_expr(obj: object, what: str = "expression") -> sp.Expr:
    """``obj`` as a scalar SymPy expression.

    Args:
        obj: a SymPy ``Expr``, a Python/NumPy real number, or an object with ``_sympy_()``.
        what: how to name the argument in an error message.

    Returns:
        A SymPy expression.

    Raises:
        InputTypeError: for strings, booleans, matrices, containers and anything else.

    >>> as_expr(0.5)
    0.500000000000000
    >>> as_expr("x")
    Traceback (most recent call last):
    ...
    symgrad.errors.InputTypeError: expression must be a SymPy expression, got a string ('x'); \
turn text into an expression with symgrad.parse(text)
    """
    if type(obj) in _SCALAR_TYPES:
        return obj
    if isinstance(obj, sp.Expr) and not isinstance(obj, sp.MatrixBase):
        if isinstance(obj, sp.MatrixExpr):
            raise InputTypeError(
                f"{what} must be a scalar expression, got the matrix expression {obj}"
            )
        _SCALAR_TYPES.add(type(obj))
        return obj
    if isinstance(obj, str):
        raise InputTypeError(
            f"{what} must be a SymPy expression, got a string ({obj[:40]!r}); turn text into an "
            "expression with symgrad.parse(text)"
        )
    if isinstance(obj, bool) or obj is None:
        raise InputTypeError(f"{what} must be a SymPy expression, got {obj!r}")
    if isinstance(obj, numbers.Integral):
        return sp.Integer(int(obj))
    if isinstance(obj, numbers.Real):
        return sp.Float(float(obj))
    if isinstance(obj, numbers.Complex):
        return sp.Float(obj.real) + sp.I * sp.Float(obj.imag)
    convert = getattr(obj, "_sympy_", None)
    if callable(convert) and not isinstance(obj, type):
        out = convert()
        if isinstance(out, sp.Expr):
            return out
    if isinstance(obj, (sp.MatrixBase, list, tuple)):
        raise InputTypeError(
            f"{what} must be a single scalar expression, got {describe(obj)}; "
            "use symgrad.jacobian for several outputs"
        )
    raise InputTypeError(f"{what} must be a SymPy expression, got {describe(obj)}")


def as_exprs(obj: object, what: str = "expressions") -> list[sp.Expr]:
    """A flat list of scalar expressions from one expression, a sequence or a SymPy matrix.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> as_exprs(sp.Matrix([[x, 1]]))
    [x, 1]
    """
    if isinstance(obj, sp.MatrixBase):
        return [as_expr(e, what) for e in obj]
    if isinstance(obj, (list, tuple)):
        if not obj:
            raise InputTypeError(f"{what} is empty; give at least one expression")
        return [as_expr(e, f"{what}[{i}]") for i, e in enumerate(obj)]
    return [as_expr(obj, what)]


def _symbol(obj: object, expr: sp.Basic | None, what: str) -> sp.Symbol:
    if isinstance(obj, sp.Symbol):
        return obj
    if isinstance(obj, str):
        if expr is not None:
            # graph.free_symbols is iterative: SymPy's .free_symbols recurses on deep graphs
            found = [s for s in free_symbols([expr]) if getattr(s, "name", None) == obj]
            if len(found) > 1:
                raise InputTypeError(
                    f"{what}: the expression has {len(found)} different symbols named {obj!r} "
                    "(with different assumptions); pass the Symbol object itself"
                )
            if found:
                return found[0]
        if not obj.isidentifier() or keyword.iskeyword(obj):
            raise InputTypeError(
                f"{what}: {obj!r} is not a valid symbol name (use a Python identifier such as x1)"
            )
        return sp.Symbol(obj)
    convert = getattr(obj, "_sympy_", None)
    if callable(convert) and not isinstance(obj, type):
        out = convert()
        if isinstance(out, sp.Symbol):
            return out
        raise InputTypeError(
            f"{what}: can only differentiate with respect to a leaf (a symbol), got the node {out}"
        )
    if isinstance(obj, sp.Basic):
        raise InputTypeError(
            f"{what} must be a Symbol, got {type(obj).__name__} {obj}; introduce a symbol for it"
        )
    raise InputTypeError(f"{what} must be a Symbol or a symbol's name, got {describe(obj)}")


def as_symbols(
    wrt: object, expr: sp.Basic | None = None, what: str = "wrt"
) -> tuple[list[sp.Symbol], bool]:
    """``wrt`` as a list of symbols, and whether a single symbol (not a sequence) was given.

    Args:
        wrt: a Symbol, a symbol's name, or a sequence (list, tuple, SymPy matrix) of those.
        expr: where to look names up (so ``"x"`` finds ``Symbol("x", real=True)``).
        what: how to name the argument in an error message.

    Returns:
        ``(symbols, single)``.

    Raises:
        InputTypeError: for anything that is not a symbol, or an empty sequence.

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> as_symbols([x, "y"], x + y)
    ([x, y], False)
    """
    if isinstance(wrt, (sp.Symbol, str)) or (
        hasattr(wrt, "_sympy_") and not isinstance(wrt, (sp.Basic, Iterable))
    ):
        return [_symbol(wrt, expr, what)], True
    if isinstance(wrt, (sp.MatrixBase, list, tuple)):
        items = list(wrt)
        if not items:
            raise InputTypeError(f"{what} is empty; give at least one symbol")
        return [_symbol(s, expr, f"{what}[{i}]") for i, s in enumerate(items)], False
    return [_symbol(wrt, expr, what)], True


def point_values(
    at: object,
    expr: sp.Basic,
    defaults: Mapping[object, object] | None = None,
    when_missing: str = "",
) -> dict[sp.Symbol, float] | None:
    """A number for every free symbol of ``expr`` from ``at`` (over ``defaults``), or ``None``.

    Values for symbols that ``expr`` does not contain are ignored, as ``expr.subs`` does.

    Args:
        at: ``{symbol or name: real number}``, or ``None`` for no numbers.
        expr: the expression whose symbols need values.
        defaults: values used where ``at`` gives none (e.g. a ``Value``'s own data).
        when_missing: advice appended to the error when a symbol has no value.

    Returns:
        ``{symbol: float}``, or ``None`` when neither ``at`` nor ``defaults`` gives anything.

    Raises:
        InputTypeError: ``at`` is not a mapping, or a value is not a real number.
        MissingSymbolError: a symbol of the expression has no value.

    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> point_values({"x": 2, y: 0.5}, x * y)
    {x: 2.0, y: 0.5}
    """
    if at is None and not defaults:
        return None
    if at is not None and not isinstance(at, Mapping):
        raise InputTypeError(f"at must be a dict {{symbol: number}}, got {describe(at)}")
    leaves = free_symbols([expr])
    known = set(leaves)
    vals: dict[sp.Symbol, float] = {}
    for key, value in [*(defaults or {}).items(), *(at or {}).items()]:
        (sym,), _ = as_symbols(key, expr, "at key")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InputTypeError(f"at[{sym}] must be a real number, got {describe(value)}")
        if sym in known:  # SymPy's subs convention: a value for another symbol is ignored
            vals[sym] = float_of(value)
    missing = [str(s) for s in leaves if s not in vals]
    if missing:
        raise MissingSymbolError(
            f"at has no value for {', '.join(missing)}; give a number for every symbol"
            + (f" ({when_missing})" if when_missing else "")
        )
    return vals
