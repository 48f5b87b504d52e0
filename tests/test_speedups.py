"""The derive/compile speed-ups keep results exact: checked against sympy.diff and plain counts."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from symgrad.autodiff import sweep
from symgrad.codegen import lambdify
from symgrad.construct import SMALL, add, apply, mul
from symgrad.graph import tree_size

x, y, z = sp.symbols("x y z")


def _count(expr: sp.Basic) -> int:
    # an independent tree size: every node counted at every use
    return 1 + sum(_count(a) for a in expr.args)


@pytest.mark.parametrize(
    "expr", [x, x + 1, sp.sin(x) * sp.sin(x) + 1, (x + y) ** 2 * sp.exp(x + y) - z, sp.Integer(3)]
)
def test_tree_size_counts_and_saturates(expr):
    n = _count(expr)
    assert tree_size(expr, 1000) == n
    for cap in range(n):
        assert tree_size(expr, cap) == cap + 1


def test_known_small_flag_gives_the_same_value():
    big = add([sp.tanh(x * i + y) for i in range(1, SMALL + 2)])
    for small in (None, False):
        p = mul(sp.Integer(-2), big, sp.cos(z), small=small)
        s = add([big, sp.Integer(3), z], small=small)
        at = {x: 0.3, y: -0.2, z: 0.7}
        assert float(p.subs(at)) == pytest.approx(float((-2 * big * sp.cos(z)).subs(at)))
        assert float(s.subs(at)) == pytest.approx(float((big + 3 + z).subs(at)))
    assert mul(x, sp.Integer(2), small=True) == 2 * x
    assert add([x, x], small=True) == 2 * x


def _mlp_loss(h: int):
    w = iter(sp.symbols(f"p0:{3 * h + h * h + 2 * h + 1}"))
    params = []

    def nxt():
        params.append(next(w))
        return params[-1]

    hidden = [apply(sp.tanh, add([mul(nxt(), x), mul(nxt(), y), nxt()])) for _ in range(h)]
    hidden = [apply(sp.tanh, add([*[mul(nxt(), a) for a in hidden], nxt()])) for _ in range(h)]
    score = add([*[mul(nxt(), a) for a in hidden], nxt()])
    return sp.Pow(add([score, mul(sp.S.NegativeOne, z)]), 2, evaluate=False), params


def test_sweep_on_an_mlp_matches_sympy_diff():
    loss, params = _mlp_loss(3)
    g = sweep([loss], params)[0]
    ours = lambdify([g[p] for p in params], [x, y, z, params])
    theirs = sp.lambdify([x, y, z, params], [sp.diff(loss, p) for p in params])
    rng = np.random.default_rng(3)
    for _ in range(3):
        pt = rng.uniform(-1, 1, 3)
        pv = rng.uniform(-1, 1, len(params))
        np.testing.assert_allclose(ours(*pt, pv), theirs(*pt, pv), rtol=1e-10, atol=1e-12)
