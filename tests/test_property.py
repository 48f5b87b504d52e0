"""Property tests over random expression DAGs with shared subexpressions.

Expressions are built from a pool of nodes: each new node applies an operation to nodes drawn
from the pool, so later nodes reuse earlier ones (sharing). The operations keep values finite on
the sampled box. ``grad`` must agree with ``sympy.diff`` (30-digit evaluation, 1e-9 relative),
with central differences (1e-6), and ``lambdify`` with ``sympy.lambdify``.
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from symgrad import grad, lambdify, numerical, sigmoid, value_and_grad

X = sp.symbols("x y z", real=True)

UNARY = [
    sp.sin,
    sp.cos,
    sp.tanh,
    sp.atan,
    sigmoid,
    lambda u: sp.exp(sp.tanh(u)),  # bounded argument keeps exp finite
    lambda u: sp.log(1 + u**2),
    lambda u: sp.sqrt(1 + u**2),
    lambda u: u**2,
    lambda u: u**3,
    lambda u: 1 / (2 + sp.sin(u)),
    lambda u: sp.asinh(u),
]
BINARY = [
    lambda a, b: a + b,
    lambda a, b: a - b,
    lambda a, b: a * b,
    lambda a, b: a / (2 + b**2),
    lambda a, b: sp.Rational(3, 2) * a + b,
]


@st.composite
def dags(draw) -> sp.Expr:
    pool: list[sp.Expr] = list(X)
    for _ in range(draw(st.integers(2, 9))):
        if draw(st.booleans()):
            f = draw(st.sampled_from(UNARY))
            pool.append(f(draw(st.sampled_from(pool))))
        else:
            g = draw(st.sampled_from(BINARY))
            pool.append(g(draw(st.sampled_from(pool)), draw(st.sampled_from(pool))))
    # the output combines the last node with an earlier one: shared subexpressions
    return pool[-1] * draw(st.sampled_from(pool)) + pool[-1]


POINT = st.lists(st.floats(-1.5, 1.5, allow_nan=False), min_size=3, max_size=3)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _finite(values) -> bool:
    return all(math.isfinite(v) and abs(v) < 1e8 for v in np.ravel(values))


@SETTINGS
@given(dags(), POINT)
def test_grad_agrees_with_sympy_diff(expr: sp.Expr, point: list[float]) -> None:
    subs = {s: sp.Float(v, 30) for s, v in zip(X, point, strict=True)}
    for s, g in zip(X, grad(expr, list(X)), strict=True):
        ref = complex(sp.diff(expr, s).evalf(30, subs=subs))
        mine = complex(g.evalf(30, subs=subs))
        assume(math.isfinite(abs(ref)))
        assert abs(mine - ref) <= 1e-9 * max(1.0, abs(ref)), (expr, s)


@SETTINGS
@given(dags(), POINT)
def test_compiled_gradient_agrees_with_central_differences(expr, point) -> None:
    f = value_and_grad(expr, list(X))
    value_only = sp.lambdify([list(X)], expr, modules="numpy")  # SymPy's, not ours
    at = np.array(point)
    with np.errstate(all="ignore"):
        value, g = f(at)
        num = numerical.gradient(value_only, at)
    assume(_finite([value]) and _finite(g) and _finite(num))
    np.testing.assert_allclose(value, value_only(at), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-6 * max(1.0, float(np.abs(g).max())))


@SETTINGS
@given(dags(), st.integers(1, 5))
def test_lambdify_agrees_with_sympy_lambdify_on_batches(expr, batch) -> None:
    rng = np.random.default_rng(batch)
    pts = rng.uniform(-1.5, 1.5, size=(3, batch))
    ours = lambdify([expr, grad(expr, list(X), simplify=False)], list(X))
    theirs = sp.lambdify(list(X), [expr, [sp.diff(expr, s) for s in X]], modules="numpy")
    with np.errstate(all="ignore"):
        v1, g1 = ours(*pts)
        v2, g2 = theirs(*pts)
    g2 = np.stack(np.broadcast_arrays(*g2))
    assume(_finite(v2) and _finite(g2))
    np.testing.assert_allclose(v1, v2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-9, atol=1e-9)
