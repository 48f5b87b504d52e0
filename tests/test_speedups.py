"""The derive/compile speed-ups keep results exact: checked against sympy.diff and plain counts."""

from __future__ import annotations

import random

import numpy as np
import pytest
import sympy as sp

from symgrad.autodiff import sweep
from symgrad.codegen import lambdify, value_and_grad
from symgrad.construct import SMALL, add, apply, is_zero, maximum, mul, times_symbol
from symgrad.errors import InputTypeError
from symgrad.graph import free_symbols, linearise, split_wide_linear, tree_size
from symgrad.nn import MLP, hinge, l2, losses

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


# ---- constructors that skip SymPy's evaluation: the same objects SymPy's Mul/Max would give

w = sp.Symbol("w")


@pytest.mark.parametrize(
    "factors",
    [
        (sp.Integer(2), x),
        (sp.Float(0.5), sp.tanh(x)),
        (sp.Float(1e-4), sp.Mul(2, x)),  # the L2 gradient: alpha * (2*p)
        (sp.Integer(3), sp.Mul(2, x), sp.Rational(1, 6)),  # folds to x
        (x, y),
        (y, x),
        (w, sp.Max(0, x)),
        (sp.Max(0, x), w),
        (x, sp.exp(y)),
        (sp.Integer(2), sp.Integer(2) ** x),  # SymPy merges: 2**(x + 1)
        (sp.Integer(-1), x + y),  # SymPy distributes
        (x, x),  # x**2
        (sp.Float(2.0), x**2),
        (sp.Integer(0), sp.tanh(x)),
        (sp.Integer(1), sp.sqrt(3) / 2),  # c * (d * g) where g stays apart: 1/2 once only
        (sp.Integer(3), sp.Mul(sp.Rational(1, 2), sp.Integer(2) ** x, evaluate=False)),
        (sp.Float("inf"), x),
        (sp.Float("nan"), sp.tanh(x)),
    ],
)
def test_small_products_are_what_sympy_builds(factors):
    ours = mul(*factors, small=True)
    theirs = sp.Mul(*factors)
    assert ours == theirs and ours.args == theirs.args


def test_a_zero_factor_gives_a_zero_number():
    for zero in (sp.S.Zero, sp.Float(0.0)):
        assert is_zero(mul(zero, sp.tanh(x), small=True))
        assert is_zero(mul(sp.Float(1e-4), sp.Mul(zero, x, evaluate=False), small=True))


def test_is_zero_agrees_with_sympy_on_numbers():
    for n in [sp.S.Zero, sp.Float(0.0), sp.Float(-0.0), sp.Integer(3), sp.Float(1e-300)]:
        assert is_zero(n) is bool(n.is_zero)
    for n in [sp.nan, sp.oo, sp.zoo, x, x - x + y]:
        assert not is_zero(n)


def test_maximum_keeps_the_arguments_as_given():
    args = [sp.tanh(x) + y, x * y, sp.Integer(0)]
    m = maximum(*args)
    assert m.args == tuple(args) and set(m.args) == set(sp.Max(*args, evaluate=False).args)
    relu = maximum(sp.S.Zero, x * y + 1)  # numbers first: SymPy's own order
    assert relu == sp.Max(0, x * y + 1, evaluate=False)
    assert maximum(x, x) is x
    at = {x: 0.4, y: -0.3}
    assert float(m.subs(at)) == pytest.approx(max(float(a.subs(at)) for a in args))
    with pytest.raises(InputTypeError):
        maximum()


def test_split_wide_linear_is_the_same_function_and_a_valid_dag():
    terms = [
        sp.tanh(p) * q for p, q in zip(sp.symbols("a0:600"), sp.symbols("b0:600"), strict=True)
    ]
    wide = sp.Add(*terms)
    roots = [wide, sp.exp(wide), sp.Max(0, wide, x)]
    new, dag = split_wide_linear(roots, linearise(roots), 100)
    assert all(len(n.args) <= 100 for n in dag.order if n.is_Add or n.is_Mul)
    for i, a in enumerate(dag.args):  # topological, positions match the objects' arguments
        assert all(j < i for j in a)
        assert [dag.order[j] for j in a] == list(dag.order[i].args)
        assert dag.index[dag.order[i]] == i
    syms = sorted(free_symbols(roots), key=str)
    at = np.random.default_rng(0).uniform(-1, 1, len(syms))
    f_old = sp.lambdify(syms, roots)
    f_new = lambdify(new, [syms])
    np.testing.assert_allclose(f_new(at), f_old(*at), rtol=1e-12)
    # nothing wide: the same objects back
    small = [x + y]
    assert split_wide_linear(small, linearise(small), 100)[0][0] is small[0]


@pytest.mark.parametrize("head", ["sum", "product"])
def test_value_and_grad_of_a_wide_sum_or_product(head):
    # value_and_grad splits a wide sum before the sweep (a wide product is left to the planner):
    # the gradient against its closed form in NumPy, and f.outputs is the expression as given
    n = 300
    xs = list(sp.symbols(f"x0:{n}"))
    if head == "sum":
        e = sp.exp(sp.Add(*(q**2 for q in xs)) / n)
    else:
        e = sp.Mul(*(1 + q / 10 for q in xs))
    f = value_and_grad(e, xs, [xs])
    assert f.outputs[0] is e
    v = np.random.default_rng(3).uniform(-1, 1, n)
    if head == "sum":
        value = np.exp(v @ v / n)
        grad = 2 * v / n * value
    else:
        value = np.prod(1 + v / 10)
        grad = np.array([np.prod(np.delete(1 + v / 10, i)) / 10 for i in range(n)])
    got_value, got_grad = f(v)
    assert got_value == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(got_grad, grad, rtol=1e-12)


def test_times_symbol_is_mul():
    # the per-input shortcut a layer uses is construct.mul itself, argument order included
    a, b = sp.symbols("a b")
    big = sp.Add(*sp.symbols("u0:20"), evaluate=False)
    inputs = [
        a, b, sp.Symbol("zz"), sp.exp(a), sp.tanh(a + b), sp.Max(0, a * b + 1), sp.Max(0, big),
        big, a * b, a**2, sp.Integer(3), sp.Float(0.5), 2, sp.Symbol("n", commutative=False),
        sp.Heaviside(a, 0), sp.sin(big),
    ]  # fmt: skip
    weights = [sp.Symbol("w"), sp.Symbol("a"), sp.Symbol("L1.N0.w0"), sp.Symbol("c", positive=True)]
    for u in inputs:
        times = times_symbol(u)
        for w in weights:
            got, expected = times(w), mul(w, u)
            assert got == expected and got.args == expected.args, (u, w)
            assert type(got) is type(expected)


def test_l2_penalty():
    theta = list(sp.symbols("p0:5"))
    e = l2(theta, 0.25)
    v = np.random.default_rng(1).normal(size=5)
    assert float(e.subs(dict(zip(theta, v, strict=True)))) == pytest.approx(0.25 * v @ v)
    assert sweep([e], theta)[0][theta[2]] == 0.5 * theta[2]
    assert [sq == p**2 for sq, p in zip(e.args[1].args, theta, strict=True)] == [True] * 5
    for bad in ("0.1", None, True, float("nan")):
        with pytest.raises(InputTypeError):
            l2(theta, bad)
    with pytest.raises(InputTypeError):
        l2([], 0.1)


_LOSSES = {  # one sample's loss from the scores s and targets t, in NumPy
    "hinge_l2": lambda s, t: max(0.0, 1 - t[0] * s[0]),
    "softmax_cross_entropy": lambda s, t: np.log(np.exp(s - s.max()).sum()) + s.max() - t @ s,
    "logistic": lambda s, t: (
        -(t[0] * np.log(1 / (1 + np.exp(-s[0]))) + (1 - t[0]) * np.log(1 / (1 + np.exp(s[0]))))
    ),
    "squared_error": lambda s, t: float(((s - t) ** 2).sum()),
}


@pytest.mark.parametrize("loss", sorted(_LOSSES))
def test_nn_losses_wider_than_the_split_width(loss):
    # 300 inputs: every first-layer neuron is a sum wider than the compiler's split width.
    # Reference: the network's own Value path (micrograd's scalar code) and central differences.
    rng = np.random.default_rng(7)
    n_in, alpha = 300, 1e-2
    model = MLP(n_in, [4, 3 if loss == "softmax_cross_entropy" else 1], rng=random.Random(1))
    theta = model.parameter_symbols()
    x_in = list(sp.symbols(f"x0:{n_in}"))
    scores = model.symbolic(x_in)
    t = list(sp.symbols(f"t0:{len(scores)}"))
    if loss == "hinge_l2":
        e = hinge(scores, t) + l2(theta, alpha)
    else:
        e = getattr(losses, loss)(scores, t)
    f = value_and_grad(e, theta, [x_in, t, theta])
    xs = rng.normal(size=n_in)
    ts = np.eye(len(t))[1] if len(t) > 1 else rng.choice([0.0, 1.0], size=1)

    def reference(p):
        for v, q in zip(model.parameters(), p, strict=True):
            v.data = float(q)
        out = model(list(xs))
        s = np.array([o.data for o in (out if isinstance(out, list) else [out])])
        return _LOSSES[loss](s, ts) + (alpha * p @ p if loss == "hinge_l2" else 0.0)

    p = rng.uniform(-1, 1, len(theta))
    v, g = f(xs, ts, p)
    assert v == pytest.approx(reference(p), rel=1e-10)
    for k in rng.choice(len(theta), size=16, replace=False):
        d = np.zeros(len(theta))
        d[k] = 1e-6
        fd = (reference(p + d) - reference(p - d)) / 2e-6
        assert g[k] == pytest.approx(fd, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("mean", [False, True])
def test_stacked_sums_with_scaled_parameters_agree(mean):
    # gradient-like entries adjoint_j * input_i + c * theta_k (an L2 term), some entries with
    # only one of the two terms; reference: sympy.lambdify of the same (small) expressions
    n = 12
    theta = list(sp.symbols(f"th0:{n}"))
    a, b, u = sp.symbols("a b u")
    entries = [
        sp.Add(sp.Mul(a if k % 2 else b, u, evaluate=False), sp.Mul(0.25, theta[k], evaluate=False))
        for k in range(n - 2)
    ]
    entries += [sp.Mul(0.25, theta[n - 2], evaluate=False), a]  # only one term each
    f = lambdify([entries, u], [a, b, u, theta], reduce="mean" if mean else None)
    ref = sp.lambdify([a, b, u, theta], entries)
    rng = np.random.default_rng(2)
    A, B, U = rng.normal(size=(3, 7))
    th = rng.normal(size=n)
    expected = np.array([np.broadcast_to(np.asarray(v, float), (7,)) for v in ref(A, B, U, th)])
    got = f(A, B, U, th)[0]
    np.testing.assert_allclose(got, expected.mean(axis=1) if mean else expected, rtol=1e-12)


def test_trainer_setup_progress(capsys):
    from symgrad.errors import OptionError
    from symgrad.nn import Trainer

    model = MLP(2, [3, 1], rng=random.Random(0))
    Trainer(model, loss="hinge", l2=1e-3)  # "auto": a small setup prints nothing
    assert capsys.readouterr().err == ""
    Trainer(model, loss="hinge", progress=True)
    err = capsys.readouterr().err
    assert "symgrad setup" in err and "done in" in err
    with pytest.raises(OptionError):
        Trainer(model, progress="yes")
