"""Gradient checks: symbolic gradients against the independent numerical oracle.

:func:`check_grad` compiles an expression and its reverse-mode gradient, differentiates the
compiled value numerically with :mod:`symgrad.numerical` (which knows nothing of SymPy), and
compares the two variable by variable. :func:`check_grad_fn` does the same for any pair of
Python callables, e.g. a gradient written by hand.

>>> import sympy as sp
>>> x, y = sp.symbols("x y")
>>> report = check_grad(sp.sin(x) * sp.exp(y), at={x: 0.5, y: -1.0})
>>> report.ok
True
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from . import numerical
from .autodiff import sweep
from .codegen import lambdify
from .errors import (
    DomainError,
    GradientCheckError,
    InputTypeError,
    MissingSymbolError,
    OptionError,
    ShapeError,
)
from .graph import free_symbols
from .inputs import as_expr, as_symbols, describe, float_of
from .markup import html_table

__all__ = ["GradCheckReport", "VariableCheck", "check_grad", "check_grad_fn"]


@dataclass(frozen=True)
class VariableCheck:
    """The comparison for one variable, at the point where its error is largest.

    Attributes:
        name: the variable's name.
        symbolic: the symbolic (exact) gradient there.
        numerical: the numerical estimate there.
        abs_error: the largest ``|symbolic - numerical|`` over all points.
        rel_error: the largest ``|symbolic - numerical| / max(|symbolic|, |numerical|)``.
        step: the finite-difference step used there.
        ok: whether ``|symbolic - numerical| <= atol + rtol * |numerical|`` at every point.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> row = check_grad(x**2, at={x: 1.5}).rows[0]
    >>> row.name, row.symbolic, row.ok
    ('x', 3.0, True)
    """

    name: str
    symbolic: float
    numerical: float
    abs_error: float
    rel_error: float
    step: float
    ok: bool


@dataclass(frozen=True)
class GradCheckReport:
    """The result of a gradient check: one :class:`VariableCheck` per variable.

    Printing it gives a table. ``ok`` is true when every variable passed.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> print(check_grad(x**3, at={x: 2.0}))  # doctest: +ELLIPSIS
    gradient check (central differences, rtol=1e-06, atol=1e-08, 1 point): passed
    variable  symbolic  numerical  abs error  rel error  step  ok
    x         12        12         ...
    """

    rows: tuple[VariableCheck, ...]
    method: str
    rtol: float
    atol: float
    points: int

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def failures(self) -> tuple[VariableCheck, ...]:
        """The variables that failed."""
        return tuple(r for r in self.rows if not r.ok)

    def _title(self) -> str:
        method = {"central": "central differences", "complex": "complex step"}.get(
            self.method, self.method
        )
        return (
            f"gradient check ({method}, rtol={self.rtol:g}, atol={self.atol:g}, "
            f"{self.points} point{'s' if self.points != 1 else ''}): "
            f"{'passed' if self.ok else 'FAILED for ' + ', '.join(r.name for r in self.failures)}"
        )

    def _table(self) -> list[tuple[str, ...]]:
        table = [("variable", "symbolic", "numerical", "abs error", "rel error", "step", "ok")]
        for r in self.rows:
            table.append(
                (
                    r.name,
                    f"{r.symbolic:.10g}",
                    f"{r.numerical:.10g}",
                    f"{r.abs_error:.2e}",
                    f"{r.rel_error:.2e}",
                    f"{r.step:.1e}",
                    "yes" if r.ok else "NO",
                )
            )
        return table

    def __str__(self) -> str:
        table = self._table()
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
        return "\n".join([self._title(), *(line.rstrip() for line in lines)])

    def __repr__(self) -> str:
        worst = max((r.rel_error for r in self.rows), default=0.0)
        state = "passed" if self.ok else "FAILED for " + ", ".join(r.name for r in self.failures)
        count = f"{len(self.rows)} variable{'s' if len(self.rows) != 1 else ''}"
        return f"<GradCheckReport {state}: {count}, {self.method}, max rel error {worst:.1e}>"

    def _repr_html_(self) -> str:
        header, *rows = self._table()
        return html_table(list(header), [list(r) for r in rows], caption=self._title())

    def raise_if_failed(self) -> GradCheckReport:
        """Raise :class:`~symgrad.errors.GradientCheckError` naming the failed variables.

        Returns:
            The report itself when everything passed.
        """
        if not self.ok:
            names = ", ".join(r.name for r in self.failures)
            raise GradientCheckError(
                f"symbolic and numerical gradients disagree for {names}\n{self}", report=self
            )
        return self


def _compare(
    names: Sequence[str],
    points: Sequence[np.ndarray],
    exact: Callable[[np.ndarray], np.ndarray],
    value: Callable[[np.ndarray], Any],
    method: str,
    h: Any,
    rtol: float,
    atol: float,
) -> GradCheckReport:
    n = len(names)
    worst_abs = np.full(n, -1.0)
    worst_rel = np.zeros(n)
    shown: list[tuple[float, float, float]] = [(np.nan, np.nan, np.nan)] * n
    ok = np.ones(n, dtype=bool)
    for x in points:
        try:
            with np.errstate(all="ignore"):  # nan and inf are reported, not warned about
                sym = np.asarray(exact(x), dtype=float).reshape(-1)
                num = numerical.gradient(value, x, method=method, h=h)
        except ArithmeticError as exc:  # e.g. a Python float division by zero in f
            where = ", ".join(
                f"{name}={v:g}" for name, v in zip(names, np.ravel(x).tolist(), strict=False)
            )
            raise DomainError(
                f"the function or its gradient cannot be evaluated at {where} "
                f"({type(exc).__name__}: {exc}); choose a point inside the domain"
            ) from None
        if sym.shape != (n,):
            raise ShapeError(f"the gradient has shape {sym.shape}, expected ({n},)")
        step = np.broadcast_to(
            numerical.step_size(method, x) if h is None else np.asarray(h, float), (n,)
        )
        err = np.abs(sym - num)
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.maximum(np.abs(sym), np.abs(num))
            rel = np.where(scale > 0, err / scale, 0.0)
        good = err <= atol + rtol * np.abs(num)  # false for nan
        ok &= good
        err = np.where(np.isnan(err), np.inf, err)  # a nan is the worst error of all
        rel = np.where(np.isnan(rel), np.inf, rel)
        for i in np.flatnonzero(err > worst_abs):
            worst_abs[i] = err[i]
            shown[i] = (sym[i], num[i], step[i])
        worst_rel = np.maximum(worst_rel, rel)
    rows = tuple(
        VariableCheck(
            names[i],
            float(shown[i][0]),
            float(shown[i][1]),
            float(worst_abs[i]),
            float(worst_rel[i]),
            float(shown[i][2]),
            bool(ok[i]),
        )
        for i in range(n)
    )
    return GradCheckReport(rows, method, rtol, atol, len(points))


def _points(values: Sequence[Any], what: str) -> list[np.ndarray]:
    """Broadcast per-variable values (numbers or arrays) into a list of points."""
    try:
        arrays = np.broadcast_arrays(*[np.asarray(v, dtype=float) for v in values])
    except (ValueError, TypeError) as exc:
        raise ShapeError(f"{what}: the values do not broadcast to common points: {exc}") from exc
    if not arrays:
        return [np.zeros(0)]
    stacked = np.stack([a.reshape(-1) for a in arrays], axis=1)
    if stacked.shape[0] == 0:
        raise ShapeError(f"{what}: no points given (empty arrays)")
    return list(stacked)


def _tolerance(value: Any, name: str) -> float:
    """``rtol``/``atol`` as a float: a real number, finite and >= 0."""
    if isinstance(value, sp.Basic) and value.is_number and value.is_extended_real:
        value = float(value)  # SymPy numbers, oo included (refused below)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must be a real number such as 1e-6, got {describe(value)}")
    value = float_of(value)
    if not (math.isfinite(value) and value >= 0):
        raise OptionError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _names(names: Any, n: int) -> list[str]:
    if names is None:
        return [f"x[{i}]" for i in range(n)]
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
        raise InputTypeError(f"names must be a list of strings, got {describe(names)}")
    if len(names) != n:
        raise ShapeError(f"names has {len(names)} entries for {n} variables")
    return [str(v) for v in names]


def check_grad(
    expr: Any,
    wrt: Any = None,
    at: Mapping[Any, Any] | None = None,
    *,
    method: str = "central",
    h: Any = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    raise_on_failure: bool = True,
    backend: str = "numpy",
) -> GradCheckReport:
    """Compare symgrad's exact gradient of ``expr`` with a numerical one.

    Args:
        expr: a scalar expression.
        wrt: symbols (or names) to check; default every free symbol, sorted by name.
        at: a value for every free symbol (``{symbol or name: number or array}``); arrays
            broadcast together and give several points.
        method: a method of :mod:`symgrad.numerical` (``"central"``, ``"five-point"``,
            ``"richardson"``, ``"complex"``...).
        h: the finite-difference step; default :func:`symgrad.numerical.step_size`.
        rtol, atol: a variable passes where ``|exact - numerical| <= atol + rtol*|numerical|``.
        raise_on_failure: raise instead of returning a failed report.
        backend: the target both the value and the gradient are compiled for (see
            :func:`symgrad.lambdify`); ``"jax"`` checks JAX's float64 code (64-bit mode on).

    Returns:
        A :class:`GradCheckReport`.

    Raises:
        GradientCheckError: a variable failed (and ``raise_on_failure``); the message names it.
        MissingSymbolError: ``at`` lacks a value for a free symbol (values for other symbols
            are ignored, as ``subs`` does).
        InputTypeError: ``rtol`` or ``atol`` is not a real number.
        OptionError: ``rtol`` or ``atol`` is negative or not finite.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> check_grad(3 * x**2 - 4 * x + 5, at={"x": 3.0}).rows[0].symbolic
    14.0
    """
    rtol, atol = _tolerance(rtol, "rtol"), _tolerance(atol, "atol")
    e = as_expr(expr)
    symbols = sorted(free_symbols([e]), key=lambda s: s.name)
    if at is None or not isinstance(at, Mapping):
        raise InputTypeError(
            f"at must be a mapping from symbols to values, got {describe(at)}; "
            "e.g. at={x: 1.0, y: 2.0}"
        )
    values: dict[sp.Symbol, Any] = {}
    for key, val in at.items():
        (sym,), _ = as_symbols(key, e, "at")
        values[sym] = val
    syms = symbols if wrt is None else as_symbols(wrt, e)[0]
    missing = list(dict.fromkeys(s for s in [*symbols, *syms] if s not in values))
    if missing:
        raise MissingSymbolError(
            f"at has no value for {', '.join(map(str, missing))}; give a value for every symbol "
            "of the expression and of wrt"
        )
    others = [s for s in values if s not in set(syms)]
    gradient = sweep([e], syms)[0]
    f = lambdify(e, [syms, others], backend)
    g = lambdify([[gradient.get(s, sp.S.Zero) for s in syms]], [syms, others], backend)
    order = list(syms) + others
    pts = _points([values[s] for s in order], "at")
    k = len(syms)
    reports = []
    for p in pts:
        fixed = p[k:].tolist()
        reports.append(
            _compare(
                [s.name for s in syms],
                [p[:k]],
                lambda x, fixed=fixed: g(x, fixed)[0],
                lambda x, fixed=fixed: f(x, fixed),
                method,
                h,
                rtol,
                atol,
            )
        )
    report = _merge(reports)
    return report.raise_if_failed() if raise_on_failure else report


def _merge(reports: list[GradCheckReport]) -> GradCheckReport:
    rows = []
    for i, first in enumerate(reports[0].rows):
        column = [r.rows[i] for r in reports]
        worst = max(column, key=lambda c: c.abs_error)
        rows.append(
            VariableCheck(
                first.name,
                worst.symbolic,
                worst.numerical,
                worst.abs_error,
                max(c.rel_error for c in column),
                worst.step,
                all(c.ok for c in column),
            )
        )
    r0 = reports[0]
    return GradCheckReport(tuple(rows), r0.method, r0.rtol, r0.atol, len(reports))


def check_grad_fn(
    f: Callable[[np.ndarray], Any],
    grad_f: Callable[[np.ndarray], Any],
    x: Any,
    *,
    names: Sequence[str] | None = None,
    method: str = "central",
    h: Any = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    raise_on_failure: bool = True,
) -> GradCheckReport:
    """Compare a gradient function with the numerical gradient of ``f``.

    Args:
        f: ``f(x) -> scalar`` for a vector ``x`` of shape ``(n,)``.
        grad_f: ``grad_f(x) -> array of shape (n,)``, the gradient to check.
        x: one point ``(n,)`` or several points ``(points, n)``.
        names: names of the variables for the report (default ``x[0]``, ``x[1]``, ...).
        method, h, rtol, atol, raise_on_failure: as for :func:`check_grad`.

    Returns:
        A :class:`GradCheckReport`.

    >>> import numpy as np
    >>> f = lambda v: v[0] ** 2 + 3 * v[1]
    >>> check_grad_fn(f, lambda v: np.array([2 * v[0], 3.0]), [1.0, 2.0]).ok
    True
    >>> check_grad_fn(f, lambda v: np.array([2 * v[0], 3.1]), [1.0, 2.0])
    Traceback (most recent call last):
    ...
    symgrad.errors.GradientCheckError: symbolic and numerical gradients disagree for x[1]
    ...
    """
    for obj, what in ((f, "f"), (grad_f, "grad_f")):
        if not callable(obj):
            raise InputTypeError(f"{what} must be callable, got {describe(obj)}")
    rtol, atol = _tolerance(rtol, "rtol"), _tolerance(atol, "atol")
    if isinstance(x, (str, bytes)):
        raise InputTypeError(f"x must be an array of numbers, got {describe(x)}")
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputTypeError(f"x must be an array of numbers, got {describe(x)}") from exc
    if arr.ndim not in (1, 2) or arr.size == 0:
        raise ShapeError(f"x must have shape (n,) or (points, n) with n >= 1, got {arr.shape}")
    pts = [arr] if arr.ndim == 1 else list(arr)
    labels = _names(names, pts[0].shape[0])
    report = _compare(labels, pts, grad_f, f, method, h, rtol, atol)
    return report.raise_if_failed() if raise_on_failure else report
