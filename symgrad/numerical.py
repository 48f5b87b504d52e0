"""Numerical differentiation: an independent oracle for checking symbolic derivatives.

This module imports only NumPy, the standard library and :mod:`symgrad.errors`; it knows nothing
about SymPy and works on any Python callable. Methods (``method=``):

* ``"forward"`` / ``"backward"``: one-sided differences, error ``O(h)``.
* ``"central"`` (default): ``(f(x+h) - f(x-h)) / 2h``, error ``O(h^2)``.
* ``"five-point"``: ``(f(x-2h) - 8f(x-h) + 8f(x+h) - f(x+2h)) / 12h``, error ``O(h^4)``.
* ``"richardson"``: central differences at ``h0, h0/2, h0/4, ...`` extrapolated to ``h = 0``
  with a Neville tableau; the entry with the smallest error estimate wins (Ridders' method).
* ``"complex"``: the complex step ``Im f(x + ih) / h``: no subtraction, so no cancellation; exact
  to rounding for real-analytic ``f`` written with complex-safe operations (no ``abs``, ``conj``,
  ``real``, ``math.*``).

Default steps come from :func:`step_size`; a finite-difference step is rounded so that ``x + h``
is exactly representable (``h = (x + h) - x``), which removes one rounding error from the quotient.

>>> float(derivative(lambda x: 3 * x**2 - 4 * x + 5, 3.0))
14.0
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import DomainError, InputTypeError, OptionError, ShapeError

__all__ = ["METHODS", "derivative", "gradient", "hessian", "jacobian", "step_size"]

METHODS = ("forward", "backward", "central", "five-point", "richardson", "complex")

_EPS = float(np.finfo(np.float64).eps)
_ComplexWarning = getattr(np, "exceptions", np).ComplexWarning

# Base steps, multiplied by max(1, |x|) (relative for large x, absolute near 0). Each balances
# truncation error C*h^p against rounding error eps*|f|/h^d (d = derivative order), optimal at
# h ~ eps^(1/(p+d)):
#   1st derivative: forward/backward p=1 -> eps^(1/2); central p=2 -> eps^(1/3) (error ~eps^(2/3)
#   ~ 4e-11); five-point p=4 -> eps^(1/5).
#   2nd derivative (the stencil applied twice): forward p=1 -> eps^(1/3); central p=2 -> eps^(1/4);
#   five-point p=4 -> eps^(1/6).
# Richardson starts large (extrapolation removes the truncation error) and halves 7 times, so the
# smallest step h0/128 still keeps rounding ~eps/h small; h0 = 0.02 keeps f's sampled domain small.
# The complex step has no cancellation, so any tiny h works (Squire & Trapp, SIAM Rev. 1998); for
# the Hessian the complex-step gradient is differenced once more with a central step.
_BASE_STEP = {
    1: {
        "forward": _EPS ** (1 / 2),
        "backward": _EPS ** (1 / 2),
        "central": _EPS ** (1 / 3),
        "five-point": _EPS ** (1 / 5),
        "richardson": 0.02,
        "complex": 1e-20,
    },
    2: {
        "forward": _EPS ** (1 / 3),
        "backward": _EPS ** (1 / 3),
        "central": _EPS ** (1 / 4),
        "five-point": _EPS ** (1 / 6),
        "richardson": 0.05,
        "complex": _EPS ** (1 / 3),  # outer central difference of complex-step gradients
    },
}
_RICHARDSON_LEVELS = 8  # central differences at h0 / 2**k, k = 0..7

_ELEMENTWISE = "derivative() needs an elementwise f: output shape = input shape"
_SCALAR = "gradient() and hessian() need f to return a scalar; use jacobian() for vectors"
_VECTOR = "jacobian() needs f to return a scalar or 1-D vector of fixed length"

# D f(x) ~ sum(w * f(x + o*h)) / (d * h): (offsets o, integer weights w, divisor d).
_STENCILS = {
    "forward": ((0.0, 1.0), (-1.0, 1.0), 1.0),
    "backward": ((-1.0, 0.0), (-1.0, 1.0), 1.0),
    "central": ((-1.0, 1.0), (-1.0, 1.0), 2.0),
    "five-point": ((-2.0, -1.0, 1.0, 2.0), (1.0, -8.0, 8.0, -1.0), 12.0),
}


# ----------------------------------------------------------------------------- validation
def _check_method(method: object) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise OptionError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    return method


def _check_f(f: object) -> Callable[..., Any]:
    if not callable(f) or isinstance(f, type):  # a class (int, float) is no function of x
        raise InputTypeError(f"f must be a callable (e.g. lambda x: x**2), got {type(f).__name__}")
    return f


def _as_real(value: object, name: str) -> np.ndarray:
    """A float64 copy of ``value``; rejects strings, bools, complex and non-finite values."""
    if isinstance(value, (str, bytes, bool, np.bool_)) or value is None:
        raise InputTypeError(f"{name} must be a real number or array of them, got {value!r}")
    try:
        arr = np.array(value)  # always a copy: the caller's array is never touched
        if arr.dtype.kind == "O":
            arr = arr.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise InputTypeError(f"{name} must be real numbers, got {value!r} ({err})") from err
    if arr.dtype.kind not in "iuf":
        raise InputTypeError(f"{name} must be real numbers, got dtype {arr.dtype} from {value!r}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise DomainError(f"{name} must be finite, got {value!r}")
    return arr


def _as_vector(x: object) -> np.ndarray:
    """x for gradient/jacobian/hessian: 1-D; a scalar counts as a vector of length 1."""
    arr = _as_real(x, "x")
    if arr.ndim > 1:
        raise ShapeError(f"x must be a 1-D vector (shape (n,)), got shape {arr.shape}; flatten it")
    return arr.reshape(-1)


def _steps(h: object, x: np.ndarray, method: str, order: int) -> np.ndarray:
    """Steps of x's shape: the default, or the caller's h (positive, broadcast to x)."""
    if h is None:
        return _default_step(method, x, order)
    steps = _as_real(h, "h")
    try:
        steps = np.broadcast_to(steps, x.shape).copy()
    except ValueError as err:
        raise ShapeError(f"h has shape {steps.shape}, which does not fit x's {x.shape}") from err
    if np.any(steps <= 0):
        raise OptionError(f"h must be positive, got {h!r}")
    return _representable(x, steps) if method != "complex" or order == 2 else steps


def _representable(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    # x + h is rounded; using h' = (x + h) - x makes the step actually taken equal the divisor.
    return (x + h) - x


def _default_step(method: str, x: np.ndarray, order: int) -> np.ndarray:
    h = _BASE_STEP[order][method] * np.maximum(1.0, np.abs(x))
    return h if method == "complex" and order == 1 else _representable(x, h)


def _output(value: object, shape: tuple[int, ...] | None, what: str) -> np.ndarray:
    """f's result as a float64 array of the expected shape (None: any 0-D or 1-D shape)."""
    out = np.asarray(value)
    if out.dtype.kind == "O":
        try:
            out = out.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise InputTypeError(f"f must return real numbers, got {value!r}") from err
    if out.dtype.kind not in "biuf":
        raise InputTypeError(f"f must return real numbers, got dtype {out.dtype} ({value!r})")
    _check_shape(out, shape, what)
    return out.astype(np.float64)


def _check_shape(out: np.ndarray, shape: tuple[int, ...] | None, what: str) -> None:
    if shape is None and out.ndim > 1:
        raise ShapeError(f"f returned shape {out.shape}; {what}")
    if shape is not None and out.shape != shape:
        raise ShapeError(f"f returned shape {out.shape}, expected {shape}; {what}")


def _call_complex(
    f: Callable[..., Any], z: Any, shape: tuple[int, ...] | None, what: str
) -> np.ndarray:
    """Im f(z) for the complex step; a clear error if f cannot carry the imaginary part."""
    hint = "use method='richardson' or 'central' instead"
    try:
        with warnings.catch_warnings():  # a silent complex->real cast would give a wrong 0
            warnings.simplefilter("error", _ComplexWarning)
            value = f(z)
    except (TypeError, AttributeError, _ComplexWarning) as err:
        raise OptionError(
            f"method='complex' calls f with complex numbers and f failed "
            f"({type(err).__name__}: {err}); write f with complex-safe operations "
            f"(NumPy ufuncs, cmath) or {hint}"
        ) from err
    out = np.asarray(value)
    if out.dtype.kind != "c":
        raise OptionError(
            f"method='complex' needs f to keep the imaginary part of its input, but f returned "
            f"real dtype {out.dtype} (abs, real, math.* or float() drop it); {hint}"
        )
    _check_shape(out, shape, what)
    return out.imag.astype(np.float64)


# ----------------------------------------------------------------------------- core schemes
def _stencil(phi: Callable[[float], np.ndarray], h: Any, method: str) -> np.ndarray:
    """First derivative along one direction: phi(o) = f(x + o*h)."""
    offsets, weights, divisor = _STENCILS[method]
    total = sum(w * phi(o) for o, w in zip(offsets, weights, strict=True))
    return np.asarray(total / (divisor * h), dtype=np.float64)


def _richardson(estimate: Callable[[Any], np.ndarray], h0: Any) -> np.ndarray:
    """Extrapolate estimate(h), whose error is a series in h^2, to h = 0 (Ridders' method).

    Neville tableau T[k][j] with steps h0/2^k: T[k][j] = T[k][j-1] + (T[k][j-1] - T[k-1][j-1]) /
    (4^j - 1) cancels the h^(2j) term. The error of an entry is estimated by its distance to its
    two parents; the entry with the smallest estimate is returned (elementwise). Samples outside
    f's domain at the larger steps (nan/inf) only spoil the entries built on them, which then lose
    the contest, so their floating-point warnings are silenced here.
    """
    with np.errstate(all="ignore"):
        prev = [estimate(h0)]
        best, best_err = prev[0], np.full(np.shape(prev[0]), np.inf)
        for k in range(1, _RICHARDSON_LEVELS):
            row = [estimate(h0 / 2.0**k)]
            for j in range(1, k + 1):
                row.append(row[j - 1] + (row[j - 1] - prev[j - 1]) / (4.0**j - 1.0))
                err = np.maximum(np.abs(row[j] - row[j - 1]), np.abs(row[j] - prev[j - 1]))
                take = err <= best_err
                best, best_err = np.where(take, row[j], best), np.where(take, err, best_err)
            prev = row
    return np.asarray(best, dtype=np.float64)


def _directional(
    f: Callable[..., Any], x: np.ndarray, h: np.ndarray, method: str, what: str, scalar: bool
) -> np.ndarray:
    """Columns d f(x) / d x_i for a vector x; f returns a scalar (scalar=True) or a fixed shape."""
    cache: dict[bytes, np.ndarray] = {}
    shape: list[tuple[int, ...] | None] = [() if scalar else None]  # fixed by the first call

    def at(point: np.ndarray) -> np.ndarray:
        key = point.tobytes()
        if key not in cache:
            cache[key] = _output(f(point.copy()), shape[-1], what)
            shape.append(cache[key].shape)
        return cache[key]

    def shifted(i: int, t: float) -> np.ndarray:
        point = x.copy()
        point[i] += t
        return point

    columns = []
    for i in range(x.size):
        if method == "complex":
            z = x.astype(np.complex128)
            z[i] += 1j * h[i]
            col = _call_complex(f, z, shape[-1], what) / h[i]
            shape.append(col.shape)
        elif method == "richardson":

            def central(hi: float, i: int = i) -> np.ndarray:
                hi = float(_representable(x[i], hi))
                return (at(shifted(i, hi)) - at(shifted(i, -hi))) / (2.0 * hi)

            col = _richardson(central, h[i])
        else:
            col = _stencil(lambda o, i=i: at(shifted(i, o * h[i])), h[i], method)
        columns.append(col)
    if not columns:  # n = 0: one call fixes the output shape
        return np.zeros((*at(x).shape, 0))
    return np.stack(columns, axis=-1)


def _hessian_fd(f: Callable[..., Any], x: np.ndarray, h: np.ndarray, method: str) -> np.ndarray:
    """H_ij = D_i D_j f with D the method's 1-D stencil (its tensor product; also for i = j).

    For "central" this is the standard 4-point formula [f(++) - f(+-) - f(-+) + f(--)]/(4 h_i h_j)
    and, on the diagonal, [f(x+2h) - 2f(x) + f(x-2h)] / 4h^2. Only i <= j is evaluated.
    """
    offsets, weights, divisor = _STENCILS[method]
    cache: dict[bytes, float] = {}

    def at(point: np.ndarray) -> float:
        key = point.tobytes()
        if key not in cache:
            cache[key] = float(_output(f(point.copy()), (), _SCALAR))
        return cache[key]

    n = x.size
    H = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            total = 0.0
            for oa, wa in zip(offsets, weights, strict=True):
                for ob, wb in zip(offsets, weights, strict=True):
                    point = x.copy()
                    point[i] += oa * h[i]
                    point[j] += ob * h[j]
                    total += wa * wb * at(point)
            H[i, j] = H[j, i] = total / (divisor**2 * h[i] * h[j])
    return H


# ----------------------------------------------------------------------------- public API
def step_size(method: str, x: Any, *, order: int = 1) -> Any:
    """The default step of ``method`` at ``x`` (elementwise for arrays).

    ``base * max(1, |x|)`` with base ``sqrt(eps)`` (forward, backward), ``cbrt(eps)`` (central),
    ``eps**(1/5)`` (five-point), ``0.02`` (richardson: the *start* step, halved 7 times) and
    ``1e-20`` (complex). For ``order=2`` (the Hessian) the bases are ``eps**(1/3)``, ``eps**(1/4)``,
    ``eps**(1/6)``, ``0.05`` and, for complex, ``cbrt(eps)`` (the central step between complex-step
    gradients). Finite-difference steps are rounded so that ``x + h`` is exact.

    Args:
        method: one of :data:`METHODS`.
        x: the point (number or array).
        order: 1 for first derivatives, 2 for the Hessian.

    Returns:
        A float for scalar ``x``, else a float64 array of ``x``'s shape.

    Raises:
        OptionError: unknown ``method`` or ``order`` not 1 or 2.
        InputTypeError: ``x`` is not real numbers.
        DomainError: ``x`` is not finite.

    >>> step_size("central", 0.0)  # cbrt(eps) = 2**(-52/3)
    6.055454452393343e-06
    >>> step_size("forward", [1.0, 1e4])
    array([1.49011612e-08, 1.49011612e-04])
    """
    method = _check_method(method)
    if type(order) is not int or order not in (1, 2):  # an array never reaches the ==
        raise OptionError(f"order must be one of 1, 2; got {order!r}")
    arr = _as_real(x, "x")
    h = _default_step(method, arr, order)
    return float(h) if arr.ndim == 0 else h


def derivative(f: Callable[..., Any], x: Any, *, method: str = "central", h: Any = None) -> Any:
    """Derivative of a scalar function of one variable, at one point or elementwise on an array.

    For an array ``x``, ``f`` is called with whole arrays and must act elementwise (like a NumPy
    ufunc); the derivative at every point comes from the same few calls.

    Args:
        f: callable taking a float (or an array of floats) and returning the same shape.
        x: the point(s): a real number or an array of them (not modified).
        method: one of :data:`METHODS`.
        h: step (scalar or broadcastable to ``x``); default :func:`step_size`. For "richardson"
            the start step, for "complex" the imaginary step.

    Returns:
        ``np.float64`` for scalar ``x``, else a float64 array of ``x``'s shape.

    Raises:
        InputTypeError: ``f`` is not callable, or ``x``/``h``/f's output are not real numbers.
        ShapeError: f's output shape differs from ``x``'s.
        OptionError: unknown method, ``h <= 0``, or f cannot take complex input (method "complex").
        DomainError: ``x`` is not finite.

    >>> f = lambda x: 3 * x**2 - 4 * x + 5  # micrograd's example: f'(x) = 6x - 4
    >>> float(derivative(f, 3.0, method="forward", h=0.001))  # 14 + 3h
    14.003
    >>> derivative(np.sin, np.array([0.0, np.pi]), method="complex")
    array([ 1., -1.])
    """
    f, method = _check_f(f), _check_method(method)
    x = _as_real(x, "x")
    h = _steps(h, x, method, order=1)
    shape, scalar = x.shape, x.ndim == 0
    arg = (lambda a: a[()]) if scalar else (lambda a: a)  # scalars go in as np.float64

    if method == "complex":
        d = _call_complex(f, arg(x + 1j * h), shape, _ELEMENTWISE) / h
    elif method == "richardson":

        def central(step: np.ndarray) -> np.ndarray:
            step = _representable(x, step)
            plus = _output(f(arg(x + step)), shape, _ELEMENTWISE)
            minus = _output(f(arg(x - step)), shape, _ELEMENTWISE)
            return (plus - minus) / (2.0 * step)

        d = _richardson(central, h)
    else:
        d = _stencil(lambda o: _output(f(arg(x + o * h)), shape, _ELEMENTWISE), h, method)
    return np.float64(d) if scalar else d


def gradient(f: Callable[..., Any], x: Any, *, method: str = "central", h: Any = None) -> Any:
    """Gradient of a scalar function of a vector, one coordinate at a time.

    Args:
        f: callable taking a float64 vector of shape ``(n,)`` and returning a scalar.
        x: the point, shape ``(n,)``; a scalar counts as ``n = 1`` (f then gets shape ``(1,)``).
        method: one of :data:`METHODS`.
        h: step, scalar or per-coordinate shape ``(n,)``; default :func:`step_size`.

    Returns:
        float64 array of shape ``(n,)``.

    Raises:
        InputTypeError: ``f`` not callable, or ``x``/``h``/f's output not real numbers.
        ShapeError: ``x`` not 1-D, or f returns a non-scalar (use :func:`jacobian`).
        OptionError: unknown method, ``h <= 0``, or f cannot take complex input.
        DomainError: ``x`` is not finite.

    >>> gradient(lambda v: v[0] ** 2 * v[1], [3.0, 2.0], method="richardson")
    array([12., 9.])
    """
    f, method = _check_f(f), _check_method(method)
    x = _as_vector(x)
    h = _steps(h, x, method, order=1)
    return _directional(f, x, h, method, _SCALAR, scalar=True)


def jacobian(f: Callable[..., Any], x: Any, *, method: str = "central", h: Any = None) -> Any:
    """Jacobian ``J[i, j] = d f_i / d x_j`` of a vector function ``f: R^n -> R^m``.

    Args:
        f: callable taking a float64 vector of shape ``(n,)`` and returning shape ``(m,)``
            (a scalar counts as ``m = 1``).
        x: the point, shape ``(n,)``; a scalar counts as ``n = 1``.
        method: one of :data:`METHODS`.
        h: step, scalar or per-coordinate shape ``(n,)``; default :func:`step_size`.

    Returns:
        float64 array of shape ``(m, n)``.

    Raises:
        InputTypeError: ``f`` not callable, or ``x``/``h``/f's output not real numbers.
        ShapeError: ``x`` not 1-D, f's output not 0-D/1-D or its shape changes between calls.
        OptionError: unknown method, ``h <= 0``, or f cannot take complex input.
        DomainError: ``x`` is not finite.

    >>> jacobian(lambda v: np.array([v[0] * v[1], np.sin(v[0])]), [0.0, 2.0], method="complex")
    array([[2., 0.],
           [1., 0.]])
    """
    f, method = _check_f(f), _check_method(method)
    x = _as_vector(x)
    h = _steps(h, x, method, order=1)
    J = _directional(f, x, h, method, _VECTOR, scalar=False)
    return J.reshape(J.shape[0] if J.ndim == 2 else 1, x.size)


def hessian(f: Callable[..., Any], x: Any, *, method: str = "central", h: Any = None) -> Any:
    """Hessian ``H[i, j] = d^2 f / dx_i dx_j`` of a scalar function of a vector; symmetric.

    * "forward", "backward", "central", "five-point": the 1-D stencil applied in direction i
      and then j (for "central": the 4-point mixed formula; diagonal with step 2h). Only
      ``i <= j`` is computed and mirrored, so the result is exactly symmetric.
    * "richardson": the central Hessian at ``h0, h0/2, ...`` extrapolated entrywise (its error is
      a series in h^2, as for first derivatives).
    * "complex": central differences of complex-step gradients,
      ``H[:, i] = (g(x + h e_i) - g(x - h e_i)) / 2h``, then ``(H + H.T) / 2``. Sound because the
      complex-step gradient is accurate to rounding; ``h`` is this outer central step.

    Args:
        f: callable taking a float64 vector of shape ``(n,)`` and returning a scalar.
        x: the point, shape ``(n,)``; a scalar counts as ``n = 1``.
        method: one of :data:`METHODS`.
        h: step, scalar or shape ``(n,)``; default :func:`step_size` with ``order=2``.

    Returns:
        float64 array of shape ``(n, n)``.

    Raises:
        InputTypeError: ``f`` not callable, or ``x``/``h``/f's output not real numbers.
        ShapeError: ``x`` not 1-D, or f returns a non-scalar.
        OptionError: unknown method, ``h <= 0``, or f cannot take complex input.
        DomainError: ``x`` is not finite.

    >>> hessian(lambda v: v[0] ** 2 * v[1], [3.0, 2.0], method="richardson")
    array([[4., 6.],
           [6., 0.]])
    """
    f, method = _check_f(f), _check_method(method)
    x = _as_vector(x)
    h = _steps(h, x, method, order=2)
    if method == "complex":
        inner = _default_step("complex", x, 1)

        def grad(point: np.ndarray) -> np.ndarray:
            return _directional(f, point, inner, "complex", _SCALAR, scalar=True)

        H = np.zeros((x.size, x.size))
        for i in range(x.size):
            plus, minus = x.copy(), x.copy()
            plus[i] += h[i]
            minus[i] -= h[i]
            H[:, i] = (grad(plus) - grad(minus)) / (2.0 * h[i])
        return (H + H.T) / 2.0
    if method == "richardson":
        return _richardson(lambda step: _hessian_fd(f, x, _representable(x, step), "central"), h)
    return _hessian_fd(f, x, h, method)
