"""grad / jacobian / hessian: API, references, errors, and expressions as large as SymPy builds."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad import grad, hessian, jacobian, lambdify, numerical, value_and_grad
from symgrad.autodiff import sweep
from symgrad.codegen.compile import _array_value_and_grad
from symgrad.construct import normalised_sum
from symgrad.errors import InputTypeError, SymgradError, UnsupportedFunctionError
from symgrad.graph import topo_order
from symgrad.nn.losses import softmax_cross_entropy

x, y, z = sp.symbols("x y z")


def test_lecture_polynomial_gradient_is_6x_minus_4() -> None:
    f = 3 * x**2 - 4 * x + 5
    assert grad(f, x) == 6 * x - 4
    assert grad(f, x) == sp.diff(f, x)  # the independent reference
    # the lecture's numbers for the same function, through the numerical oracle
    fn = sp.lambdify(x, f)
    assert numerical.derivative(fn, 3.0, method="forward", h=0.001) == pytest.approx(
        14.003, abs=1e-9
    )
    assert numerical.derivative(fn, 2 / 3, method="forward", h=1e-6) == pytest.approx(
        3e-6, abs=1e-9
    )
    assert abs(numerical.derivative(fn, 3.0) - 14.0) < 1e-8


def test_single_symbol_gives_expression_sequence_gives_list_in_order() -> None:
    f = x**2 * y + sp.sin(z)
    assert grad(f, y) == x**2
    assert grad(f, [z, x, y]) == [sp.cos(z), 2 * x * y, x**2]
    assert grad(f, (x,)) == [2 * x * y]
    assert grad(f, sp.Matrix([x, y])) == [2 * x * y, x**2]


def test_gradient_with_respect_to_an_absent_symbol_is_zero() -> None:
    assert grad(x**2, y) == 0
    assert grad(sp.Integer(7), x) == 0
    assert grad(5, x) == 0


def test_symbol_names_find_the_expressions_own_symbols() -> None:
    t = sp.Symbol("t", positive=True)
    assert grad(sp.log(t), "t") == 1 / t
    assert grad(t**2, "t").free_symbols == {t}


def test_repeated_use_accumulates_like_the_multivariable_chain_rule() -> None:
    u = sp.sin(x * y)
    f = u * u + sp.exp(u) + u
    for s in (x, y):
        assert sp.simplify(grad(f, s) - sp.diff(f, s)) == 0


def test_unevaluated_expressions_with_repeated_factors() -> None:
    f = sp.Mul(x, x, x, evaluate=False)  # the product rule must count every occurrence
    assert sp.expand(grad(f, x)) == 3 * x**2
    g = sp.Add(x, x, evaluate=False)
    assert grad(g, x) == 2


def test_higher_orders_by_repetition_and_hessian() -> None:
    f = sp.exp(x * y) * sp.sin(x)
    d3 = grad(grad(grad(f, x), x), x)
    assert sp.simplify(d3 - sp.diff(f, x, 3)) == 0
    h = hessian(f, [x, y])
    ref = sp.hessian(f, [x, y])
    assert sp.simplify(h - ref) == sp.zeros(2, 2)


def test_jacobian_of_polar_coordinates() -> None:
    r, t = sp.symbols("r t")
    j = jacobian([r * sp.cos(t), r * sp.sin(t)], [r, t])
    assert j.shape == (2, 2)
    assert sp.simplify(j.det()) == r
    assert jacobian(sp.Matrix([x * y, x + y]), [x, y]) == sp.Matrix([[y, x], [1, 1]])


@pytest.mark.parametrize(
    "f",
    [
        # found by the property tests: sympy.simplify ran for over 20 minutes on the gradient
        # with respect to x (40 nodes), trigsimp for over 10 s on a 24-node one
        sp.sin(2 * x / (z**4 / (z**2 + 2) ** 4 + 2)) * (sp.cos(z) + 1),
        (y**3 + 1) * sp.log((x + z) ** 2 / (sp.tanh(x + z) ** 2 + 2) ** 2 + 1),
    ],
)
def test_auto_simplification_never_runs_unbounded_sympy(f) -> None:
    called: set[tuple[str, str]] = set()

    def record(frame, event, arg):
        if event == "call":
            called.add((frame.f_code.co_name, frame.f_code.co_filename))

    sys.setprofile(record)
    try:
        grads = grad(f, [x, y, z])
    finally:
        sys.setprofile(None)
    unbounded = {"simplify", "trigsimp", "futrig", "exptrigsimp"}
    assert not [c for c in called if c[0] in unbounded and "simplify" in c[1]], called
    for s, g in zip((x, y, z), grads, strict=True):
        at = {x: 0.3, y: -0.7, z: 1.1}
        want = complex(sp.diff(f, s).evalf(20, subs=at))
        assert abs(complex(g.evalf(20, subs=at)) - want) < 1e-12


def test_simplify_options() -> None:
    f = sp.sin(x) ** 2 + sp.cos(x) ** 2 + x
    assert grad(f, x) == 1  # "auto": small results are simplified
    raw = grad(f, x, simplify=False)
    assert sp.simplify(raw - 1) == 0
    assert grad(f, x, simplify=True) == 1
    with pytest.raises(InputTypeError, match="simplify"):
        grad(f, x, simplify="fast")


@pytest.mark.parametrize(
    "bad, match",
    [
        ("x**2", "parse"),
        (None, "None"),
        (True, "True"),
        ([x, y], "jacobian"),
        (sp.Matrix([x, y]), "jacobian"),
        (object(), "object"),
    ],
)
def test_bad_expressions_give_typed_errors(bad, match) -> None:
    with pytest.raises(InputTypeError, match=match):
        grad(bad, x)


@pytest.mark.parametrize(
    "bad, match",
    [
        (x**2, "Symbol"),
        (3, "Symbol"),
        ([], "empty"),
        ("1x", "valid symbol name"),
        ([x, "lambda"], "valid symbol name"),
        (None, "Symbol"),
    ],
)
def test_bad_wrt_gives_typed_errors(bad, match) -> None:
    with pytest.raises(InputTypeError, match=match):
        grad(x**2, bad)


def test_unknown_function_is_named_in_the_error() -> None:
    class mystery(sp.Function):
        pass

    with pytest.raises(UnsupportedFunctionError, match="mystery") as info:
        grad(mystery(x) + x, x)
    assert info.value.head == "mystery"
    with pytest.raises(UnsupportedFunctionError, match="primepi"):
        grad(sp.primepi(x), x)
    assert isinstance(info.value, SymgradError)


def test_undefined_functions_differentiate_symbolically_but_do_not_compile() -> None:
    f = sp.Function("f")
    d = grad(f(x**2), x)
    assert d == sp.diff(f(x**2), x)
    with pytest.raises(UnsupportedFunctionError):
        lambdify(d, [x])


def test_input_is_not_modified() -> None:
    f = sp.tanh(x * y) + x
    before = sp.srepr(f)
    grad(f, [x, y])
    assert sp.srepr(f) == before


def test_gradients_share_the_forward_subexpressions() -> None:
    # the gradient of tanh(u) is written through the forward node tanh(u) itself
    u = sp.tanh(x * y + z)
    (g,) = sweep([u**2], [z])[0].values()
    assert u in set(topo_order([g]))


def _deep_chain(depth: int) -> sp.Expr:
    e = x
    for i in range(depth):
        # unevaluated: SymPy's own evaluation of nested tanh is exponential in depth
        e = sp.tanh(sp.Add(e, sp.Integer(i % 3) / 10, evaluate=False), evaluate=False)
    return e


def test_a_5000_deep_chain_goes_through_grad_and_lambdify_without_recursion() -> None:
    e = _deep_chain(5000)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # symgrad's own code must not recurse at all
    try:
        g = grad(e, x)
        f = value_and_grad(e, x)
    finally:
        sys.setrecursionlimit(limit)
    value, slope = f(0.3)
    # reference: the chain rule by hand in floating point
    v, d = 0.3, 1.0
    for i in range(5000):
        v = np.tanh(v + (i % 3) / 10)
        d *= 1 - v * v
    assert value == pytest.approx(v, rel=1e-12)
    assert slope == pytest.approx(d, rel=1e-9, abs=1e-300)
    assert g is not None


def test_a_wide_shared_dag_of_5000_nodes() -> None:
    syms = sp.symbols("s0:50")
    nodes = list(syms)
    rng = np.random.default_rng(1)
    for _ in range(5000):
        i, j = rng.integers(0, len(nodes), size=2)
        op = rng.integers(0, 3)
        a, b = nodes[i], nodes[j]
        nodes.append(
            sp.Add(a, b, evaluate=False)
            if op == 0
            else sp.Mul(a, sp.Float(0.5), evaluate=False)
            if op == 1
            else sp.sin(a, evaluate=False)
        )
    out = sp.Add(*nodes[50:], evaluate=False)
    assert len(topo_order([out])) > 2000  # equal nodes drawn twice merge
    f = value_and_grad(out, list(syms))
    point = rng.uniform(-1, 1, size=50)
    value = lambdify(out, [list(syms)])
    _, g = f(point)
    num = numerical.gradient(value, point)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-6)


def test_a_100000_term_sum() -> None:
    xs = sp.symbols("x0:100000")
    total = sp.Add(*xs)  # SymPy builds this flat sum quickly
    g = grad(total, [xs[0], xs[99999]])
    assert g == [1, 1]
    f = value_and_grad(total * total, list(xs[:3]), [list(xs)])
    vals = np.linspace(0, 1, 100000)
    value, gradient = f(vals)
    assert value == pytest.approx(vals.sum() ** 2)
    np.testing.assert_allclose(gradient, 2 * vals.sum())


def test_facade_exposes_the_documented_surface() -> None:
    assert symgrad.grad is grad and callable(symgrad.lambdify)


# ---------------------------------------------------------------------------------------------
# Only the partials that are needed: constant orders, indices and parameters are never
# differentiated, and every way SymPy's fdiff can fail becomes one typed error
# ---------------------------------------------------------------------------------------------

n_, k_, a_ = sp.symbols("n k a")
CONSTANT_ARGUMENTS = [  # functions of x whose other arguments do not depend on x
    sp.besselj(1, x),
    sp.bessely(n_, x),
    sp.besseli(sp.Rational(1, 2), x),
    sp.hankel1(2, x),
    sp.jn(3, x),
    sp.gamma(x),
    sp.polygamma(0, x),
    sp.polygamma(n_, x**2),
    sp.zeta(2, x),
    sp.polylog(2, x),
    sp.polylog(n_, x),
    sp.lerchphi(x, 2, a_),
    sp.LambertW(x, -1),
    sp.LambertW(x, k_),
    sp.DiracDelta(x, 2),
    sp.Ynm(n_, k_, x, a_),
    sp.hyper([1, 2], [3], x),
    sp.meijerg([[1], []], [[], [2]], x),
    sp.legendre(n_, x),
    sp.assoc_legendre(3, 1, x),
    sp.chebyshevt(n_, x),
    sp.hermite(n_, x),
    sp.laguerre(4, x),
    sp.gegenbauer(n_, a_, x),
    sp.jacobi(n_, a_, k_, x),
    sp.SingularityFunction(x, a_, 2),
    sp.uppergamma(a_, x),
    sp.expint(2, x),
    sp.elliptic_e(x),
    sp.elliptic_f(x, a_),
    sp.beta(x, 3),
]


def _equal(mine: sp.Expr, ref: sp.Expr) -> bool:
    if sp.expand(mine - ref) == 0:
        return True
    # numerically at generic points, mpmath at 30 digits (Sum forms do not expand to 0)
    subs = {x: sp.Rational(3, 7), n_: 2, k_: 1, a_: sp.Rational(1, 3)}
    a, b = complex(mine.subs(subs).evalf(30)), complex(ref.subs(subs).evalf(30))
    return abs(a - b) <= 1e-20 * max(1.0, abs(b))


@pytest.mark.parametrize("f", CONSTANT_ARGUMENTS, ids=str)
def test_functions_of_x_with_constant_orders_and_indices_match_sympy_diff(f) -> None:
    assert _equal(grad(f, x), sp.diff(f, x))
    assert _equal(grad(f * sp.sin(x), x), sp.diff(f * sp.sin(x), x))


@pytest.mark.parametrize(
    "f",
    [sp.gamma(x), sp.besselj(1, x), sp.zeta(2, x), sp.polylog(2, x), sp.LambertW(x, k_)],
    ids=str,
)
def test_hessians_through_orders_in_the_gradient(f) -> None:
    # grad(gamma(x)) holds polygamma(0, x): the second sweep must not ask for d/d(order)
    (h,) = hessian(f, [x])
    assert _equal(h, sp.diff(f, x, 2))


@pytest.mark.parametrize(
    "f",
    [
        sp.meijerg([[x], []], [[], [2]], 3),  # fdiff raises TypeError on a tuple argument
        sp.meijerg(((), (1, 1)), ((0, 0, x), ()), x**2),  # in uppergamma's gradient
        sp.uppergamma(x, 2 * x),
        sp.lowergamma(x**2, x),
    ],
    ids=str,
)
def test_parameters_inside_tuple_arguments_match_sympy_diff(f) -> None:
    assert _equal(grad(f, x), sp.diff(f, x))
    (h,) = hessian(f, [x])
    assert _equal(h, sp.diff(f, x, 2))


UNDIFFERENTIABLE = [  # (expression, the argument SymPy cannot differentiate in, how fdiff fails)
    (sp.besselj(x, 2), 1),  # ArgumentIndexError
    (sp.zeta(x, 2), 1),  # ArgumentIndexError whose str() raises IndexError
    (sp.polylog(x, 2), 1),
    (sp.SingularityFunction(x, a_, n_), 1),  # fdiff returns None
    (sp.appellf1(1, 2, x, 3, sp.Rational(1, 3), sp.Rational(1, 2)), 3),  # ValueError
    (sp.dirichlet_eta(x), 1),  # an unevaluated Derivative
    (sp.stieltjes(1, x), 2),
    (sp.LambertW(2, x), 2),
    (sp.hyper([x], [2], sp.Rational(1, 2)), 1),
    (sp.legendre(x, sp.Rational(1, 3)), 1),
]


@pytest.mark.parametrize("f, argument", UNDIFFERENTIABLE, ids=lambda v: str(v))
def test_every_fdiff_failure_is_a_typed_error_naming_function_and_argument(f, argument) -> None:
    for run in (lambda: grad(f, x), lambda: hessian(f + x**2, [x])):
        with pytest.raises(UnsupportedFunctionError) as info:
            run()
        assert info.value.head == type(f).__name__
        assert info.value.argument == argument
        assert type(f).__name__ in str(info.value) and f"argument {argument}" in str(info.value)


_RNG = np.random.default_rng(7)


# ------------------------------------------------------------------ normalised sums (S/S = 1)


def test_softmax_cross_entropy_gradient_is_softmax_minus_target():
    s = sp.symbols("s0:4")
    t = sp.symbols("t0:4")
    loss = softmax_cross_entropy(list(s), list(t))
    f = _array_value_and_grad(loss, list(s), [*s, *t])
    assert "heaviside" not in f.source  # the max shift's subgradient is never built
    scores = _RNG.normal(size=(4, 50)) * 30
    onehot = np.eye(4)[_RNG.integers(0, 4, 50)].T
    value, grad = f(*scores, *onehot)
    lse = np.log(np.exp(scores - scores.max(0)).sum(0)) + scores.max(0)
    np.testing.assert_allclose(value, lse - (onehot * scores).sum(0), rtol=1e-13)
    np.testing.assert_allclose(grad, np.exp(scores - lse) - onehot, rtol=1e-12, atol=1e-14)
    # sympy.diff of the same expression (with its Heaviside terms) at a few points
    values = [0.3, -1.2, 2.0, 0.5, 0, 0, 1, 0]
    point = dict(zip((*s, *t), values, strict=True))
    args = [point[v] for v in (*s, *t)]
    _, g1 = f(*[np.array([a]) for a in args])
    for k in range(4):
        ref = float(loss.diff(s[k]).subs(point).evalf(30))
        assert g1[k][0] == pytest.approx(ref, rel=1e-13, abs=1e-15)


def test_normalised_sum_finds_only_exact_normalisations():
    a, b, c, d = sp.symbols("a b c d")
    s = a + b + sp.exp(c)
    inv = 1 / s
    assert normalised_sum([a * inv, b * inv, sp.exp(c) * inv]) == 1
    assert normalised_sum([d * a * inv, d * b * inv, d * sp.exp(c) * inv]) == d
    nested = [sp.Mul._from_args((sp.Mul(2, inv), v)) for v in (a, b, sp.exp(c))]
    assert normalised_sum(nested) == 2
    assert normalised_sum([a * inv, b * inv]) is None  # a term of S missing
    assert normalised_sum([a * inv, a * inv, b * inv]) is None  # a term twice
    assert normalised_sum([a * inv, b * inv, sp.exp(c) * inv * d]) is None  # factors differ
    assert normalised_sum([a * inv, b * inv, c * inv]) is None  # not S's terms
    assert normalised_sum([a / (a + b), b / (a + c)]) is None
    long = sp.Mul._from_args((a, inv))
    for k in range(20):  # a chain longer than NORMALISED_FACTORS: not flattened
        long = sp.Mul._from_args((long, sp.Symbol(f"q{k}")))
    assert normalised_sum([long, b * inv, sp.exp(c) * inv]) is None
